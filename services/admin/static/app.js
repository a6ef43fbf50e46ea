// The shell: sign-in, the environment switcher, navigation, live updates, and a hash router over the pages.
import { ApiError, auth, call, API, operations } from "./api.js";
import { clear, h, toast } from "./dom.js";
import { Live } from "./live.js";
import * as flags from "./flags.js";
import * as flag from "./flag.js";
import * as segments from "./segments.js";

const main = document.getElementById("main");
const ctx = {
  project: "default",
  env: "",
  envs: [],
  ops: new Set(),
  get environment() { return this.envs.find((e) => e.key === this.env)?.environment || null; },
  get production() { return !!this.environment?.production; },
  go(path) { location.hash = `#/${this.env}/${path}`; },
  link(path) { return `#/${encodeURIComponent(this.env)}/${path}`; },
  extra: {},
};

let page = null;
let routing = 0; // navigation counter: a slower, older navigation never overwrites a newer one
let booting = null;
let buffered = null; // changes that arrive while a page renders, replayed to it once shown
const live = new Live(
  (change) => {
    if (buffered) buffered.push(change);
    if (change.kind === "environment" && mayActOn(change.record)) {
      const at = ctx.envs.findIndex((e) => e.key === change.record.key);
      if (at >= 0) ctx.envs[at] = change.record; else ctx.envs.push(change.record);
      renderEnvSwitch();
    }
    page?.onChange?.(change);
  },
  (up) => {
    const el = document.getElementById("live");
    el.classList.toggle("on", up);
    el.textContent = up ? "Live" : "Reconnecting…";
  },
);

// Pages of features this server may not offer yet: each registers itself only if its operations exist.
const optional = [
  { module: "./history.js", needs: "flagHistory", label: "History", path: "history" },
  { module: "./playground.js", needs: "evaluate", label: "Playground", path: "playground" },
  { module: "./fleet.js", needs: "getFleet", label: "Fleet", path: "fleet" },
  { module: "./webhooks.js", needs: "listWebhooks", label: "Webhooks", path: "webhooks", admin: true },
  { module: "./clientkeys.js", needs: "listClientKeys", label: "Client-side keys", path: "client-keys", admin: true },
];

function renderNav(current) {
  const items = [
    { label: "Flags", path: "flags" },
    { label: "Segments", path: "segments" },
    ...optional.filter((o) => ctx.extra[o.path] && (!o.admin || ctx.role === "admin")),
  ];
  clear(document.getElementById("nav"), items.map((item) =>
    h("a", { href: ctx.link(item.path), "aria-current": current === item.path ? "page" : null }, item.label)));
}

function renderEnvSwitch() {
  const select = document.getElementById("env-select");
  clear(select, ctx.envs.filter((e) => !e.environment.archived).map((e) =>
    h("option", { value: e.key, selected: e.key === ctx.env },
      `${e.environment.name || e.key}${e.environment.production && !/prod/i.test(e.environment.name || e.key) ? " (production)" : ""}`)));
  select.value = ctx.env;
  const badge = document.getElementById("env-badge");
  badge.hidden = !ctx.env;
  badge.className = `badge ${ctx.production ? "prod" : "nonprod"}`;
  badge.textContent = ctx.production ? "Production" : "Non-production";
}

function showSignIn(message) {
  routing++; // whatever was loading is moot now
  live.stop();
  page?.destroy?.();
  page = null;
  document.getElementById("topbar").hidden = true;
  const input = h("input", { id: "token", name: "token", type: "password", autocomplete: "off", required: true,
    "aria-describedby": "token-help" });
  const error = h("p", { class: "field-error", role: "alert", hidden: !message }, message || "");
  const form = h("form", { class: "panel signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in to Flagstream"),
    h("p", { class: "muted", id: "token-help" },
      "Paste your API token. It stays in this browser tab only and is sent with every change you make, ",
      "so the history shows who did what."),
    h("label", { class: "field", for: "token" }, h("span", {}, "API token"), input),
    error,
    h("p", {}, h("button", { class: "primary", type: "submit" }, "Sign in")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    auth.token = input.value.trim();
    try {
      await call("GET", `${API}/projects/${ctx.project}/environments`, { signingIn: true });
    } catch (err) {
      auth.token = "";
      error.hidden = false;
      error.textContent = err.status === 401 || err.status === 403
        ? "That token was not accepted. Check it and try again." : err.message;
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    ctx.envs = [];
    if (location.hash === "#/") route(); else location.hash = "#/";
  });
  clear(main, form);
  input.focus();
}

async function boot() {
  const listing = await call("GET", `${API}/projects/${ctx.project}/environments`);
  try {
    ctx.ops = await operations();
  } catch {
    ctx.ops = new Set();
  }
  for (const o of optional) {
    if (ctx.ops.has(o.needs)) {
      try {
        ctx.extra[o.path] = { ...o, page: await import(o.module) };
      } catch (err) {
        console.warn(`page ${o.path} unavailable`, err);
      }
    }
  }
  const whoami = Object.keys(ctx.ops.paths || {}).find((p) => /\/(whoami|me)$/.test(p));
  ctx.allowed = null; // the environments the token may act on; null: every one
  try {
    if (!whoami) throw new Error("no whoami");
    const me = await call("GET", whoami);
    ctx.role = me.role;
    ctx.allowed = Array.isArray(me.environments) ? me.environments : null;
    document.getElementById("whoami").textContent = `Signed in as ${me.actor || me.name || me.subject || "?"}`;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) throw err;
    document.getElementById("whoami").textContent = "Signed in";
  }
  ctx.envs = listing.items.filter(mayActOn);
}

