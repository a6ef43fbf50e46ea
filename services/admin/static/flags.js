// The flags list: one row per flag of the project, a column per environment (an on/off switch and what the
// flag serves there in one line), search and filters, the last change and who made it; live in every
// environment.
import { call, flagBase, projectBase } from "./api.js";
import { clear, field, h, lastChange, toast } from "./dom.js";
import { toggleFlag } from "./actions.js";
import { envLabel, lastChanged, shownEnvironments, withChange } from "./project.js";

export async function render(ctx, main) {
  const listing = await call("GET", `${projectBase(ctx.project)}/flags?archived=all`);
  const envs = shownEnvironments(ctx, listing.environments);
  let records = listing.items;
  const here = envLabel(ctx, ctx.env);
  const STATES = [["active", "Active"], ["on", `On in ${here}`], ["off", `Off in ${here}`], ["archived", "Archived"], ["all", "All"]];
  const params = new URLSearchParams(sessionStorage.getItem("flagstream.flagfilters") || "");
  const search = h("input", { type: "search", id: "flags-search", value: params.get("q") || "", placeholder: "key, name or description" });
  const tag = h("select", { id: "flags-tag" });
  const states = ctx.extra.fleet ? [...STATES, ["stale", `Stale in ${here} (no evaluation in 30 days)`]] : STATES;
  const state = h("select", { id: "flags-state" }, states.map(([v, l]) => h("option", { value: v }, l)));
  let stale = null; // keys of stale flags, fetched from the fleet API when that filter is chosen
  async function loadStale() {
    try {
      const report = await call("GET", `${projectBase(ctx.project)}/environments/${encodeURIComponent(ctx.env)}/fleet/stale?days=30`);
      stale = new Set(report.flags.map((f) => f.key));
    } catch (err) {
      stale = new Set();
      toast(`Cannot tell stale flags: ${err.message}`, "error");
    }
    renderRows();
  }
  state.value = states.some(([v]) => v === params.get("state")) ? params.get("state") : "active";
  const count = h("p", { class: "muted small", role: "status", "aria-live": "polite" });
  const body = h("tbody");
  const flashed = new Set();

  function renderTags() {
    const tags = [...new Set(records.flatMap((r) => r.definition.tags))].sort();
    const current = tag.value || params.get("tag") || "";
    clear(tag, h("option", { value: "" }, "Any tag"), tags.map((t) => h("option", { value: t }, t)));
    tag.value = tags.includes(current) ? current : "";
  }

  function visible() {
    const q = search.value.trim().toLowerCase();
    return records.filter((r) => {
      const f = r.definition;
      const on = !!r.environments[ctx.env]?.on;
      if (q && ![r.key, f.name, f.description].some((s) => (s || "").toLowerCase().includes(q))) return false;
      if (tag.value && !f.tags.includes(tag.value)) return false;
      switch (state.value) {
        case "active": return !f.archived;
        case "on": return !f.archived && on;
        case "off": return !f.archived && !on;
        case "archived": return f.archived;
        case "stale": return !f.archived && (stale === null || stale.has(r.key));
        default: return true;
      }
    }).sort((a, b) => a.key.localeCompare(b.key));
  }

  function cell(rec, env) {
    const f = rec.definition;
    const config = rec.environments[env];
    const name = f.name || rec.key;
    const where = envLabel(ctx, env);
    if (!config) return h("td", { "data-label": where, dataset: { env } }, h("span", { class: "muted small" }, "not in this environment"));
    const sw = h("button", { type: "button", role: "switch", class: "switch", "aria-checked": String(config.on),
      "aria-label": `${name} is ${config.on ? "on" : "off"} in ${where}; turn it ${config.on ? "off" : "on"}`,
      disabled: f.archived, dataset: { flag: rec.key, env }, title: `${name} in ${where}: ${config.on ? "on" : "off"}` });
    sw.addEventListener("click", async () => {
      if (sw.getAttribute("aria-busy") === "true") return; // not disabled: that would drop the keyboard focus
      sw.setAttribute("aria-busy", "true");
      const updated = await toggleFlag(ctx, { key: rec.key, version: config.version, flag: { name } }, !config.on, env);
      sw.removeAttribute("aria-busy");
      if (updated) upsert(env, updated);
    });
    const pill = f.archived ? h("span", { class: "state archived" }, "archived")
      : h("span", { class: `state ${config.on ? "on" : "off"}` }, config.on ? "on" : "off");
    return h("td", { "data-label": where, dataset: { env }, class: "env-cell" },
      h("div", { class: "row" }, sw, pill),
      h("div", { class: "small summary", title: config.lines.join("\n") }, config.summary));
  }

  function row(rec) {
    const f = rec.definition;
    const last = lastChanged(rec);
    return h("tr", { dataset: { key: rec.key }, class: flashed.has(rec.key) ? "flash" : null },
      h("td", { "data-label": "Flag", class: "flag-cell" }, h("a", { href: ctx.link(`flags/${encodeURIComponent(rec.key)}`), class: "flag-link" },
        h("strong", {}, f.name || rec.key)), " ", h("code", { class: "muted" }, rec.key),
        f.description ? h("div", { class: "small muted" }, f.description) : null,
        f.tags.length ? h("div", {}, f.tags.map((t) => h("span", { class: "tag" }, t))) : null),
      envs.map((env) => cell(rec, env)),
      h("td", { "data-label": "Last change" }, last ? [lastChange(last.config), h("span", { class: "small muted" }, ` in ${envLabel(ctx, last.env)}`)] : null));
  }

  function renderRows() {
    const rows = visible();
    params.set("q", search.value); params.set("tag", tag.value); params.set("state", state.value);
    sessionStorage.setItem("flagstream.flagfilters", params.toString());
    clear(body, rows.length ? rows.map(row) : h("tr", {}, h("td", { colspan: envs.length + 2, class: "empty" },
      records.length ? "No flag matches these filters." : "No flags in this project yet.")));
    count.textContent = `${rows.length} of ${records.length} flag${records.length === 1 ? "" : "s"}`;
    flashed.clear();
  }

  /** One environment's new record of a flag (a toggle here, or a change seen live). */
  async function upsert(env, record) {
    const at = records.findIndex((r) => r.key === record.key);
    if (at >= 0) {
      const next = withChange(records[at], env, record);
      if (next === null) records.splice(at, 1); else records[at] = next;
    } else if (!record.flag.deleted) {
      try { // a flag created elsewhere: its whole record, every environment
        const whole = await call("GET", flagBase(ctx.project, record.key));
        const again = records.findIndex((r) => r.key === whole.key);
        if (again >= 0) records[again] = whole; else records.push(whole);
      } catch (err) {
        if (err.status !== 404) toast(`Cannot load flag ${record.key}: ${err.message}`, "error");
      }
    }
    renderTags();
    renderRows();
  }

  for (const el of [search, tag, state]) el.addEventListener("input", renderRows);
  state.addEventListener("input", () => { if (state.value === "stale") loadStale(); });
  const create = h("button", { type: "button", class: "primary", id: "new-flag" }, "New flag");
  create.addEventListener("click", () => newFlagDialog(ctx));
  const promote = envs.length > 1 ? h("a", { class: "button", href: ctx.link("promote"), id: "promote-link" }, "Compare and promote") : null;

  clear(main,
    h("div", { class: "page-head" },
      h("h1", { class: "grow" }, "Flags ", h("span", { class: "muted small" }, `in every environment of ${ctx.project}`)),
      promote, create),
    h("div", { class: "filters", role: "search" },
      h("div", { class: "grow" }, field("Search", search)), field("Tag", tag), field("State", state)),
    count,
    h("div", { class: "table-scroll" },
      h("table", { class: "responsive flags-table", "aria-label": "Flags" },
        h("thead", {}, h("tr", {},
          h("th", { scope: "col" }, "Flag"),
          envs.map((env) => h("th", { scope: "col", dataset: { env }, class: env === ctx.env ? "current" : null },
            envLabel(ctx, env), isProd(ctx, env) ? h("span", { class: "badge prod" }, "prod") : null)),
          h("th", { scope: "col" }, "Last change"))),
        body)));
  renderTags();
  if (state.value === "stale") await loadStale(); else renderRows();

  return {
    everyEnvironment: true,
    onChange(change) {
      if (change.kind !== "flag" || !envs.includes(change.environment)) return;
      flashed.add(change.record.key);
      upsert(change.environment, change.record);
    },
  };
}

