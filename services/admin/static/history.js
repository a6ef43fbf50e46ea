// History: the audit timeline with field-level diffs, time travel (an entity or the whole environment as of
// an instant), revert with a comment, and scheduled changes (listed, cancellable).
import { call, envBase, flagBase } from "./api.js";
import { clear, confirmDialog, h, timeEl, toast } from "./dom.js";
import { flagSummary, segmentSummary } from "./describe.js";

/** Who wrote an entry, for its tooltip: a person and how they signed in, or an API token. */
const authorText = (a) => !a ? null : a.kind === "token" ? `API token ${a.name} (${a.id})`
  : `${a.name}${a.email ? ` <${a.email}>` : ""}, signed in ${a.via === "oidc" ? `via ${a.issuer}` : "with a password"}`;

const show = (v) => (v === undefined ? "" : typeof v === "string" ? JSON.stringify(v) : JSON.stringify(v));

/** A field path that wraps only after a dot: "rules[0].clauses[0]" never breaks inside its brackets. */
function fieldPath(path) {
  if (!path) return "(whole)";
  return path.split(/(?<=\.)/).flatMap((part, i) => (i ? [h("wbr"), part] : [part]));
}

function diffTable(entry) {
  if (!entry.changes.length) return h("p", { class: "small muted" }, "No field changed.");
  const whole = entry.changes.length === 1 && !entry.changes[0].path && entry.changes[0].op === "added" ? entry.changes[0].new : null;
  if (whole && entry.kind === "flag") return h("div", { class: "created" }, h("p", { class: "small muted" }, "Created as:"), flagSummary(whole));
  if (whole && entry.kind === "segment") return h("div", { class: "created" }, h("p", { class: "small muted" }, "Created as:"), segmentSummary(whole));
  return h("table", { class: "diff", "aria-label": `Changes of revision ${entry.revision}` },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Field"), h("th", { scope: "col" }, "Before"), h("th", { scope: "col" }, "After"))),
    h("tbody", {}, entry.changes.map((c) => {
      const fmt = (v) => (/\.weight$/.test(c.path) && typeof v === "number" ? `${v / 1000}%` : show(v));
      let before = fmt(c.old), after = fmt(c.new);
      if (c.op === "items") { before = c.removed?.length ? `− ${c.removed.map(show).join(", ")}` : ""; after = c.added?.length ? `+ ${c.added.map(show).join(", ")}` : ""; }
      if (c.op === "added") before = "(none)";
      if (c.op === "removed") after = "(removed)";
      if (c.op === "moved") { before = c.text || "moved"; after = ""; }
      return h("tr", { class: "change", dataset: { path: c.path } }, h("td", { class: "path" }, fieldPath(c.path)),
        h("td", { class: "old" }, before), h("td", { class: "new" }, after));
    })));
}

