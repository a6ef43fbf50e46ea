// The flag page: one flag across the environments of its project. What it is (name, tags, variations...) is
// edited once, for every environment, and saved with the whole flag's version as If-Match; what it does is a tab
// per environment (on/off, targets, rules read as sentences, the default and off variations, prerequisites),
// saved with that environment's version. Checks explain errors before saving, the server's 422 problems appear
// next to their fields, a 409 (someone saved first) is shown with a reload, never a silent overwrite.
import { call, envBase, flagBase, projectBase } from "./api.js";
import { clear, clone, confirmDialog, h, lastChange, timeEl, toast } from "./dom.js";
import { toggleFlag } from "./actions.js";
import { Problems, checkbox, clausesEditor, control, decorate, errorsAt, input, lines, newId, parseLines, select } from "./form.js";
import { flagProblems } from "./validate.js";
import { CONFIG_FIELDS, DEFINITION_FIELDS, envLabel, isProduction, lastChanged, withChange } from "./project.js";
import { configurationLines, ruleText } from "./sentences.js";

function pct(weight) { return Number.isFinite(weight) ? String(Math.round(weight) / 1000) : ""; }
function weightOf(text) {
  const value = Number(String(text).replace(",", ".").trim());
  return text.trim() === "" || Number.isNaN(value) ? NaN : Math.round(value * 1000);
}
const sr = (text) => h("span", { class: "sr-only" }, text);
function showValue(v) { return typeof v === "string" ? v : JSON.stringify(v); }
const same = (a, b, fields) => fields.every((f) => JSON.stringify(a[f] ?? null) === JSON.stringify(b[f] ?? null));
const DEF_COMPARED = [...DEFINITION_FIELDS, "archived"];
const isDefinitionPath = (p) => /^\$\.(name|description|kind|tags|variations|salt|maintainer|lifecycle|remove_by|client_side)\b/.test(p) || p === "$";
const isConfigPath = (p) => /^\$\.(on|off_variation|fallthrough|targets|rules|prerequisites)\b/.test(p);

