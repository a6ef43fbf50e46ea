// The shell: sign-in (a password, single sign-on, or an API token), who is signed in and what they may do here,
// the environment switcher, navigation, live updates, and a hash router over the pages.
import { ApiError, auth, call, API, operations } from "./api.js";
import { clear, h, toast } from "./dom.js";
import { Live } from "./live.js";
import * as flags from "./flags.js";
import * as flag from "./flag.js";
import * as segments from "./segments.js";
import * as promote from "./promote.js";
import * as environment from "./environment.js";

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
  me: null,
  /** Whether the signed-in person or token holds `role` (reader < writer < admin) on environment `env` of this
   * project (null: on every environment): the server's rule (tokens.decide), so what is offered is what works. */
  may(role, env = this.env) {
    const rank = { reader: 0, writer: 1, admin: 2 };
    const held = (this.me?.grants || []).filter((g) => (g.project || "*") === "*" || g.project === this.project)
      .filter((g) => env === null ? (g.environment || "*") === "*" : ["*", env].includes(g.environment || "*"))
      .map((g) => rank[g.role]);
    return held.length > 0 && Math.max(...held) >= rank[role];
  },
};

let page = null;
let routing = 0; // navigation counter: a slower, older navigation never overwrites a newer one
let booting = null;
let buffered = null; // changes that arrive while a page renders, replayed to it once shown
/** A change goes to the page if it is about the page's environment, or the page follows every environment. */
function deliver(target, change) {
  if (!target?.onChange) return;
  if (target.everyEnvironment || change.kind === "environment" || !change.environment || change.environment === ctx.env) {
    target.onChange(change);
  }
}

const live = new Live(
  (change) => {
    if (buffered) buffered.push(change);
    if (change.kind === "environment" && mayActOn(change.record)) {
      const at = ctx.envs.findIndex((e) => e.key === change.record.key);
      if (at >= 0) ctx.envs[at] = change.record; else ctx.envs.push(change.record);
      renderEnvSwitch();
    }
    deliver(page, change);
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
  { module: "./release.js", needs: "listPlans", label: "Releases", path: "releases" },
  { module: "./requests.js", needs: "listRequests", label: "Change requests", path: "requests" },
  { module: "./webhooks.js", needs: "listWebhooks", label: "Webhooks", path: "webhooks", admin: true },
  { module: "./clientkeys.js", needs: "listClientKeys", label: "Client-side keys", path: "client-keys", admin: true },
  { module: "./people.js", needs: "listUsers", label: "People", path: "people", admin: true },
  { module: "./tokens.js", needs: "listTokens", label: "API tokens", path: "tokens", admin: true },
  // admin "env": offered to an admin of the current environment (its page manages that environment only).
  { module: "./sdkcredentials.js", needs: "listSdkCredentials", label: "SDK credentials", path: "sdk-credentials", admin: "env" },
];

function renderNav(current) {
  const items = [
    { label: "Flags", path: "flags" },
    { label: "Segments", path: "segments" },
    { label: "Environment", path: "settings" },
    ...optional.filter((o) => ctx.extra[o.path] && (!o.admin || ctx.may("admin", o.admin === "env" ? ctx.env : null))),
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

const WAY = "flagstream.signin"; // "token" once this tab signed in with a token: its form comes first again

function showSignIn(message) {
  routing++; // whatever was loading is moot now
  live.stop();
  page?.destroy?.();
  page = null;
  auth.csrf = "";
  ctx.me = null;
  document.getElementById("topbar").hidden = true;
  const error = h("p", { class: "field-error", role: "alert", hidden: !message }, message || "");
  const box = h("div", { class: "panel signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in to Flagstream"), error);
  const fail = (text, input) => {
    error.hidden = false;
    error.textContent = text;
    input?.setAttribute("aria-invalid", "true");
    input?.focus();
  };
  const signedIn = () => {
    ctx.envs = [];
    if (location.hash === "#/" || location.hash === "") route(); else location.hash = "#/";
  };

  // An API token (automation, the operator): below the person's ways in, folded away when there are any.
  const tokenInput = h("input", { id: "token", name: "token", type: "password", autocomplete: "off", required: true,
    "aria-describedby": "token-help" });
  const tokenForm = h("form", { class: "token-signin" },
    h("p", { class: "muted", id: "token-help" },
      "An API token stays in this browser tab only and is sent with every change you make, ",
      "so the history shows who did what."),
    h("label", { class: "field", for: "token" }, h("span", {}, "API token"), tokenInput),
    h("p", {}, h("button", { class: "primary", type: "submit" }, "Sign in with token")));
  tokenForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    auth.token = tokenInput.value.trim();
    try {
      await call("GET", `${API}/whoami`, { signingIn: true });
    } catch (err) {
      auth.token = "";
      return fail(err.status === 401 || err.status === 403
        ? "That token was not accepted. Check it and try again." : err.message, tokenInput);
    }
    sessionStorage.setItem(WAY, "token");
    signedIn();
  });

  clear(main, box);
  call("GET", "/auth/options", { signingIn: true }).catch(() => ({ passwords: true, sso: null })).then((options) => {
    if (!box.isConnected) return; // another sign-in page took this one's place
    if (options.sso) {
      box.append(h("p", {}, h("a", { class: "button primary", id: "sso", href: `${options.sso.start}?to=/ui/` },
        `Sign in with ${options.sso.label}`)));
    }
    if (options.passwords) {
      const login = h("input", { id: "login", name: "username", autocomplete: "username", required: true });
      const password = h("input", { id: "password", name: "password", type: "password",
        autocomplete: "current-password", required: true });
      const form = h("form", { class: "password-signin" },
        options.sso ? h("p", { class: "muted" }, "Or with a login and password:") : null,
        h("label", { class: "field", for: "login" }, h("span", {}, "Login"), login),
        h("label", { class: "field", for: "password" }, h("span", {}, "Password"), password),
        h("p", {}, h("button", { class: options.sso ? "" : "primary", type: "submit" }, "Sign in")));
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        auth.token = "";
        try {
          const session = await call("POST", "/auth/password",
            { body: { login: login.value.trim(), password: password.value }, signingIn: true });
          auth.csrf = session.csrf;
          sessionStorage.removeItem(WAY);
        } catch (err) {
          password.value = "";
          return fail(err.status === 401 ? `Not signed in: ${err.message}.` : err.message, login);
        }
        signedIn();
      });
      box.append(form);
    }
    box.append(options.sso || options.passwords
      ? h("details", { class: "token-choice", open: sessionStorage.getItem(WAY) === "token" },
        h("summary", {}, "Use an API token instead"), tokenForm)
      : tokenForm);
    const first = sessionStorage.getItem(WAY) === "token" ? tokenInput : null;
    (first || document.getElementById("sso") || document.getElementById("login") || tokenInput).focus();
  });
}