export async function render(ctx, main, kind, rest = []) {
  const key = rest[0];
  const base = envBase(ctx.project, ctx.env);
  const one = kind && key ? `${base}/${kind}s/${encodeURIComponent(key)}` : null;
  // A flag's history covers every environment of the project (filterable by environment); an entry acts on its
  // own environment (time travel, revert).
  const everywhere = kind === "flag" && !!key;
  const envs = ctx.envs.filter((e) => !e.environment.archived).map((e) => e.key);
  const oneIn = (env) => `${envBase(ctx.project, env)}/${kind}s/${encodeURIComponent(key)}`;
  const envName = (env) => ctx.envs.find((e) => e.key === env)?.environment?.name || env;
  const isProd = (env) => !!ctx.envs.find((e) => e.key === env)?.environment?.production;
  const envFilter = everywhere ? h("select", { id: "history-environment", "aria-label": "Changes in" },
    h("option", { value: "" }, "Every environment"), envs.map((e) => h("option", { value: e }, envName(e)))) : null;
  const title = one ? `History of ${kind} ${key}` : `History of ${ctx.environment.name || ctx.env}`;
  const timeline = h("ol", { class: "timeline", "aria-label": "Changes, newest first" });
  const travel = h("section", { class: "panel", "aria-labelledby": "tt-title", id: "time-travel" });
  const schedules = h("section", { class: "panel", "aria-labelledby": "sched-title", id: "schedules" });
  const actor = h("input", { type: "search", id: "history-actor", placeholder: "anyone" });
  const more = h("button", { type: "button", hidden: true }, "Older changes");
  let next = null;
  let newest = 0;

  /** A flag's changes in every environment: the project route, or (a server without it) each environment's. */
  async function across(params) {
    if (envFilter.value) params.set("environment", envFilter.value);
    if (ctx.ops.has("projectFlagHistory")) return call("GET", `${flagBase(ctx.project, key)}/history?${params}`);
    const chosen = envFilter.value ? [envFilter.value] : envs;
    const pages = await Promise.all(chosen.map(async (env) => {
      try {
        const page = await call("GET", `${oneIn(env)}/history?${params}`);
        return page.items.map((e) => ({ ...e, environment: e.environment || env }));
      } catch (err) {
        if (err.status === 404) return [];
        throw err;
      }
    }));
    const items = pages.flat().sort((a, b) => b.seq - a.seq).slice(0, Number(params.get("limit")));
    return { items, next_before: items.length === Number(params.get("limit")) ? items[items.length - 1].seq : null };
  }

  async function load(reset = true) {
    const params = new URLSearchParams({ limit: "50" });
    if (actor.value.trim()) params.set("actor", actor.value.trim());
    if (!reset && next) params.set("before", String(next));
    const page = everywhere ? await across(params) : await call("GET", `${one || base}/history?${params}`);
    if (reset) clear(timeline);
    if (reset) newest = page.items[0]?.seq || 0;
    next = page.next_before;
    more.hidden = !next;
    timeline.append(...page.items.map(entry));
    if (reset && !page.items.length) timeline.append(h("li", { class: "empty" }, "No changes yet."));
    return page;
  }

  function entry(e) {
    const env = e.environment || ctx.env;
    const asOf = h("button", { type: "button", class: "small" }, "View as of this change");
    asOf.addEventListener("click", () => showState({ seq: e.seq }, `right after revision r${e.revision} (#${e.seq})`, env));
    const revert = h("button", { type: "button", class: "small danger" }, "Revert to this version");
    revert.addEventListener("click", () => doRevert(e));
    const entity = e.kind === "environment" || e.kind === "schedule" ? `${e.kind} ${e.key}`
      : h("a", { href: ctx.link(`${e.kind}s/${encodeURIComponent(e.key)}`) }, `${e.kind} ${e.key}`);
    const said = e.kind === "flag" && e.lines && e.lines.length && !(e.changes.length === 1 && !e.changes[0].path);
    return h("li", { class: "card entry", dataset: { seq: e.seq, type: e.type, env } },
      h("div", { class: "card-head" },
        h("div", { class: "grow" }, everywhere ? [h("span", { class: `env-tag${isProd(env) ? " prod" : ""}` }, envName(env)), " "] : null,
          h("strong", {}, e.type), one ? null : [" — ", entity], " ",
          h("span", { class: "small muted" }, `r${e.revision} · #${e.seq}`)),
        h("span", { class: "small" }, timeEl(e.at), " by ", h("strong", { class: "actor", title: authorText(e.author) }, e.actor),
          e.author?.email ? h("span", { class: "muted author-email" }, ` <${e.author.email}>`) : null)),
      e.comment ? h("p", { class: "small comment" }, `“${e.comment}”`) : null,
      said ? [h("ul", { class: "sentences said" }, e.lines.map((l) => h("li", {}, l))),
        h("details", {}, h("summary", { class: "small" }, "Field by field"), diffTable(e))] : diffTable(e),
      e.kind === "flag" || e.kind === "segment" ? h("div", { class: "row" }, asOf, one ? revert : null) : null);
  }

  async function showState(instant, label, env = everywhere && envFilter.value ? envFilter.value : ctx.env) {
    const params = new URLSearchParams(instant.seq ? { seq: String(instant.seq) } : { at: instant.at });
    const box = travel.querySelector(".state-view");
    const where = everywhere ? oneIn(env) : one;
    try {
      const state = await call("GET", `${where || base}/state?${params}`);
      const when = h("p", { class: "small muted" }, `As of ${label}`, state.at && instant.seq ? [" — ", timeEl(state.at)] : null,
        ` (stream #${state.seq}).`);
      if (one) {
        const rec = state.record;
        clear(box, h("h3", {}, `${key} as it was`, everywhere ? ` in ${envName(env)}` : ""), when,
          !rec ? h("p", {}, "It did not exist yet.") : kind === "flag" ? flagSummary(rec.state) : segmentSummary(rec.state),
          rec ? h("p", { class: "small" }, `Revision r${rec.revision}, last changed by `, h("strong", {}, rec.actor), " ", timeEl(rec.at)) : null);
      } else {
        clear(box, h("h3", {}, `${ctx.environment.name || ctx.env} as it was`), when,
          h("table", { class: "responsive", "aria-label": "Flags as they were" },
            h("thead", {}, h("tr", {}, ["Flag", "State", "Revision"].map((c) => h("th", { scope: "col" }, c)))),
            h("tbody", {}, state.flags.length ? state.flags.map((r) => h("tr", { dataset: { key: r.key } },
              h("td", { "data-label": "Flag" }, r.key),
              h("td", { "data-label": "State" }, h("span", { class: `state ${r.state.archived ? "archived" : r.state.on ? "on" : "off"}` },
                r.state.archived ? "archived" : r.state.on ? "ON" : "OFF")),
              h("td", { "data-label": "Revision" }, `r${r.revision}`))) : h("tr", {}, h("td", { colspan: 3 }, "No flags then.")))));
      }
      box.scrollIntoView({ block: "nearest" });
    } catch (err) {
      clear(box, h("div", { class: "banner error", role: "alert" }, err.message));
    }
  }

  async function doRevert(e) {
    const answer = await confirmDialog({
      title: `Revert ${kind} ${key} to revision r${e.revision}?`,
      message: `Writes a new change that puts ${key} back as it was right after #${e.seq} (${new Date(e.at).toLocaleString()}). Nothing is erased from the history.`,
      confirmLabel: "Revert", comment: "required",
    });
    if (!answer) return;
    try {
      const result = await call("POST", `${everywhere ? oneIn(e.environment || ctx.env) : one}/revert`, { body: { seq: e.seq, comment: answer.comment } });
      toast(result.written.length ? `Reverted ${key}.` : `${key} already was in that state: nothing to write.`);
      await refreshUntil(result.written.reduce((m, w) => Math.max(m, w.version), 0));
    } catch (err) {
      toast(`Not reverted: ${err.message}`, "error");
    }
  }

  // The history comes from the projector's read model, which follows the stream a moment behind.
  async function refreshUntil(seq) {
    for (let attempt = 0; attempt < 40; attempt++) {
      const page = await load(true);
      if (!seq || (page.items[0]?.seq || 0) >= seq) return;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  // Time travel form.
  const at = h("input", { type: "datetime-local", id: "tt-at", step: 1 });
  const ttForm = h("form", { class: "row" },
    h("label", { class: "field", for: "tt-at" }, h("span", {}, "Show it as of"), at),
    h("button", { type: "submit", "data-read-ok": true }, "Time travel"));
  ttForm.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!at.value) { toast("Choose a date and time first.", "error"); at.focus(); return; }
    const when = new Date(at.value);
    showState({ at: when.toISOString() }, when.toLocaleString());
  });
  clear(travel, h("h2", { id: "tt-title" }, "Time travel"),
    h("p", { class: "small muted" }, "See exactly what applications were served at an instant: pick a time, or use “View as of this change”."),
    ttForm, h("div", { class: "state-view", "aria-live": "polite" }));

  async function loadSchedules() {
    try {
      const list = (await call("GET", `${base}/schedules`)).items
        .filter((s) => !one || (s.change.kind === kind && s.change.key === key))
        .sort((a, b) => a.due.localeCompare(b.due));
      const rows = list.map((s) => {
        const cancel = h("button", { type: "button", class: "small danger", disabled: s.status !== "pending" }, "Cancel");
        cancel.addEventListener("click", async () => {
          const ok = await confirmDialog({ title: "Cancel this scheduled change?", message: s.description, confirmLabel: "Cancel the change", comment: "none" });
          if (!ok) return;
          try { await call("POST", `${base}/schedules/${encodeURIComponent(s.id)}/cancel`); toast("Scheduled change cancelled."); loadSchedules(); }
          catch (err) { toast(err.message, "error"); }
        });
        return h("tr", { dataset: { id: s.id, status: s.status } },
          h("td", { "data-label": "Due" }, h("time", { datetime: s.due }, new Date(s.due).toLocaleString())),
          h("td", { "data-label": "Change" }, s.description, s.comment ? h("div", { class: "small muted" }, s.comment) : null),
          h("td", { "data-label": "Status" }, s.status, s.error ? h("div", { class: "field-error" }, s.error) : null),
          h("td", { "data-label": "By" }, s.actor), h("td", {}, s.status === "pending" ? cancel : null));
      });
      const sched = one && kind === "flag" ? scheduleForm() : null;
      clear(schedules, h("h2", { id: "sched-title" }, "Scheduled changes"),
        rows.length ? h("table", { class: "responsive", "aria-label": "Scheduled changes" },
          h("thead", {}, h("tr", {}, ["Due", "Change", "Status", "By", ""].map((c) => h("th", { scope: "col" }, c)))), h("tbody", {}, rows))
          : h("p", { class: "muted small" }, "Nothing scheduled."), sched);
    } catch (err) {
      clear(schedules, h("h2", { id: "sched-title" }, "Scheduled changes"), h("p", { class: "banner error" }, err.message));
    }
  }

  function scheduleForm() {
    const due = h("input", { type: "datetime-local", id: "sched-due", required: true, step: 60 });
    const action = h("select", { id: "sched-action" }, [["on", "Turn on"], ["off", "Turn off"]].map(([v, l]) => h("option", { value: v }, l)));
    const note = h("input", { id: "sched-comment", placeholder: ctx.production ? "required in production" : "optional" });
    const form = h("form", { class: "row", novalidate: true },
      h("label", { class: "field", for: "sched-action" }, h("span", {}, "Action"), action),
      h("label", { class: "field", for: "sched-due" }, h("span", {}, "Due at"), due),
      h("label", { class: "field grow", for: "sched-comment" }, h("span", {}, "Comment"), note),
      h("button", { type: "submit" }, "Schedule"));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!due.value) { toast("Choose when.", "error"); due.focus(); return; }
      if (ctx.production && !note.value.trim()) { toast("Production: a comment is required.", "error"); note.focus(); return; }
      try {
        await call("POST", `${base}/schedules`, { body: { flag: key, action: action.value, due: new Date(due.value).toISOString(), comment: note.value.trim() } });
        toast("Change scheduled.");
        loadSchedules();
      } catch (err) { toast(`Not scheduled: ${err.message}`, "error"); }
    });
    return form;
  }

  actor.addEventListener("change", () => load(true));
  envFilter?.addEventListener("change", () => load(true));
  more.addEventListener("click", () => load(false));
  clear(main,
    h("div", { class: "page-head" }, h("div", { class: "grow" },
      one ? h("p", { class: "small" }, h("a", { href: ctx.link(`${kind}s/${encodeURIComponent(key)}`) }, `← ${kind} ${key}`)) : null,
      h("h1", {}, title))),
    h("div", { class: "history-grid" },
      h("section", { class: "panel", "aria-labelledby": "tl-title" }, h("h2", { id: "tl-title" }, "Changes"),
        h("div", { class: "filters" }, h("label", { class: "field", for: "history-actor" }, h("span", {}, "By"), actor),
          envFilter ? h("label", { class: "field", for: "history-environment" }, h("span", {}, "In"), envFilter) : null),
        timeline, more),
      h("div", {}, travel, schedules)));
  await load(true);
  await loadSchedules();
  return {
    everyEnvironment: everywhere,
    onChange(change) {
      if (everywhere && change.kind === "flag" && envFilter.value && change.environment !== envFilter.value) return;
      if (change.kind === "schedule") { if (change.environment === ctx.env) loadSchedules(); return; }
      const rec = change.record;
      if (one && (change.kind !== kind || rec.key !== key)) return;
      if (rec && rec.version > newest) refreshUntil(rec.version);
    },
  };
}
