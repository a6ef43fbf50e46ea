// SDK credentials of the current environment: NATS users an application's SDK connects with, each reading this
// environment's flags and nothing else. Create one per application (its password is shown once, with how to
// connect), list them, revoke one (nats-server closes its connections and refuses it). Admins only.
import { call, envBase } from "./api.js";
import { clear, confirmDialog, h, timeEl, toast } from "./dom.js";

const py = (text) => JSON.stringify(text);

/** The Python an application runs to connect with `cred` (NATS_URL: the address of the deployment's nats-server). */
export function snippet(cred) {
  return [
    "from flagstream import FlagstreamClient, sdk_connect_options",
    "",
    "options = sdk_connect_options(",
    `    ${py(cred.project)}, ${py(cred.environment)}, ${py(cred.password)},`,
    `    user=${py(cred.user)},`,
    ")",
    "client = FlagstreamClient(",
    `    NATS_URL, project=${py(cred.project)}, environment=${py(cred.environment)}, connect_options=options`,
    ")",
    "client.start(wait=10)",
  ].join("\n");
}

export async function render(ctx, main) {
  const base = `${envBase(ctx.project, ctx.env)}/sdk-credentials`;
  const box = h("div");
  const created = h("div", { role: "status" });
  const name = h("input", { id: "sc-name", name: "name", required: true, maxlength: 64, placeholder: "e.g. checkout-service",
    "aria-describedby": "sc-name-help" });
  const error = h("p", { class: "field-error", role: "alert", hidden: true });
  const form = h("form", { class: "panel", "aria-labelledby": "sc-new" },
    h("h2", { id: "sc-new" }, `New SDK credential for ${ctx.env}`),
    h("label", { class: "field", for: "sc-name" }, h("span", {}, "Name (what uses it)"), name),
    h("p", { class: "small muted", id: "sc-name-help" },
      "One per application or service, so each can be revoked on its own. It reads the flags of this environment only."),
    error,
    h("p", {}, h("button", { class: "primary", type: "submit" }, "Create credential")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    try {
      const cred = await call("POST", base, { body: { name: name.value.trim() } });
      clear(created, h("section", { class: "banner info", "aria-labelledby": "sc-made" },
        h("h2", { id: "sc-made" }, `SDK credential ${cred.name}`),
        h("p", {}, "Its password is shown only now: store it in your secret store, where the application reads it."),
        h("dl", { class: "kv" },
          h("dt", {}, "NATS user"), h("dd", {}, h("code", { class: "secret", id: "sc-user" }, cred.user)),
          h("dt", {}, "Password"), h("dd", {}, h("code", { class: "secret", id: "sc-password" }, cred.password))),
        cred.accepted ? null : h("p", { class: "field-error", id: "sc-pending" },
          "nats-server had not taken it within 5 seconds. flagstream up takes it in a moment (longer while many SDKs ",
          "are connected); with a nats-server of your own, run flagstream nats-users --sdk-credentials-from and ",
          "reload nats-server (docs/security.md)."),
        h("p", {}, "Connect with the Python SDK (NATS_URL: your nats-server's address, e.g. nats://127.0.0.1:4222):"),
        h("pre", { class: "snippet", "aria-label": "Connect snippet" }, h("code", { id: "sc-snippet" }, snippet(cred)))));
      form.reset();
      await load();
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
      name.focus();
    }
  });

  async function revoke(cred) {
    const ok = await confirmDialog({ title: `Revoke ${cred.name}?`,
      message: `Applications connected as ${cred.user} are disconnected and refused from now on.`,
      confirmLabel: "Revoke credential", danger: true });
    if (!ok) return;
    try {
      await call("DELETE", `${base}/${encodeURIComponent(cred.id)}`);
      toast(`SDK credential ${cred.name} revoked.`);
    } catch (err) {
      toast(err.message, "error");
    }
    await load();
  }

  async function load() {
    const { items } = await call("GET", base);
    clear(box, h("section", { class: "panel", "aria-labelledby": "sc-list" },
      h("h2", { id: "sc-list" }, `SDK credentials of ${ctx.env} (${items.length})`),
      items.length ? h("table", { class: "responsive", "aria-label": "SDK credentials" },
        h("thead", {}, h("tr", {}, ["Name", "NATS user", "Created", ""].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, items.map((c) => {
          const button = h("button", { type: "button", class: "danger", "aria-label": `Revoke credential ${c.name}` }, "Revoke");
          button.addEventListener("click", () => revoke(c));
          return h("tr", { "data-id": c.id },
            h("td", { "data-label": "Name" }, c.name),
            h("td", { "data-label": "NATS user" }, h("code", {}, c.user)),
            h("td", { "data-label": "Created" }, timeEl(c.created_at), h("div", { class: "small muted" }, `by ${c.created_by}`)),
            h("td", { class: "actions" }, button));
        })))
        : h("p", { class: "muted" }, "No SDK credentials made here yet. Create one for each application that reads flags.")));
  }

  clear(main, h("div", { class: "page-head" }, h("h1", { class: "grow" }, "SDK credentials")), created, box, form);
  await load();
  return {};
}
