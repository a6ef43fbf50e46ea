// People: who may sign in and what they may do. Admins create local users (a password), see everyone who signed
// in through single sign-on, give roles everywhere or per environment (the production writer is just "writer" on
// production), reset passwords, end sessions, disable. Roles from the identity provider's groups are not here:
// they come with each sign-in (docs/security.md).
import { API, call } from "./api.js";
import { clear, confirmDialog, h, nextId, timeEl, toast } from "./dom.js";

const BASE = `${API}/users`;
const ROLES = ["reader", "writer", "admin"];

const describe = (grants) => grants.length
  ? grants.map((g) => `${g.role} on ${(g.environment || "*") === "*" ? "every environment" : g.environment}`
    + (g.project && g.project !== "*" ? ` of ${g.project}` : ""))
  : ["no role"];

/** Controls for roles: one everywhere, and one per environment; `grants()` reads them back. */
function roleEditor(ctx, grants = []) {
  const id = nextId("roles");
  const everywhere = grants.find((g) => (g.environment || "*") === "*" && (g.project || "*") === "*");
  const all = h("select", { id: `${id}-all`, name: "everywhere" }, h("option", { value: "" }, "none"),
    ROLES.map((r) => h("option", { value: r, selected: everywhere?.role === r }, r)));
  const envs = ctx.envs.filter((e) => !e.environment.archived);
  const per = envs.map((e) => {
    const held = grants.find((g) => g.environment === e.key && (g.project || "*") === "*");
    return h("select", { id: `${id}-${e.key}`, name: e.key, "data-env": e.key }, h("option", { value: "" }, "—"),
      ROLES.map((r) => h("option", { value: r, selected: held?.role === r }, r)));
  });
  const el = h("div", { class: "row top" },
    h("label", { class: "field", for: all.id }, h("span", {}, "Role everywhere"), all),
    per.map((select, i) => h("label", { class: "field", for: select.id },
      h("span", {}, `${envs[i].environment.name || envs[i].key}${envs[i].environment.production ? " (production)" : ""}`),
      select)));
  // Grants on other projects, or on environments not shown, are kept as they are.
  const kept = grants.filter((g) => (g.project || "*") !== "*"
    || ((g.environment || "*") !== "*" && !envs.some((e) => e.key === g.environment)));
  return {
    el,
    grants: () => [
      ...(all.value ? [{ role: all.value }] : []),
      ...per.filter((s) => s.value).map((s) => ({ role: s.value, environment: s.dataset.env })),
      ...kept,
    ],
  };
}