const isProd = (ctx, env) => !!ctx.envs.find((e) => e.key === env)?.environment?.production;

const DEFAULTS = {
  boolean: { variations: [{ key: "on", value: true }, { key: "off", value: false }], off: "off", serve: "on" },
  string: { variations: [{ key: "control", value: "control" }, { key: "treatment", value: "treatment" }], off: "control", serve: "control" },
  number: { variations: [{ key: "low", value: 0 }, { key: "high", value: 1 }], off: "low", serve: "low" },
  json: { variations: [{ key: "off", value: {} }, { key: "on", value: { enabled: true } }], off: "off", serve: "off" },
};

function newFlagDialog(ctx) {
  const dialog = document.getElementById("dialog");
  const key = h("input", { id: "nf-key", name: "key", required: true, autocomplete: "off", pattern: "[A-Za-z0-9_\\-]{1,64}",
    "aria-describedby": "nf-key-help" });
  const name = h("input", { id: "nf-name", name: "name" });
  const kind = h("select", { id: "nf-kind" }, Object.keys(DEFAULTS).map((k) => h("option", { value: k }, k)));
  const tags = h("input", { id: "nf-tags", placeholder: "comma separated" });
  const description = h("textarea", { id: "nf-description" });
  const error = h("div", { role: "alert" });
  const cancel = h("button", { type: "button" }, "Cancel");
  const form = h("form", { "aria-labelledby": "dialog-title" },
    h("h2", { id: "dialog-title" }, "New flag"),
    h("p", { class: "small muted" }, "Created once, in every environment of the project, off everywhere."),
    h("label", { class: "field", for: "nf-key" }, h("span", {}, "Key"), key,
      h("small", { id: "nf-key-help" }, "What the code asks for: letters, digits, - and _. It cannot change later.")),
    h("label", { class: "field", for: "nf-name" }, h("span", {}, "Name"), name),
    h("label", { class: "field", for: "nf-kind" }, h("span", {}, "Type"), kind),
    h("label", { class: "field", for: "nf-tags" }, h("span", {}, "Tags"), tags),
    h("label", { class: "field", for: "nf-description" }, h("span", {}, "Description"), description),
    error,
    h("div", { class: "actions" }, cancel, h("button", { type: "submit", class: "primary" }, "Create flag")));
  cancel.addEventListener("click", () => dialog.close());
  key.addEventListener("input", () => {
    if (!name.dataset.touched) name.value = key.value.replace(/[-_]+/g, " ").replace(/^./, (c) => c.toUpperCase());
  });
  name.addEventListener("input", () => { name.dataset.touched = "1"; });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const d = DEFAULTS[kind.value];
    const body = {
      key: key.value.trim(), name: name.value.trim(), description: description.value.trim(), kind: kind.value,
      tags: tags.value.split(",").map((t) => t.trim()).filter(Boolean),
      variations: d.variations, off_variation: d.off, fallthrough: { variation: d.serve },
    };
    try {
      await call("POST", `${projectBase(ctx.project)}/flags`, { body });
      dialog.close();
      toast(`Flag ${body.key} created, off in every environment.`);
      ctx.go(`flags/${encodeURIComponent(body.key)}`);
    } catch (err) {
      clear(error, h("div", { class: "banner error" }, err.message,
        err.problems.length ? h("ul", {}, err.problems.map((p) => h("li", {}, `${p.path}: ${p.message}`))) : null));
      key.focus();
    }
  });
  clear(dialog, form);
  dialog.showModal();
  key.focus();
}
