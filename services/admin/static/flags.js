// The flags list: search, filters, on/off switches, last change and who made it; live.
import { call, envBase } from "./api.js";
import { clear, field, h, lastChange, toast } from "./dom.js";
import { toggleFlag } from "./actions.js";

const STATES = [["active", "Active (on or off)"], ["on", "On"], ["off", "Off"], ["archived", "Archived"], ["all", "All"]];

export async function render(ctx, main) {
  const base = envBase(ctx.project, ctx.env);
  let records = (await call("GET", `${base}/flags?archived=all`)).items;
  const params = new URLSearchParams(sessionStorage.getItem("flagstream.flagfilters") || "");
  const search = h("input", { type: "search", id: "flags-search", value: params.get("q") || "", placeholder: "key, name or description" });
  const tag = h("select", { id: "flags-tag" });
  const states = ctx.extra.fleet ? [...STATES, ["stale", "Stale (no evaluation in 30 days)"]] : STATES;
  const state = h("select", { id: "flags-state" }, states.map(([v, l]) => h("option", { value: v }, l)));
  let stale = null; // keys of stale flags, fetched from the fleet API when that filter is chosen
  async function loadStale() {
    try {
      const report = await call("GET", `${base}/fleet/stale?days=30`);
      stale = new Set(report.flags.map((f) => f.key));
    } catch (err) {
      stale = new Set();
      toast(`Cannot tell stale flags: ${err.message}`, "error");
    }
    renderRows();
  }
  state.value = params.get("state") || "active";
  const count = h("p", { class: "muted small", role: "status", "aria-live": "polite" });
  const body = h("tbody");
  const flashed = new Set();

  function renderTags() {
    const tags = [...new Set(records.flatMap((r) => r.flag.tags))].sort();
    const current = tag.value || params.get("tag") || "";
    clear(tag, h("option", { value: "" }, "Any tag"), tags.map((t) => h("option", { value: t }, t)));
    tag.value = tags.includes(current) ? current : "";
  }

  function visible() {
    const q = search.value.trim().toLowerCase();
    return records.filter((r) => {
      const f = r.flag;
      if (q && ![f.key, f.name, f.description].some((s) => (s || "").toLowerCase().includes(q))) return false;
      if (tag.value && !f.tags.includes(tag.value)) return false;
      switch (state.value) {
        case "active": return !f.archived;
        case "on": return !f.archived && f.on;
        case "off": return !f.archived && !f.on;
        case "archived": return f.archived;
        case "stale": return !f.archived && (stale === null || stale.has(f.key));
        default: return true;
      }
    }).sort((a, b) => a.key.localeCompare(b.key));
  }

  function row(rec) {
    const f = rec.flag;
    const label = `${f.name || f.key}: ${f.on ? "on" : "off"}`;
    const sw = h("button", { type: "button", role: "switch", class: "switch", "aria-checked": String(f.on),
      "aria-label": `${f.name || f.key} is ${f.on ? "on" : "off"}; turn it ${f.on ? "off" : "on"}`,
      disabled: f.archived, dataset: { flag: f.key }, title: label });
    sw.addEventListener("click", async () => {
      if (sw.getAttribute("aria-busy") === "true") return; // not disabled: that would drop the keyboard focus
      sw.setAttribute("aria-busy", "true");
      const updated = await toggleFlag(ctx, rec, !f.on);
      sw.removeAttribute("aria-busy");
      if (updated) upsert(updated);
    });
    const stateEl = f.archived ? h("span", { class: "state archived" }, "archived")
      : h("span", { class: `state ${f.on ? "on" : "off"}` }, f.on ? "on" : "off");
    return h("tr", { dataset: { key: f.key }, class: flashed.has(f.key) ? "flash" : null },
      h("td", { "data-label": "On" }, h("div", { class: "row" }, sw, stateEl)),
      h("td", { "data-label": "Flag", class: "flag-cell" }, h("a", { href: ctx.link(`flags/${encodeURIComponent(f.key)}`), class: "flag-link" },
        h("strong", {}, f.name || f.key)), " ", h("code", { class: "muted" }, f.key),
        f.description ? h("div", { class: "small muted" }, f.description) : null),
      h("td", { "data-label": "Tags" }, f.tags.map((t) => h("span", { class: "tag" }, t))),
      h("td", { "data-label": "Last change" }, lastChange(rec)),
      h("td", { "data-label": "Revision", class: "small muted" }, `r${rec.revision}`));
  }

  function renderRows() {
    const rows = visible();
    params.set("q", search.value); params.set("tag", tag.value); params.set("state", state.value);
    sessionStorage.setItem("flagstream.flagfilters", params.toString());
    clear(body, rows.length ? rows.map(row) : h("tr", {}, h("td", { colspan: 5, class: "empty" },
      records.length ? "No flag matches these filters." : "No flags in this environment yet.")));
    count.textContent = `${rows.length} of ${records.length} flag${records.length === 1 ? "" : "s"}`;
    flashed.clear();
  }

  function upsert(rec) {
    const at = records.findIndex((r) => r.key === rec.key);
    if (at >= 0 && records[at].version >= rec.version) return;
    if (at >= 0) records[at] = rec; else records.push(rec);
    renderTags();
    renderRows();
  }

  for (const el of [search, tag, state]) el.addEventListener("input", renderRows);
  state.addEventListener("input", () => { if (state.value === "stale") loadStale(); });
  const create = h("button", { type: "button", class: "primary", id: "new-flag" }, "New flag");
  create.addEventListener("click", () => newFlagDialog(ctx));

  clear(main,
    h("div", { class: "page-head" },
      h("h1", { class: "grow" }, "Flags ", h("span", { class: "muted small" }, `in ${ctx.environment.name || ctx.env}`)),
      create),
    ctx.production ? h("div", { class: "banner warn" },
      "Production environment: every change asks for confirmation and a comment.") : null,
    h("div", { class: "filters", role: "search" },
      h("div", { class: "grow" }, field("Search", search)), field("Tag", tag), field("State", state)),
    count,
    h("table", { class: "responsive", "aria-label": "Flags" },
      h("thead", {}, h("tr", {}, ["On", "Flag", "Tags", "Last change", "Rev."].map((c) => h("th", { scope: "col" }, c)))),
      body));
  renderTags();
  if (state.value === "stale") await loadStale(); else renderRows();

  return {
    onChange(change) {
      if (change.kind !== "flag") return;
      flashed.add(change.record.key);
      upsert(change.record);
    },
  };
}

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
    h("h2", { id: "dialog-title" }, `New flag in ${ctx.env}`),
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
      await call("POST", `${envBase(ctx.project, ctx.env)}/flags`, { body });
      dialog.close();
      toast(`Flag ${body.key} created (off).`);
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