/** Whether the signed-in token may act on this environment (record): only those are listed and opened. */
function mayActOn(record) {
  return ctx.allowed === null || ctx.allowed === undefined || ctx.allowed.includes(record.key);
}

function noAllowedEnvironment() {
  const names = (ctx.allowed || []).join(", ");
  clear(main, h("div", { class: "banner error", role: "alert" },
    `This token may act only on ${names || "no environment"}, and this project has no such environment. `,
    "Ask for a token of an environment that exists, or sign out and use another one."));
}

function noEnvironments() {
  const key = h("input", { id: "new-env", name: "key", required: true, pattern: "[A-Za-z0-9_-]{1,64}" });
  const prod = h("input", { type: "checkbox", id: "new-env-prod" });
  const form = h("form", { class: "panel" },
    h("h1", {}, "No environments yet"),
    h("p", {}, "Create the first environment of this project."),
    h("div", { class: "row" },
      h("label", { class: "field", for: "new-env" }, h("span", {}, "Key"), key),
      h("label", { class: "check" }, prod, "Production-like"),
      h("button", { class: "primary", type: "submit" }, "Create environment")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await call("POST", `${API}/projects/${ctx.project}/environments`,
        { body: { key: key.value.trim(), name: key.value.trim(), production: prod.checked } });
      ctx.envs = [];
      location.hash = `#/${key.value.trim()}/flags`;
    } catch (err) {
      toast(err.message, "error");
    }
  });
  clear(main, form);
}

async function route() {
  const turn = ++routing;
  if (!auth.token) return showSignIn();
  if (page?.canLeave && !page.canLeave()) {
    if (!window.confirm("You have unsaved changes. Leave this page and lose them?")) {
      history.replaceState(null, "", page.hash);
      return;
    }
  }
  try {
    if (!ctx.envs.length) await (booting ||= boot().finally(() => { booting = null; }));
    if (turn !== routing) return; // a newer navigation took over
  } catch (err) {
    if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
      auth.token = "";
      return showSignIn("Your token was not accepted. Sign in again.");
    }
    clear(main, h("div", { class: "banner error", role: "alert" }, `Cannot load environments: ${err.message}`));
    return;
  }
  document.getElementById("topbar").hidden = false;
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent).filter(Boolean);
  const active = ctx.envs.filter((e) => !e.environment.archived);
  if (!active.length) return ctx.allowed ? noAllowedEnvironment() : noEnvironments();
  const remembered = localStorage.getItem("flagstream.env");
  if (!parts.length || !active.some((e) => e.key === parts[0])) {
    const fallback = active.find((e) => e.key === remembered) || active.find((e) => !e.environment.production) || active[0];
    location.replace(`#/${fallback.key}/${parts.length > 1 ? parts.slice(1).join("/") : "flags"}`);
    return;
  }
  const [env, section = "flags", key] = parts;
  if (env !== ctx.env) {
    ctx.env = env;
    localStorage.setItem("flagstream.env", env);
    live.start(ctx.project, env);
  }
  renderEnvSwitch();
  renderNav(section);
  page?.destroy?.();
  page = null;
  const views = {
    flags: key ? flag : flags,
    segments: key ? segments.editor : segments.list,
  };
  const view = views[section] || ctx.extra[section]?.page;
  if (!view) {
    clear(main, h("div", { class: "banner error", role: "alert" }, `There is no page “${section}”.`));
    return;
  }
  // Each page renders into its own box, shown only if no newer navigation started meanwhile.
  const box = h("div", { class: "page" });
  buffered = [];
  try {
    const rendered = (await view.render(ctx, box, key, parts.slice(3))) || {};
    if (turn !== routing) { rendered.destroy?.(); return; }
    clear(main, box);
    page = rendered;
    page.hash = location.hash;
    const missed = buffered || [];
    buffered = null;
    for (const change of missed) page.onChange?.(change);
  } catch (err) {
    if (turn !== routing || err.status === 401) return; // 401: the sign-in form is already back
    buffered = null;
    clear(main, h("div", { class: "banner error", role: "alert" }, err.message));
  }
}

document.getElementById("env-select").addEventListener("change", (event) => {
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  const section = parts[1] || "flags";
  const keep = section === "flags" || section === "segments" ? `${section}${parts[2] ? `/${parts[2]}` : ""}` : section;
  location.hash = `#/${encodeURIComponent(event.target.value)}/${keep}`;
});
document.getElementById("signout").addEventListener("click", () => {
  auth.token = "";
  ctx.envs = [];
  ctx.env = "";
  location.hash = "#/signin";
  showSignIn();
});
window.addEventListener("flagstream:unauthorized", () => {
  auth.token = "";
  ctx.envs = [];
  ctx.env = "";
  showSignIn("Your session ended or your token was revoked. Sign in again.");
});
window.addEventListener("beforeunload", (event) => {
  if (page?.canLeave && !page.canLeave()) event.preventDefault();
});
window.addEventListener("hashchange", route);
route();