export async function render(ctx, main, key) {
  const url = flagBase(ctx.project, key);
  let rec = await call("GET", url);
  // Open change requests on this flag (environments that ask for approvals): a banner above the editor.
  const pending = ctx.extra.requests ? ctx.extra.requests.page.pendingOn(ctx, key) : null;
  const envs = ctx.envs.map((e) => e.key).filter((e) => e in rec.environments);
  let current = envs.includes(ctx.env) ? ctx.env : envs[0];

  // The definition (project-wide) and each environment's configuration: a draft, the server's version it is
  // based on, unsaved edits, problems, a refused save (409) or a change seen live while editing.
  // The definition's base version is the whole flag's version it was read at (a save sends it as If-Match).
  const freshDefinition = () => ({ base: rec.definition, version: rec.version, draft: clone(rec.definition), dirty: false, problems: new Problems(), conflict: null, elsewhere: null });
  const def = { ...freshDefinition(), comment: "" };
  const tabs = {};
  const tabOf = (env) => {
    const config = rec.environments[env];
    return { base: config, draft: pick(clone(config), CONFIG_FIELDS), dirty: false, problems: new Problems(), conflict: null, elsewhere: null, comment: "" };
  };
  for (const env of envs) tabs[env] = tabOf(env);

  let otherFlags = [];
  const segments = {};
  const kinds = new Set(["user"]);
  const attributes = {};
  const learn = (kind, name) => { kinds.add(kind); (attributes[kind] ||= new Set()).add(name); };
  async function loadRefs() {
    const flags = await call("GET", `${projectBase(ctx.project)}/flags?archived=false`);
    otherFlags = flags.items.filter((r) => r.key !== key).map((r) => ({ key: r.key, name: r.definition.name, variations: r.definition.variations }));
    // Attributes: those the fleet has seen in each environment, and those the flag's rules already use.
    const fleetOffered = ctx.ops.has("getFleetAttributes");
    await Promise.all(envs.map(async (env) => {
      const s = await call("GET", `${envBase(ctx.project, env)}/segments?archived=false`);
      segments[env] = s.items.map((r) => r.key);
      if (!fleetOffered) return;
      try {
        const seen = await call("GET", `${envBase(ctx.project, env)}/fleet/attributes`);
        for (const k of seen.kinds) for (const a of k.attributes) learn(k.kind, a);
      } catch { /* no fleet telemetry: the names the rules use are still offered */ }
    }));
    for (const env of envs) {
      for (const rule of rec.environments[env].rules) {
        for (const c of rule.clauses) if (c.op !== "in_segment") learn(c.context_kind ?? "user", c.attribute ?? "key");
      }
    }
  }
  await loadRefs();
  const attributeOptions = () => Object.fromEntries(Object.entries(attributes).map(([k, v]) => [k, [...v].sort()]));

  const root = h("div", { class: "flag-page" });
  clear(main, root);

  // -- checks ---------------------------------------------------------------------------------------------

  const anyProduction = () => envs.some((e) => isProduction(ctx, e));
  function definitionProblems() {
    const flag = { ...def.draft, key, on: false, off_variation: def.draft.variations[0]?.key, fallthrough: { variation: def.draft.variations[0]?.key },
      targets: [], rules: [], prerequisites: [] };
    return flagProblems(flag, { production: anyProduction(), comment: def.comment, otherFlags })
      .filter((p) => isDefinitionPath(p.path) || p.path === "comment");
  }
  function tabProblems(env) {
    const t = tabs[env];
    const flag = { ...def.base, key, ...t.draft };
    return flagProblems(flag, { production: isProduction(ctx, env), comment: t.comment, otherFlags })
      .filter((p) => isConfigPath(p.path) || p.path === "comment");
  }

  // -- editing --------------------------------------------------------------------------------------------

  const defChanged = (structural) => {
    def.dirty = true;
    if (def.problems.size) def.problems = new Problems(definitionProblems());
    if (structural || def.problems.size) paint(); else refresh();
  };
  const tabChanged = (structural) => {
    const t = tabs[current];
    t.dirty = true;
    if (t.problems.size) t.problems = new Problems(tabProblems(current));
    if (structural || t.problems.size) paint(); else refresh();
  };

  const variations = () => def.base.variations;
  const variationOptions = () => variations().map((v) => [v.key, `${v.name || v.key} (${showValue(v.value)})`]);

  function serveEditor(serve, path, holder, problems) {
    const mode = serve.rollout ? "rollout" : "variation";
    const radioName = `${current}-${path}-mode`;
    const radio = (value, label) => {
      const el = h("input", { type: "radio", name: radioName, value, checked: mode === value });
      el.addEventListener("change", () => {
        if (value === "variation") { holder.serve = { variation: serve.rollout?.variations[0]?.variation || variations()[0]?.key }; }
        else {
          holder.serve = { rollout: { bucket_by: "key", context_kind: "user",
            variations: variations().map((v, i) => ({ variation: v.key, weight: i === 0 ? 100000 : 0 })) } };
        }
        tabChanged(true);
      });
      return h("label", { class: "check" }, el, label);
    };
    const body = [];
    if (mode === "variation") {
      body.push(control(problems, `${path}.variation`, "Serve",
        select([["", "— choose —"], ...variationOptions()], serve.variation, (v) => { serve.variation = v; tabChanged(false); })));
    } else {
      const r = serve.rollout;
      for (const v of variations()) {
        if (!r.variations.some((wv) => wv.variation === v.key)) r.variations.push({ variation: v.key, weight: 0 });
      }
      const sum = h("span", { class: "sum", dataset: { sumFor: `${path}.rollout.variations` } });
      body.push(h("div", { class: "rollout" }, r.variations.map((wv, i) => control(problems,
        `${path}.rollout.variations[${i}].weight`, `${wv.variation} %`,
        input(pct(wv.weight), (text) => { wv.weight = weightOf(text); tabChanged(false); },
          { inputmode: "decimal", "aria-label": `Percentage of ${wv.variation}`, class: "pct" })))));
      const rule = r.partial ? " (at most 100%: contexts in the rest go on to the next rule)" : " (must be 100%)";
      const scheme = r.algorithm && r.algorithm !== "flagstream" ? ` Bucketing: ${r.algorithm}-compatible (imported).` : "";
      body.push(h("p", { class: "small" }, "Total: ", sum, rule + scheme), errorsAt(problems, `${path}.rollout.variations`));
      const bucketKinds = [...new Set(["user", ...kinds, r.context_kind])];
      const bucketNames = [...new Set(["key", ...(attributes[r.context_kind] || []), r.bucket_by])];
      body.push(h("div", { class: "row" },
        control(problems, `${path}.rollout.bucket_by`, "Bucket by attribute",
          select(bucketNames.map((n) => [n, n]), r.bucket_by, (v) => { r.bucket_by = v; tabChanged(false); })),
        control(problems, `${path}.rollout.context_kind`, "of context kind",
          select(bucketKinds.map((n) => [n, n]), r.context_kind, (v) => { r.context_kind = v; tabChanged(true); }))));
    }
    return h("fieldset", { class: "serve", dataset: { path } }, h("legend", { class: "small" }, "Then serve"),
      h("div", { class: "row" }, radio("variation", "a variation"), radio("rollout", "a percentage rollout")),
      errorsAt(problems, path), body);
  }

  /** What changes as one types without a repaint: rollout totals, the sentences, the save buttons. */
  function refresh() {
    const t = tabs[current];
    for (const el of root.querySelectorAll("[data-sum-for]")) {
      const path = el.dataset.sumFor;
      const serve = path.startsWith("$.fallthrough") ? t.draft.fallthrough : t.draft.rules[Number(/rules\[(\d+)\]/.exec(path)[1])].serve;
      const total = serve.rollout.variations.reduce((a, wv) => a + (Number.isFinite(wv.weight) ? wv.weight : 0), 0);
      el.textContent = `${total / 1000}%`;
      const fine = serve.rollout.partial ? total <= 100000 : total === 100000;
      el.className = `sum ${fine ? "good" : "bad"}`;
    }
    for (const el of root.querySelectorAll("[data-rule-text]")) {
      const rule = t.draft.rules[Number(el.dataset.ruleText)];
      if (rule) el.textContent = ruleText(rule);
    }
    const reads = root.querySelector("#reads");
    if (reads) clear(reads, configurationLines({ ...t.draft, on: true }).map((l) => h("li", {}, l)));
    const saveDef = root.querySelector("#save-definition");
    if (saveDef) saveDef.textContent = def.dirty ? "Save definition" : "Definition saved";
    const saveTab = root.querySelector("#save-environment");
    if (saveTab) saveTab.textContent = t.dirty ? `Save ${envLabel(ctx, current)}` : "Saved";
    for (const env of envs) {
      const mark = root.querySelector(`#tab-${CSS.escape(env)} .dirty`);
      if (mark) mark.hidden = !tabs[env].dirty;
    }
  }

  // -- header ---------------------------------------------------------------------------------------------

  function header() {
    const archived = rec.definition.archived;
    const archive = h("button", { type: "button", class: "small danger", id: "archive" }, archived ? "Restore" : "Archive");
    archive.addEventListener("click", async () => {
      const answer = await confirmDialog({
        title: `${archived ? "Restore" : "Archive"} ${rec.definition.name || key} in every environment?`,
        message: archived ? "It comes back as it was, off." : "Archived flags are off and hidden from the list; applications get the off variation... or their default once removed.",
        confirmLabel: archived ? "Restore" : "Archive", comment: anyProduction() ? "required" : "optional" });
      if (!answer) return;
      try {
        accept(await call("POST", `${url}/${archived ? "restore" : "archive"}`, { body: { comment: answer.comment }, ifMatch: rec.version }));
        toast(`${key} ${archived ? "restored" : "archived"} in every environment.`);
      } catch (err) {
        toast(err.message, "error");
      }
    });
    const last = lastChanged(rec);
    return h("div", { class: "page-head" },
      h("div", { class: "grow" },
        h("p", { class: "small" }, h("a", { href: ctx.link("flags") }, "← Flags")),
        h("h1", {}, rec.definition.name || key, " ", h("code", { class: "muted small" }, key),
          archived ? [" ", h("span", { class: "state archived" }, "archived")] : null),
        last ? h("p", { class: "small muted", id: "last-change" }, `Version ${rec.version}. Last change in ${envLabel(ctx, last.env)}: `, lastChange(last.config)) : null),
      h("div", { class: "row" }, archive,
        ctx.extra.history ? h("a", { class: "button small", href: ctx.link(`history/flag/${encodeURIComponent(key)}`) }, "History and time travel") : null));
  }

  function conflictBanner(part, label) {
    const out = [];
    if (part.conflict) {
      const c = part.conflict;
      const reload = h("button", { type: "button", class: "primary", id: part === def ? "reload-definition" : "reload" }, "Reload their version (discard my edits)");
      reload.addEventListener("click", () => { reloadPart(part); toast("Reloaded the current version."); });
      const keep = h("button", { type: "button" }, "Keep editing");
      keep.addEventListener("click", () => { part.conflict = null; paint(); });
      out.push(h("div", { class: "banner error", role: "alert", id: part === def ? "conflict-definition" : "conflict" },
        h("strong", {}, `Not saved: someone else saved ${label} first. `),
        h("strong", {}, c.actor), " changed it ", timeEl(c.at), c.comment ? ` (“${c.comment}”)` : "",
        c.where ? ` in ${c.where}` : "", ", after you opened it. ",
        "Your edits are still here, but saving them now would overwrite that change. Reload to see it, then make your change again.",
        h("div", { class: "actions" }, reload, keep)));
    } else if (part.elsewhere) {
      const c = part.elsewhere;
      const reload = h("button", { type: "button", id: part === def ? "reload-definition" : "reload" }, "Reload (discard my edits)");
      reload.addEventListener("click", () => reloadPart(part));
      out.push(h("div", { class: "banner warn", role: "status", id: part === def ? "changed-elsewhere-definition" : "changed-elsewhere" },
        h("strong", {}, c.actor), ` changed ${label} while you were editing (`, timeEl(c.at), c.comment ? `: “${c.comment}”` : "", "). ",
        "Saving will be refused until you reload.", h("div", { class: "actions" }, reload)));
    }
    if (part.problems.size) {
      out.push(h("div", { class: "banner error", role: "alert", id: part === def ? "problems-definition" : "problems" },
        h("strong", {}, `Not saved: ${part.problems.size} problem${part.problems.size > 1 ? "s" : ""} to fix.`),
        h("ul", {}, part.problems.list.map((p) => {
          const link = h("button", { type: "button", class: "link" }, p.path === "comment" ? "comment" : p.path);
          link.addEventListener("click", () => focusPath(part === def ? "#definition" : "#environment-panel", p.path));
          return h("li", {}, link, `: ${p.message}`);
        }))));
    }
    return out;
  }

  // -- the definition (project-wide) ----------------------------------------------------------------------

  function definition() {
    const d = def.draft;
    const problems = def.problems;
    const fixed = d.kind === "boolean";
    const rows = d.variations.map((v, i) => {
      const p = `$.variations[${i}]`;
      let valueEl;
      if (fixed) valueEl = h("input", { value: String(v.value), readonly: true });
      else if (d.kind === "json") {
        valueEl = h("textarea", { rows: 2, class: "mono" });
        valueEl.value = JSON.stringify(v.value, null, 1);
        valueEl.addEventListener("input", () => {
          try { v.value = JSON.parse(valueEl.value); delete v.invalid; } catch { v.invalid = "not valid JSON"; }
          defChanged(false);
        });
      } else {
        valueEl = input(showValue(v.value), (text) => {
          if (d.kind === "number") {
            const n = Number(text);
            if (text.trim() === "" || Number.isNaN(n)) v.invalid = "a number"; else { v.value = n; delete v.invalid; }
          } else v.value = text;
          defChanged(false);
        }, d.kind === "number" ? { inputmode: "decimal" } : {});
      }
      const remove = h("button", { type: "button", class: "small danger", disabled: fixed || d.variations.length < 2,
        "aria-label": `Remove variation ${v.key}` }, "✕");
      remove.addEventListener("click", () => { d.variations.splice(i, 1); defChanged(true); });
      return h("div", { class: "row card", dataset: { path: p } },
        control(problems, `${p}.key`, [sr(`Variation ${i + 1} `), "Key"], input(v.key, (k) => { v.key = k; defChanged(false); }, { readonly: fixed, size: 10 })),
        control(problems, `${p}.name`, [sr(`Variation ${i + 1} `), "Name"], input(v.name, (k) => { v.name = k; defChanged(false); }, { size: 14 })),
        h("div", { class: "grow" }, control(problems, `${p}.value`, [sr(`Variation ${i + 1} `), "Value"], valueEl)), remove);
    });
    const add = h("button", { type: "button", class: "small", hidden: fixed }, "+ Variation");
    add.addEventListener("click", () => {
      d.variations.push({ key: `v${d.variations.length + 1}`, name: "", description: "", value: d.kind === "number" ? 0 : d.kind === "json" ? {} : "" });
      defChanged(true);
    });
    const description = h("textarea", { rows: 2 });
    description.value = d.description;
    description.addEventListener("input", () => { d.description = description.value; defChanged(false); });
    const removeBy = h("input", { type: "date", value: d.remove_by || "" });
    removeBy.addEventListener("input", () => { d.remove_by = removeBy.value || null; defChanged(false); });
    const commentEl = h("textarea", { id: "comment-definition", rows: 1, placeholder: anyProduction() ? "Required: it is written to production too" : "Optional" });
    commentEl.value = def.comment;
    commentEl.addEventListener("input", () => { def.comment = commentEl.value; if (def.problems.size) defChanged(false); });
    const save = h("button", { type: "submit", class: "primary", id: "save-definition" }, def.dirty ? "Save definition" : "Definition saved");
    const discard = h("button", { type: "button", disabled: !def.dirty }, "Discard");
    discard.addEventListener("click", () => reloadPart(def));
    const form = h("form", { novalidate: true, id: "definition", "aria-labelledby": "s-definition", class: "panel" },
      h("h2", { id: "s-definition" }, "In every environment"),
      h("p", { class: "small muted" }, "What the flag is: the same in every environment of the project."),
      conflictBanner(def, "the flag's definition"),
      h("div", { class: "row top" },
        h("div", { class: "grow" }, control(problems, "$.name", "Name", input(d.name, (v) => { d.name = v; defChanged(false); }))),
        h("div", { class: "grow" }, control(problems, "$.tags", "Tags", input(d.tags.join(", "), (v) => {
          d.tags = v.split(",").map((t) => t.trim()).filter(Boolean); defChanged(false);
        }), { hint: "comma separated" })),
        control(problems, "$.maintainer", "Maintainer", input(d.maintainer, (v) => { d.maintainer = v; defChanged(false); }, { size: 12 })),
        control(problems, "$.lifecycle", "Lifecycle", select([["temporary", "temporary"], ["permanent", "permanent"]], d.lifecycle,
          (v) => { d.lifecycle = v; defChanged(false); })),
        control(problems, "$.remove_by", "Remove by", removeBy)),
      control(problems, "$.description", "Description", description),
      "client_side" in d ? h("div", { class: "field" },
        checkbox("Available to client-side apps", Boolean(d.client_side), (v) => { d.client_side = v; defChanged(false); }),
        h("p", { class: "small muted" }, "Web pages and mobile apps may evaluate it with a client-side key ",
          "(its rules stay on the server; the answer is shown to whoever loads the page).")) : null,
      h("h3", {}, "Variations ", h("span", { class: "muted small" }, `(${d.kind})`)),
      errorsAt(problems, "$.variations"), rows, add,
      h("div", { class: "savebar inline" },
        h("div", { class: "grow" }, control(problems, "comment", anyProduction() ? "Comment (required: written to production too)" : "Comment", commentEl)),
        discard, save));
    form.addEventListener("submit", (event) => { event.preventDefault(); saveDefinition(); });
    decorate(form, problems);
    return form;
  }

  // -- one environment's configuration --------------------------------------------------------------------

  function tabList() {
    const list = h("div", { role: "tablist", "aria-label": "Environments", class: "tabs" }, envs.map((env) => {
      const config = rec.environments[env];
      const tab = h("button", { type: "button", role: "tab", id: `tab-${env}`, "aria-selected": String(env === current),
        "aria-controls": "environment-panel", tabindex: env === current ? "0" : "-1", dataset: { env } },
      envLabel(ctx, env), " ", h("span", { class: `state ${config.on ? "on" : "off"}` }, config.on ? "on" : "off"),
      isProduction(ctx, env) ? h("span", { class: "badge prod" }, "prod") : null,
      h("span", { class: "dirty", hidden: !tabs[env].dirty, title: "unsaved changes" }, " •", sr(" (unsaved changes)")));
      tab.addEventListener("click", () => select_(env));
      return tab;
    }));
    list.addEventListener("keydown", (event) => {
      const at = envs.indexOf(current);
      const to = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: envs.length - 1 }[event.key];
      if (to === undefined) return;
      event.preventDefault();
      select_(envs[(to + envs.length) % envs.length], true);
    });
    return list;
  }

  function select_(env, focus = false) {
    current = env;
    paint();
    if (focus) root.querySelector(`#tab-${CSS.escape(env)}`)?.focus();
  }

  function panel() {
    const env = current;
    const t = tabs[env];
    const c = t.draft;
    const problems = t.problems;
    const where = envLabel(ctx, env);
    const name = rec.definition.name || key;
    const config = rec.environments[env];
    const sw = h("button", { type: "button", role: "switch", class: "switch", id: "flag-switch", "aria-checked": String(config.on),
      disabled: rec.definition.archived, "aria-label": `${name} is ${config.on ? "on" : "off"} in ${where}; turn it ${config.on ? "off" : "on"}` });
    sw.addEventListener("click", async () => {
      const updated = await toggleFlag(ctx, { key, version: config.version, flag: { name } }, !config.on, env);
      if (updated) ownChange(env, updated, { toggled: true });
    });

    const targetCards = c.targets.map((tg, i) => {
      const p = `$.targets[${i}]`;
      const keys = h("textarea", { rows: 2, placeholder: "one context key per line" });
      keys.value = lines(tg.values);
      keys.addEventListener("input", () => { tg.values = parseLines(keys.value); tabChanged(false); });
      const remove = h("button", { type: "button", class: "small danger", "aria-label": `Remove target ${i + 1}` }, "✕");
      remove.addEventListener("click", () => { c.targets.splice(i, 1); tabChanged(true); });
      return h("div", { class: "card row", dataset: { path: p } },
        control(problems, `${p}.variation`, "Serve", select([["", "— choose —"], ...variationOptions()], tg.variation,
          (v) => { tg.variation = v; tabChanged(false); })),
        control(problems, `${p}.context_kind`, "to context kind", select([...new Set(["user", ...kinds, tg.context_kind])].map((k) => [k, k]),
          tg.context_kind, (v) => { tg.context_kind = v; tabChanged(false); })),
        h("div", { class: "grow" }, control(problems, `${p}.values`, "with these keys", keys)), remove);
    });
    const addTarget = h("button", { type: "button", class: "small", id: "add-target" }, "+ Individual target");
    addTarget.addEventListener("click", () => {
      c.targets.push({ variation: variations()[0]?.key || "", values: [], context_kind: "user" }); tabChanged(true);
    });

    const ruleCards = c.rules.map((rule, i) => {
      const p = `$.rules[${i}]`;
      const up = h("button", { type: "button", class: "small", disabled: i === 0, "aria-label": `Move rule ${i + 1} up` }, "↑");
      up.addEventListener("click", () => { c.rules.splice(i - 1, 0, c.rules.splice(i, 1)[0]); tabChanged(true); });
      const down = h("button", { type: "button", class: "small", disabled: i === c.rules.length - 1, "aria-label": `Move rule ${i + 1} down` }, "↓");
      down.addEventListener("click", () => { c.rules.splice(i + 1, 0, c.rules.splice(i, 1)[0]); tabChanged(true); });
      const remove = h("button", { type: "button", class: "small danger", "aria-label": `Delete rule ${i + 1}` }, "Delete rule");
      remove.addEventListener("click", () => { c.rules.splice(i, 1); tabChanged(true); });
      return h("div", { class: "card rule", dataset: { path: p } },
        h("div", { class: "card-head" }, h("h3", { class: "grow" }, `Rule ${i + 1}`), up, down, remove),
        h("p", { class: "sentence", dataset: { ruleText: String(i) }, "aria-live": "polite" }, ruleText(rule)),
        control(problems, `${p}.description`, "Description", input(rule.description, (v) => { rule.description = v; tabChanged(false); })),
        h("h4", { class: "small" }, "If all of these match"),
        clausesEditor(rule.clauses, `${p}.clauses`, problems, tabChanged,
          { segments: segments[env] || [], kinds: [...kinds], attributes: attributeOptions() }),
        serveEditor(rule.serve, `${p}.serve`, rule, problems));
    });
    const addRule = h("button", { type: "button", class: "small", id: "add-rule" }, "+ Rule");
    addRule.addEventListener("click", () => {
      c.rules.push({ id: newId("rule"), description: "", serve: { variation: variations()[0]?.key },
        clauses: [{ attribute: "key", op: "in", values: [], negate: false, case_insensitive: false, context_kind: "user" }] });
      tabChanged(true);
    });

    const prereqCards = c.prerequisites.map((pr, i) => {
      const p = `$.prerequisites[${i}]`;
      const other = otherFlags.find((f) => f.key === pr.flag);
      const remove = h("button", { type: "button", class: "small danger", "aria-label": `Remove prerequisite ${i + 1}` }, "✕");
      remove.addEventListener("click", () => { c.prerequisites.splice(i, 1); tabChanged(true); });
      return h("div", { class: "card row", dataset: { path: p } },
        control(problems, `${p}.flag`, "Flag", select([["", "— choose —"], ...otherFlags.map((f) => [f.key, f.name || f.key])],
          pr.flag, (v) => { pr.flag = v; pr.variation = otherFlags.find((f) => f.key === v)?.variations[0]?.key || ""; tabChanged(true); })),
        control(problems, `${p}.variation`, "must serve", select([["", "— choose —"],
          ...(other ? other.variations.map((v) => [v.key, v.name || v.key]) : [])], pr.variation, (v) => { pr.variation = v; tabChanged(false); })),
        remove,
        // LaunchDarkly's rule, from its importer: kept by a save (the object is edited in place), and said.
        pr.require_on ? h("p", { class: "reading small" }, "Read as imported: not met while ", pr.flag || "that flag",
          " is switched off, whatever it serves then") : null);
    });
    const addPrereq = h("button", { type: "button", class: "small", disabled: !otherFlags.length }, "+ Prerequisite");
    addPrereq.addEventListener("click", () => { c.prerequisites.push({ flag: "", variation: "" }); tabChanged(true); });

    const commentEl = h("textarea", { id: "comment", rows: 1, placeholder: isProduction(ctx, env) ? "Required in production: why?" : "Optional" });
    commentEl.value = t.comment;
    commentEl.addEventListener("input", () => { t.comment = commentEl.value; if (t.problems.size) tabChanged(false); });
    const save = h("button", { type: "submit", class: "primary", id: "save-environment" }, t.dirty ? `Save ${where}` : "Saved");
    const discard = h("button", { type: "button", id: "discard", disabled: !t.dirty }, "Discard");
    discard.addEventListener("click", () => reloadPart(t));

    const form = h("form", { novalidate: true, id: "environment-panel", role: "tabpanel", "aria-labelledby": `tab-${env}`, class: "panel", dataset: { env } },
      conflictBanner(t, `this flag in ${where}`),
      h("div", { class: "row" }, sw, h("span", { class: `state ${config.on ? "on" : "off"}`, id: "flag-state" }, config.on ? "ON" : "OFF"),
        h("span", { class: "small muted grow" }, `in ${where}: version ${config.version}, last change `, lastChange(config)),
        compareLink(env), releaseLinks(env)),
      h("section", { "aria-labelledby": "s-reads", class: "reads" },
        h("h3", { id: "s-reads" }, `What ${where} serves when the flag is on`),
        h("ol", { id: "reads", class: "sentences" }, configurationLines({ ...c, on: true }).map((l) => h("li", {}, l)))),
      h("section", { "aria-labelledby": "s-targets" }, h("h3", { id: "s-targets" }, "Individual targets"),
        h("p", { class: "muted small" }, "Checked first: these exact context keys get their variation."), targetCards, addTarget),
      h("section", { "aria-labelledby": "s-rules" }, h("h3", { id: "s-rules" }, "Rules"),
        h("p", { class: "muted small" }, "Tried in order after the individual targets; the first that matches wins."), ruleCards, addRule,
        h("div", { class: "card", dataset: { path: "$.fallthrough" } },
          h("h3", {}, "Default rule"), h("p", { class: "muted small" }, "When the flag is ON and nothing above matched."),
          serveEditor(c.fallthrough, "$.fallthrough", c, problems)),
        control(problems, "$.off_variation", "When the flag is OFF, serve",
          select(variationOptions(), c.off_variation, (v) => { c.off_variation = v; tabChanged(false); }))),
      h("section", { "aria-labelledby": "s-prereq" }, h("h3", { id: "s-prereq" }, "Prerequisites"),
        h("p", { class: "muted small" }, "This flag is served normally only if each of these flags serves the given variation here."),
        prereqCards, addPrereq),
      h("div", { class: "savebar" },
        h("div", { class: "grow" }, control(problems, "comment", isProduction(ctx, env) ? "Comment (required in production)" : "Comment", commentEl)),
        discard, save));
    form.addEventListener("submit", (event) => { event.preventDefault(); saveTab(env); });
    decorate(form, problems);
    return form;
  }

  // -- compare with another environment and copy ----------------------------------------------------------

  function compareLink(env) {
    if (envs.length < 2) return null;
    return h("a", { class: "button small", href: ctx.link(`promote/${encodeURIComponent(key)}`), id: "compare-link" }, "Compare and copy");
  }

  // Release plans are per environment: the links open the releases of the tab's environment.
  function releaseLinks(env) {
    if (!ctx.extra.releases) return null;
    const at = (path) => `#/${encodeURIComponent(env)}/${path}/${encodeURIComponent(key)}`;
    return [
      rec.definition.archived ? null : h("a", { class: "button small", href: at("releases/new"), id: "release-link" }, "Release in steps"),
      h("a", { class: "button small", href: at("releases/results"), id: "results-link" }, "Experiment results")];
  }

  function focusPath(scope, path) {
    const box = root.querySelector(scope) || root;
    let target = box.querySelector(`[data-path="${CSS.escape(path)}"]`);
    let p = path;
    while (!target && p.includes(".")) {
      p = p.replace(/(\.[^.[\]]+|\[\d+\])$/, "");
      target = box.querySelector(`[data-path="${CSS.escape(p)}"]`);
    }
    if (target) {
      target.scrollIntoView({ block: "center" });
      (target.matches("input,select,textarea,button") ? target : target.querySelector("input,select,textarea,button"))?.focus();
    }
  }

  function paint() {
    const focused = document.activeElement?.dataset?.path;
    clear(root, header(), pending, definition(),
      h("section", { class: "environments", "aria-label": "Per environment" },
        h("h2", {}, "Per environment"),
        h("p", { class: "small muted" }, "What the flag does: set in each environment on its own."),
        tabList(), panel()));
    refresh();
    if (focused) root.querySelector(`[data-path="${CSS.escape(focused)}"]`)?.focus();
  }

  // -- server state in ------------------------------------------------------------------------------------

  /** A whole new record (a save of the definition, an archive, a reload): every part not being edited takes it;
   * a part being edited keeps its edits if what it is based on did not change, else it says so. */
  function accept(updated, { fromMe = false } = {}) {
    const before = rec;
    rec = updated;
    if (!same(before.definition, rec.definition, DEF_COMPARED) || fromMe) {
      if (!def.dirty || fromMe) Object.assign(def, freshDefinition());
      else def.elsewhere = lastChanged(rec).config; // its base version stays: saving is refused (409)
    } else if (!def.elsewhere) {
      def.version = rec.version; // rebased: the definition did not change
    }
    for (const env of envs) {
      const t = tabs[env];
      const config = rec.environments[env];
      if (!config) continue;
      if (!t.elsewhere && same(t.base, config, CONFIG_FIELDS)) { t.base = config; continue; } // rebased: nothing changed there
      if (!t.dirty) tabs[env] = tabOf(env);
      else t.elsewhere = config;
    }
    paint();
  }

  /** An environment's new record (a toggle here, a change seen live). */
  function ownChange(env, record, { toggled = false } = {}) {
    const next = withChange(rec, env, record);
    if (next === null) { toast(`${key} was deleted.`, "error"); ctx.go("flags"); return; }
    const t = tabs[env];
    if (toggled && t && t.dirty && same(t.base, next.environments[env], CONFIG_FIELDS.filter((f) => f !== "on"))) {
      // A toggle while editing the tab: the rest of the draft is still based on what is there.
      t.base = next.environments[env];
      t.draft.on = t.base.on;
    }
    accept(next);
  }

  function reloadPart(part) {
    if (part === def) {
      Object.assign(def, freshDefinition());
    } else {
      const env = Object.keys(tabs).find((e) => tabs[e] === part);
      tabs[env] = tabOf(env);
    }
    call("GET", url).then((fresh) => accept(fresh)).catch((err) => toast(err.message, "error"));
    paint();
  }

  // -- saving ---------------------------------------------------------------------------------------------

  async function saveDefinition() {
    def.problems = new Problems(definitionProblems());
    if (def.problems.size) { paint(); focusPath("#definition", def.problems.list[0].path); return; }
    const patch = {};
    for (const f of DEFINITION_FIELDS) {
      const value = f === "variations" ? def.draft.variations.map(({ invalid, ...v }) => v) : def.draft[f];
      if (JSON.stringify(value) !== JSON.stringify(def.base[f])) patch[f] = value;
    }
    const button = root.querySelector("#save-definition");
    button.disabled = true;
    button.textContent = "Saving…";
    try {
      const updated = await call("PATCH", url, { body: { ...patch, comment: def.comment.trim() }, ifMatch: def.version });
      def.comment = "";
      accept(updated, { fromMe: true });
      toast(`Saved ${key} in every environment.`);
    } catch (err) {
      await refused(def, err, "#definition");
    }
  }

  async function saveTab(env) {
    const t = tabs[env];
    t.problems = new Problems(tabProblems(env));
    if (t.problems.size) { paint(); focusPath("#environment-panel", t.problems.list[0].path); return; }
    const button = root.querySelector("#save-environment");
    button.disabled = true;
    button.textContent = "Saving…";
    try {
      // A merge patch of what this tab edits (its lists replaced whole): anything else of the configuration stays.
      const config = await call("PATCH", `${url}/environments/${encodeURIComponent(env)}`,
        { body: { ...pick(t.draft, CONFIG_FIELDS), comment: t.comment.trim() }, ifMatch: t.base.version });
      tabs[env] = { ...tabOf(env), base: config, draft: pick(clone(config), CONFIG_FIELDS) };
      rec = { ...rec, version: Math.max(rec.version, config.version), environments: { ...rec.environments, [env]: config } };
      if (!def.elsewhere) def.version = rec.version; // a tab's save leaves the definition as it was: rebased
      paint();
      toast(`Saved ${key} in ${envLabel(ctx, env)} (version ${config.version}).`);
    } catch (err) {
      await refused(t, err, "#environment-panel");
    }
  }

  async function refused(part, err, scope) {
    if (err.status === 409) {
      try {
        const theirs = await call("GET", url);
        const env = part === def ? lastChanged(theirs).env : Object.keys(tabs).find((e) => tabs[e] === part);
        const c = theirs.environments[env] || lastChanged(theirs).config;
        part.conflict = { actor: c.actor, at: c.at, comment: c.comment, where: part === def ? envLabel(ctx, env) : "" };
      } catch {
        part.conflict = { actor: "someone", at: new Date().toISOString(), comment: "" };
      }
      paint();
      root.querySelector(part === def ? "#conflict-definition" : "#conflict")?.scrollIntoView({ block: "center" });
      root.querySelector(part === def ? "#reload-definition" : "#reload")?.focus();
    } else if (err.status === 422 && err.problems.length) {
      part.problems = new Problems(err.problems);
      paint();
      focusPath(scope, part.problems.list[0].path);
    } else {
      paint();
      if (!err.held) toast(`Not saved: ${err.message}`, "error"); // held: the shell links the change request
    }
  }

  paint();
  return {
    everyEnvironment: true,
    canLeave: () => !def.dirty && !Object.values(tabs).some((t) => t.dirty),
    onChange(change) {
      if (change.kind === "segment") { loadRefs().catch(() => {}); return; }
      if (change.kind === "request") { pending?.refresh(); return; }
      if (change.kind !== "flag" || !envs.includes(change.environment)) return;
      if (change.record.key !== key) {
        if (!change.record.flag.archived && !otherFlags.some((f) => f.key === change.record.key)) {
          otherFlags.push({ key: change.record.key, name: change.record.flag.name, variations: change.record.flag.variations });
        }
        return;
      }
      const known = rec.environments[change.environment];
      if (known && change.record.version <= known.version) return;
      const wasEditing = def.dirty || Object.values(tabs).some((t) => t.dirty);
      ownChange(change.environment, change.record);
      if (!wasEditing) toast(`${change.record.actor} changed ${key} in ${envLabel(ctx, change.environment)}; showing the new version.`);
    },
  };
}

function pick(object, fields) {
  const out = {};
  for (const f of fields) out[f] = object[f];
  return out;
}
