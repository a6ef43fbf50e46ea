// API tokens, for automation (CI, scripts): create one (its secret is shown once), list, revoke. Admins only.
import { API, call } from "./api.js";
import { clear, confirmDialog, h, timeEl, toast } from "./dom.js";

const BASE = `${API}/tokens`;

const scope = (t) => (t.environments ? t.environments.join(", ") : "every environment");

export async function render(ctx, main) {
  const box = h("div");
  const created = h("div", { role: "status" });
  const name = h("input", { id: "tok-name", name: "name", required: true, maxlength: 64, placeholder: "e.g. ci-deploy" });
  const role = h("select", { id: "tok-role", name: "role" },
    ["reader", "writer", "admin"].map((r) => h("option", { value: r }, r)));
  const envs = ctx.envs.filter((e) => !e.environment.archived);
  const envChecks = envs.map((e) => h("input", { type: "checkbox", name: "environments", value: e.key }));
  const error = h("p", { class: "field-error", role: "alert", hidden: true });
  const form = h("form", { class: "panel", "aria-labelledby": "tok-new" },
    h("h2", { id: "tok-new" }, "New API token"),
    h("div", { class: "row" },
      h("label", { class: "field grow", for: "tok-name" }, h("span", {}, "Name (recorded with its changes)"), name),
      h("label", { class: "field", for: "tok-role" }, h("span", {}, "Role"), role)),
    h("fieldset", {}, h("legend", {}, "Environments (none checked: every one)"),
      envChecks.map((c, i) => h("label", { class: "check" }, c, envs[i].environment.name || envs[i].key))),
    error,
    h("p", {}, h("button", { class: "primary", type: "submit" }, "Create token")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const body = { name: name.value.trim(), role: role.value };
    const checked = envChecks.filter((c) => c.checked).map((c) => c.value);
    if (checked.length) body.environments = checked;
    try {
      const token = await call("POST", BASE, { body });
      clear(created, h("section", { class: "banner info", "aria-labelledby": "tok-secret" },
        h("h2", { id: "tok-secret" }, "The new token"),
        h("p", {}, `Token ${token.name} (${token.role}, ${scope(token)}) is shown only now: store it where it is used.`),
        h("p", {}, h("code", { class: "secret", id: "tok-secret-value" }, token.token))));
      form.reset();
      await load();
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
      name.focus();
    }
  });

  async function revoke(token) {
    const ok = await confirmDialog({ title: `Revoke ${token.name}?`,
      message: "Whatever uses it is refused from now on, by every admin replica.", confirmLabel: "Revoke token", danger: true });
    if (!ok) return;
    try {
      await call("DELETE", `${BASE}/${encodeURIComponent(token.id)}`);
      toast(`Token ${token.name} revoked.`);
    } catch (err) {
      toast(err.message, "error");
    }
    await load();
  }

  async function load() {
    const { items } = await call("GET", BASE);
    clear(box, h("section", { class: "panel", "aria-labelledby": "tok-list" },
      h("h2", { id: "tok-list" }, `API tokens (${items.length})`),
      items.length ? h("table", { class: "responsive", "aria-label": "API tokens" },
        h("thead", {}, h("tr", {}, ["Name", "Role", "Environments", "Created", ""].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, items.map((t) => {
          const del = h("button", { type: "button", class: "danger", "aria-label": `Revoke token ${t.name}` }, "Revoke");
          del.addEventListener("click", () => revoke(t));
          return h("tr", { "data-id": t.id },
            h("td", { "data-label": "Name" }, t.name, h("div", { class: "small muted" }, h("code", {}, t.id))),
            h("td", { "data-label": "Role" }, t.role),
            h("td", { "data-label": "Environments" }, scope(t)),
            h("td", { "data-label": "Created" }, timeEl(t.created_at), h("div", { class: "small muted" }, `by ${t.created_by}`)),
            h("td", { class: "actions" }, del));
        })))
        : h("p", { class: "muted" }, "No API tokens. Make one for each script or pipeline that changes flags.")));
  }

  clear(main, h("div", { class: "page-head" }, h("h1", { class: "grow" }, "API tokens")), created, box, form);
  await load();
  return {};
}