/** A person signed in with no role yet: nothing to show but who they are. */
function noRole() {
  clear(main, h("div", { class: "panel signin" },
    h("h1", {}, "No access yet"),
    h("p", {}, `You are signed in as ${ctx.me.name}${ctx.me.email ? ` (${ctx.me.email})` : ""}, but you have no role `,
      "in Flagstream yet. Ask an admin to give you one; then reload this page.")));
}

async function whoami() {
  ctx.me = await call("GET", `${API}/whoami`);
  if (ctx.me.csrf) auth.csrf = ctx.me.csrf;
  ctx.role = ctx.me.role;
  const how = { password: "", oidc: " via single sign-on", token: " (API token)" }[ctx.me.via] ?? "";
  const whoamiEl = document.getElementById("whoami");
  whoamiEl.textContent = `Signed in as ${ctx.me.name}${how}`;
  whoamiEl.title = ctx.me.email || "";
  return ctx.me;
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
  ctx.allowed = Array.isArray(ctx.me?.environments) ? ctx.me.environments : null; // null: every one
  ctx.envs = listing.items.filter(mayActOn);
}

/** What the signed-in person may not do here is not offered: in an environment they may only read, every
 * control that would change something is disabled and says why (the server refuses it all the same). A page marks
 * a control that only reads (evaluate, time travel) with data-read-ok, and one that writes but looks like neither
 * a switch nor a submit, primary or danger button with data-write. */
