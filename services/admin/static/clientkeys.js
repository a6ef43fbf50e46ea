// Client-side keys of the current environment: public keys for web pages and mobile apps, which may evaluate the
// flags marked "Available to client-side apps" and nothing else, from the origins listed. Admin tokens only.
import { call, envBase } from "./api.js";
import { clear, confirmDialog, h, timeEl, toast } from "./dom.js";

export async function render(ctx, main) {
  const base = `${envBase(ctx.project, ctx.env)}/client-keys`;
  const box = h("div");
  const created = h("div", { role: "status" });
  const name = h("input", { id: "ck-name", name: "name", required: true, maxlength: 64, placeholder: "e.g. web shop" });
  const origins = h("textarea", { id: "ck-origins", name: "origins", rows: 3,
    placeholder: "scheme://host[:port], one per line", "aria-describedby": "ck-origins-help" });
  const error = h("p", { class: "field-error", role: "alert", hidden: true });
  const form = h("form", { class: "panel", "aria-labelledby": "ck-new" },
    h("h2", { id: "ck-new" }, `New client-side key for ${ctx.env}`),
    h("div", { class: "row top" },
      h("label", { class: "field grow", for: "ck-name" }, h("span", {}, "Name"), name),
      h("label", { class: "field grow", for: "ck-origins" }, h("span", {}, "Allowed origins (one per line)"), origins)),
    h("p", { class: "small muted", id: "ck-origins-help" },
      "Exact origins of the web pages that may use the key: scheme, host and port, no path, no wildcard. ",
      "None: mobile apps and servers only."),
    error,
    h("p", {}, h("button", { class: "primary", type: "submit" }, "Create key")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const body = { name: name.value.trim(), origins: origins.value.split(/\s+/).filter(Boolean) };
    try {
      const key = await call("POST", base, { body });
      clear(created, h("section", { class: "banner info", "aria-labelledby": "ck-made" },
        h("h2", { id: "ck-made" }, "Client-side key created"),
        h("p", {}, "Point your OpenFeature OFREP provider at this base URL. The key is public: it may ship in your page."),
        h("p", {}, h("code", { id: "ck-base-url" }, `${location.origin}/client/${key.key}`))));
      form.reset();
      await load();
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
      name.focus();
    }
  });

  async function revoke(key) {
    const ok = await confirmDialog({ title: "Revoke this client-side key?",
      message: `Pages and apps using ${key.name} get no flags from it any more.`, confirmLabel: "Revoke key", danger: true });
    if (!ok) return;
    try {
      await call("DELETE", `${base}/${encodeURIComponent(key.key)}`);
      toast(`Client-side key ${key.name} revoked.`);
    } catch (err) {
      toast(err.message, "error");
    }
    await load();
  }

  async function load() {
    const { items } = await call("GET", base);
    clear(box, h("section", { class: "panel", "aria-labelledby": "ck-list" },
      h("h2", { id: "ck-list" }, `Client-side keys of ${ctx.env} (${items.length})`),
      items.length ? h("table", { class: "responsive", "aria-label": "Client-side keys" },
        h("thead", {}, h("tr", {}, ["Name", "Key", "Origins", "Created", ""].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, items.map((k) => {
          const button = h("button", { type: "button", class: "danger", "aria-label": `Revoke key ${k.name}` }, "Revoke");
          button.addEventListener("click", () => revoke(k));
          return h("tr", {},
            h("td", { "data-label": "Name" }, k.name),
            h("td", { "data-label": "Key" }, h("code", {}, k.key)),
            h("td", { "data-label": "Origins" }, k.origins?.length ? k.origins.join(", ") : h("span", { class: "muted" }, "apps only")),
            h("td", { "data-label": "Created" }, timeEl(k.created_at), h("div", { class: "small muted" }, k.created_by)),
            h("td", { class: "actions" }, button));
        })))
        : h("p", { class: "muted" }, "No client-side keys yet. Create one for each site or app that shows flags.")));
  }

  clear(main, h("div", { class: "page-head" }, h("h1", { class: "grow" }, "Client-side keys")), created, box, form);
  await load();
  return {};
}