export async function render(ctx, main) {
  const box = h("div");
  const login = h("input", { id: "user-login", name: "login", required: true, autocomplete: "off", maxlength: 64 });
  const name = h("input", { id: "user-name", name: "name", required: true, maxlength: 100 });
  const email = h("input", { id: "user-email", name: "email", type: "email", maxlength: 254 });
  const password = h("input", { id: "user-password", name: "password", type: "password", required: true,
    autocomplete: "new-password", minlength: 12 });
  const roles = roleEditor(ctx);
  const error = h("p", { class: "field-error", role: "alert", hidden: true });
  const form = h("form", { class: "panel", "aria-labelledby": "user-new" },
    h("h2", { id: "user-new" }, "New person (signs in with a password)"),
    h("div", { class: "row" },
      h("label", { class: "field", for: "user-login" }, h("span", {}, "Login"), login),
      h("label", { class: "field grow", for: "user-name" }, h("span", {}, "Name (shown in the history)"), name),
      h("label", { class: "field grow", for: "user-email" }, h("span", {}, "E-mail (optional)"), email),
      h("label", { class: "field", for: "user-password" }, h("span", {}, "Password (12 characters or more)"), password)),
    roles.el,
    error,
    h("p", {}, h("button", { class: "primary", type: "submit" }, "Create person")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const body = { login: login.value.trim().toLowerCase(), name: name.value.trim(), email: email.value.trim(),
      password: password.value, grants: roles.grants() };
    try {
      const person = await call("POST", BASE, { body });
      toast(`${person.name} can sign in now, as ${person.login}.`);
      form.reset();
      await load();
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
    }
  });

  async function act(person, label, method, path, body, done) {
    try {
      await call(method, `${BASE}/${encodeURIComponent(person.id)}${path}`, { body });
      toast(done);
    } catch (err) {
      toast(`${label}: ${err.message}`, "error");
    }
    await load();
  }

  function row(person) {
    const editor = roleEditor(ctx, person.grants);
    const save = h("button", { type: "submit", class: "primary small" }, "Save roles");
    const rolesForm = h("form", {}, editor.el, h("p", {}, save));
    rolesForm.addEventListener("submit", (event) => {
      event.preventDefault();
      act(person, "Roles not saved", "PATCH", "", { grants: editor.grants() }, `Roles of ${person.name} saved.`);
    });
    const end = h("button", { type: "button", "aria-label": `End the sessions of ${person.name}` }, "Sign out everywhere");
    end.addEventListener("click", () => act(person, "Not signed out", "POST", "/signout", undefined,
      `Every session of ${person.name} ended.`));
    const toggle = h("button", { type: "button", class: person.disabled ? "" : "danger",
      "aria-label": `${person.disabled ? "Enable" : "Disable"} ${person.name}` }, person.disabled ? "Enable" : "Disable");
    toggle.addEventListener("click", async () => {
      if (!person.disabled && !await confirmDialog({ title: `Disable ${person.name}?`,
        message: "Their sessions end at once and they cannot sign in until enabled again.", confirmLabel: "Disable",
        danger: true })) return;
      act(person, "Not changed", "PATCH", "", { disabled: !person.disabled },
        `${person.name} ${person.disabled ? "may sign in again" : "is disabled"}.`);
    });
    const reset = h("button", { type: "button", "aria-label": `Set a new password for ${person.name}` }, "New password");
    reset.addEventListener("click", () => {
      const input = h("input", { type: "password", minlength: 12, required: true, autocomplete: "new-password",
        "aria-label": `New password for ${person.name}` });
      const ok = h("button", { type: "submit", class: "primary small" }, "Set password");
      const f = h("form", { class: "row" }, input, ok);
      f.addEventListener("submit", (event) => {
        event.preventDefault();
        act(person, "Password not set", "POST", "/password", { password: input.value },
          `New password set; the sessions of ${person.name} ended.`);
      });
      reset.replaceWith(f);
      input.focus();
    });
    const how = person.method === "password" ? `login ${person.login}` : `single sign-on (${person.issuer})`;
    return h("tr", { "data-id": person.id, "data-login": person.login },
      h("td", { "data-label": "Person" }, h("strong", {}, person.name), person.email ? h("div", { class: "small" }, person.email) : null,
        h("div", { class: "small muted" }, how)),
      h("td", { "data-label": "Roles" }, h("ul", { class: "grants" }, describe(person.grants).map((t) => h("li", {}, t))),
        person.groups.length ? h("div", { class: "small muted" }, `groups: ${person.groups.join(", ")}`) : null,
        h("details", {}, h("summary", {}, "Change roles"), rolesForm)),
      h("td", { "data-label": "Last sign-in" }, person.last_sign_in ? timeEl(person.last_sign_in) : "never",
        person.disabled ? h("div", { class: "state off" }, "disabled") : null),
      h("td", { class: "actions" }, person.method === "password" ? reset : null, " ", end, " ", toggle));
  }

  async function load() {
    const { items } = await call("GET", BASE);
    clear(box, h("section", { class: "panel", "aria-labelledby": "people-list" },
      h("h2", { id: "people-list" }, `People (${items.length})`),
      items.length ? h("table", { class: "responsive", "aria-label": "People" },
        h("thead", {}, h("tr", {}, ["Person", "Roles", "Last sign-in", ""].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, items.map(row)))
        : h("p", { class: "muted" }, "Nobody yet. Create someone below, or sign in with single sign-on.")));
  }

  clear(main, h("div", { class: "page-head" }, h("h1", { class: "grow" }, "People")), box, form);
  await load();
  return {};
}