function applyRole() {
  const readOnly = !!ctx.env && !ctx.may("writer");
  const banner = document.getElementById("role-banner");
  banner.hidden = !readOnly;
  banner.textContent = readOnly
    ? `You can look at ${ctx.environment?.name || ctx.env} but not change it: your role here is reader.` : "";
  // Pages across environments mark what belongs to one environment with data-env: judged by the role there.
  const someReadOnly = readOnly || ctx.envs.some((e) => !ctx.may("writer", e.key));
  main.toggleAttribute("data-read-only", someReadOnly);
  if (!someReadOnly) return;
  for (const el of main.querySelectorAll('[role="switch"], button[type="submit"], button.primary, button.danger, button[data-write]')) {
    if (el.closest("[data-read-ok]") || el.disabled) continue;
    const env = el.closest("[data-env]")?.dataset.env || ctx.env;
    if (!env || ctx.may("writer", env)) continue;
    const name = ctx.envs.find((e) => e.key === env)?.environment?.name || env;
    el.disabled = true;
    el.title = `Your role in ${name} is reader: you cannot change it.`;
    el.setAttribute("aria-disabled", "true");
  }
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

const roleWatch = new MutationObserver(() => { if (main.hasAttribute("data-read-only")) applyRole(); });
roleWatch.observe(main, { childList: true, subtree: true });

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
  if (!ctx.me) {
    try {
      if (!auth.token && !(await call("GET", "/auth/session", { signingIn: true })).signed_in) {
        if (turn === routing) showSignIn();
        return;
      }
      await whoami(); // a session cookie, or the API token of this tab
    } catch (err) {
      if (turn !== routing) return;
      if (err instanceof ApiError && err.status === 401) {
        auth.token = "";
        return showSignIn();
      }
      clear(main, h("div", { class: "banner error", role: "alert" }, `Cannot reach Flagstream: ${err.message}`));
      return;
    }
    if (turn !== routing) return;
  }
  if (!ctx.me.grants.length) {
    document.getElementById("topbar").hidden = false;
    return noRole();
  }
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
      return showSignIn("You were not let in. Sign in again.");
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
  }
  live.ensure(ctx.project);
  renderEnvSwitch();
  renderNav(section);
  page?.destroy?.();
  page = null;
  const views = {
    flags: key ? flag : flags,
    segments: key ? segments.editor : segments.list,
    promote,
    settings: environment,
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
    applyRole();
    page = rendered;
    page.hash = location.hash;
    const missed = buffered || [];
    buffered = null;
    for (const change of missed) deliver(page, change);
  } catch (err) {
    if (turn !== routing || err.status === 401) return; // 401: the sign-in form is already back
    buffered = null;
    clear(main, h("div", { class: "banner error", role: "alert" }, err.message));
  }
}

document.getElementById("env-select").addEventListener("change", (event) => {
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  const section = parts[1] || "flags";
  const keep = ["flags", "segments", "promote"].includes(section) ? `${section}${parts[2] ? `/${parts[2]}` : ""}` : section;
  location.hash = `#/${encodeURIComponent(event.target.value)}/${keep}`;
});
document.getElementById("signout").addEventListener("click", async () => {
  const session = !auth.token;
  auth.token = "";
  ctx.envs = [];
  ctx.env = "";
  if (session) await call("POST", "/auth/signout", { signingIn: true }).catch(() => {});
  ctx.me = null;
  // One sign-in page: the hash change routes to it (a second one drawn meanwhile would replace the first
  // under the user's hand, its token fold toggled back).
  if (location.hash === "#/signin") showSignIn(); else location.hash = "#/signin";
});
window.addEventListener("flagstream:unauthorized", () => {
  auth.token = "";
  ctx.envs = [];
  ctx.env = "";
  showSignIn("Your session ended or your token was revoked. Sign in again.");
});
// A change held for approval (HTTP 202 with a change request): said, with the way to the request.
window.addEventListener("flagstream:held", (event) => {
  const rec = event.detail;
  toast(h("span", {}, `Held for approval: `, h("a", { href: ctx.link(`requests/${rec.id}`) }, `change request ${rec.id}`),
    ` needs ${Object.entries(rec.missing || {}).map(([env, n]) => `${n} approval${n === 1 ? "" : "s"} in ${env}`).join(", ") || "applying"}.`));
});
window.addEventListener("beforeunload", (event) => {
  if (page?.canLeave && !page.canLeave()) event.preventDefault();
});
window.addEventListener("hashchange", route);
route();
