// The flag page: everything about one flag in one environment, edited with checks that explain errors before
// saving, the server's 422 problems next to their fields, and a 409 (someone saved first) shown with a reload.
import { call, envBase } from "./api.js";
import { clear, clone, confirmDialog, h, lastChange, timeEl, toast } from "./dom.js";
import { toggleFlag } from "./actions.js";
import { Problems, checkbox, clausesEditor, control, decorate, errorsAt, input, lines, newId, parseLines, select } from "./form.js";
import { flagProblems } from "./validate.js";

function pct(weight) { return Number.isFinite(weight) ? String(Math.round(weight) / 1000) : ""; }
function weightOf(text) {
  const value = Number(String(text).replace(",", ".").trim());
  return text.trim() === "" || Number.isNaN(value) ? NaN : Math.round(value * 1000);
}
const sr = (text) => h("span", { class: "sr-only" }, text);
function showValue(v) { return typeof v === "string" ? v : JSON.stringify(v); }

export async function render(ctx, main, key) {
  const url = `${envBase(ctx.project, ctx.env)}/flags/${encodeURIComponent(key)}`;
  let rec = await call("GET", url);
  let draft = clone(rec.flag);
  let problems = new Problems();
  let conflict = null;       // the current record when a save was refused with 409
  let changedElsewhere = null; // a newer record seen live while editing
  let dirty = false;
  let comment = "";
  let otherFlags = [];
  let segments = [];
  const loadRefs = async () => {
    const [f, s] = await Promise.all([
      call("GET", `${envBase(ctx.project, ctx.env)}/flags?archived=false`),
      call("GET", `${envBase(ctx.project, ctx.env)}/segments?archived=false`),
    ]);
    otherFlags = f.items.map((r) => r.flag).filter((fl) => fl.key !== key);
    segments = s.items.map((r) => r.key);
  };
  await loadRefs();

  const root = h("div", { class: "flag-page" });
  clear(main, root);

  const changed = (structural) => {
    dirty = true;
    if (problems.size) problems = new Problems(flagProblems(draft, { production: ctx.production, comment, otherFlags }));
    if (structural || problems.size) paint(); else updateSums();
  };

  function variationOptions() { return draft.variations.map((v) => [v.key, `${v.name || v.key} (${showValue(v.value)})`]); }

  function serveEditor(serve, path, holder) {
    const mode = serve.rollout ? "rollout" : "variation";
    const radioName = `${path}-mode`;
    const radio = (value, label) => {
      const el = h("input", { type: "radio", name: radioName, value, checked: mode === value });
      el.addEventListener("change", () => {
        if (value === "variation") { holder.serve = { variation: serve.rollout?.variations[0]?.variation || draft.variations[0]?.key }; }
        else {
          holder.serve = { rollout: { bucket_by: "key", context_kind: "user",
            variations: draft.variations.map((v, i) => ({ variation: v.key, weight: i === 0 ? 100000 : 0 })) } };
        }
        changed(true);
      });
      return h("label", { class: "check" }, el, label);
    };
    const body = [];
    if (mode === "variation") {
      body.push(control(problems, `${path}.variation`, "Serve",
        select([["", "— choose —"], ...variationOptions()], serve.variation, (v) => { serve.variation = v; changed(false); })));
    } else {
      const r = serve.rollout;
      for (const v of draft.variations) {
        if (!r.variations.some((wv) => wv.variation === v.key)) r.variations.push({ variation: v.key, weight: 0 });
      }
      const sum = h("span", { class: "sum", dataset: { sumFor: `${path}.rollout.variations` } });
      body.push(h("div", { class: "rollout" }, r.variations.map((wv, i) => control(problems,
        `${path}.rollout.variations[${i}].weight`, `${wv.variation} %`,
        input(pct(wv.weight), (text) => { wv.weight = weightOf(text); changed(false); },
          { inputmode: "decimal", "aria-label": `Percentage of ${wv.variation}`, class: "pct" })))));
      const rule = r.partial ? " (at most 100%: contexts in the rest go on to the next rule)" : " (must be 100%)";
      const scheme = r.algorithm && r.algorithm !== "flagstream" ? ` Bucketing: ${r.algorithm}-compatible (imported).` : "";
      body.push(h("p", { class: "small" }, "Total: ", sum, rule + scheme), errorsAt(problems, `${path}.rollout.variations`));
      body.push(h("div", { class: "row" },
        control(problems, `${path}.rollout.bucket_by`, "Bucket by attribute",
          input(r.bucket_by, (v) => { r.bucket_by = v; changed(false); }, { size: 10 })),
        control(problems, `${path}.rollout.context_kind`, "of context kind",
          input(r.context_kind, (v) => { r.context_kind = v; changed(false); }, { size: 8 }))));
    }
    return h("fieldset", { class: "serve", dataset: { path } }, h("legend", { class: "small" }, "Then serve"),
      h("div", { class: "row" }, radio("variation", "a variation"), radio("rollout", "a percentage rollout")),
      errorsAt(problems, path), body);
  }

  function updateSums() {
    for (const el of root.querySelectorAll("[data-sum-for]")) {
      const path = el.dataset.sumFor;
      const serve = path.startsWith("$.fallthrough") ? draft.fallthrough
        : draft.rules[Number(/rules\[(\d+)\]/.exec(path)[1])].serve;
      const total = serve.rollout.variations.reduce((a, wv) => a + (Number.isFinite(wv.weight) ? wv.weight : 0), 0);
      el.textContent = `${total / 1000}%`;
      const fine = serve.rollout.partial ? total <= 100000 : total === 100000;
      el.className = `sum ${fine ? "good" : "bad"}`;
    }
    const save = root.querySelector("#save");
    if (save) save.textContent = dirty ? "Save changes" : "Saved";
  }

  function header() {
    const sw = h("button", { type: "button", role: "switch", class: "switch", id: "flag-switch",
      "aria-checked": String(rec.flag.on), disabled: rec.flag.archived,
      "aria-label": `${rec.flag.name || key} is ${rec.flag.on ? "on" : "off"} in ${ctx.env}; turn it ${rec.flag.on ? "off" : "on"}` });
    sw.addEventListener("click", async () => {
      const updated = await toggleFlag(ctx, rec, !rec.flag.on);
      if (updated) accept(updated, { keepDraft: true });
    });
    const archive = h("button", { type: "button", class: "small danger", id: "archive" }, rec.flag.archived ? "Restore" : "Archive");
    archive.addEventListener("click", async () => {
      const restoring = rec.flag.archived;
      const answer = await confirmDialog({
        title: `${restoring ? "Restore" : "Archive"} ${rec.flag.name || key}?`,
        message: restoring ? "It comes back as it was, off." : "Archived flags are off and hidden from the list; applications get the off variation... or their default once removed.",
        confirmLabel: restoring ? "Restore" : "Archive", comment: ctx.production ? "required" : "optional" });
      if (!answer) return;
      try {
        accept(await call("POST", `${url}/${restoring ? "restore" : "archive"}`, { body: { comment: answer.comment }, ifMatch: rec.version }));
        toast(`${key} ${restoring ? "restored" : "archived"}.`);
      } catch (err) {
        toast(err.message, "error");
      }
    });
    return h("div", { class: "page-head" },
      h("div", { class: "grow" },
        h("p", { class: "small" }, h("a", { href: ctx.link("flags") }, "← Flags")),
        h("h1", {}, rec.flag.name || key, " ", h("code", { class: "muted small" }, key)),
        h("p", { class: "small muted", id: "last-change" }, `Revision r${rec.revision}, version ${rec.version}. Last change `,
          lastChange(rec))),
      h("div", { class: "row" }, sw,
        rec.flag.archived ? h("span", { class: "state archived" }, "archived")
          : h("span", { class: `state ${rec.flag.on ? "on" : "off"}`, id: "flag-state" }, rec.flag.on ? "ON" : "OFF"),
        archive,
        ctx.extra.history ? h("a", { class: "button small", href: ctx.link(`history/flag/${encodeURIComponent(key)}`) }, "History and time travel") : null,
        ctx.extra.releases && !rec.flag.archived ? h("a", { class: "button small", href: ctx.link(`releases/new/${encodeURIComponent(key)}`) }, "Release in steps") : null,
        ctx.extra.releases ? h("a", { class: "button small", href: ctx.link(`releases/results/${encodeURIComponent(key)}`) }, "Experiment results") : null));
  }

  function banners() {
    const out = [];
    if (conflict) {
      const reload = h("button", { type: "button", class: "primary", id: "reload" }, "Reload their version (discard my edits)");
      reload.addEventListener("click", () => { accept(conflict); toast("Reloaded the current version."); });
      const keep = h("button", { type: "button" }, "Keep editing");
      keep.addEventListener("click", () => { conflict = null; paint(); });
      out.push(h("div", { class: "banner error", role: "alert", id: "conflict" },
        h("strong", {}, "Not saved: someone else saved this flag first. "),
        h("strong", {}, conflict.actor), " changed it ", timeEl(conflict.at),
        conflict.comment ? ` (“${conflict.comment}”)` : "", `, revision r${conflict.revision}, after you opened it. `,
        "Your edits are still here, but saving them now would overwrite that change. ",
        "Reload to see it, then make your change again.",
        h("div", { class: "actions" }, reload, keep)));
    } else if (changedElsewhere) {
      const reload = h("button", { type: "button", id: "reload" }, "Reload (discard my edits)");
      reload.addEventListener("click", () => accept(changedElsewhere));
      out.push(h("div", { class: "banner warn", role: "status", id: "changed-elsewhere" },
        h("strong", {}, changedElsewhere.actor), " changed this flag while you were editing (", timeEl(changedElsewhere.at),
        changedElsewhere.comment ? `: “${changedElsewhere.comment}”` : "", `, revision r${changedElsewhere.revision}). `,
        "Saving will be refused until you reload.", h("div", { class: "actions" }, reload)));
    }
    if (problems.size) {
      out.push(h("div", { class: "banner error", role: "alert", id: "problems" },
        h("strong", {}, `Not saved: ${problems.size} problem${problems.size > 1 ? "s" : ""} to fix.`),
        h("ul", {}, problems.list.map((p) => {
          const link = h("button", { type: "button", class: "link" }, p.path === "comment" ? "comment" : p.path);
          link.addEventListener("click", () => focusPath(p.path));
          return h("li", {}, link, `: ${p.message}`);
        }))));
    }
    return out;
  }

  function settings() {
    return h("section", { class: "panel", "aria-labelledby": "s-settings" }, h("h2", { id: "s-settings" }, "Settings"),
      h("div", { class: "row top" },
        h("div", { class: "grow" }, control(problems, "$.name", "Name", input(draft.name, (v) => { draft.name = v; changed(false); }))),
        h("div", { class: "grow" }, control(problems, "$.tags", "Tags", input(draft.tags.join(", "), (v) => {
          draft.tags = v.split(",").map((t) => t.trim()).filter(Boolean); changed(false);
        }), { hint: "comma separated" }))),
      control(problems, "$.description", "Description", (() => {
        const t = h("textarea", { rows: 2 }); t.value = draft.description;
        t.addEventListener("input", () => { draft.description = t.value; changed(false); }); return t;
      })()),
      h("div", { class: "field" },
        checkbox("Available to client-side apps", Boolean(draft.client_side), (v) => { draft.client_side = v; changed(false); }),
        h("p", { class: "small muted" }, "Web pages and mobile apps may evaluate it with a client-side key ",
          "(its rules stay on the server; the answer is shown to whoever loads the page).")));
  }

  function variations() {
    const fixed = draft.kind === "boolean";
    const rows = draft.variations.map((v, i) => {
      const p = `$.variations[${i}]`;
      let valueEl;
      if (fixed) valueEl = h("input", { value: String(v.value), readonly: true });
      else if (draft.kind === "json") {
        valueEl = h("textarea", { rows: 2, class: "mono" });
        valueEl.value = JSON.stringify(v.value, null, 1);
        valueEl.addEventListener("input", () => {
          try { v.value = JSON.parse(valueEl.value); delete v.invalid; } catch { v.invalid = "not valid JSON"; }
          changed(false);
        });
      } else {
        valueEl = input(showValue(v.value), (text) => {
          if (draft.kind === "number") {
            const n = Number(text);
            if (text.trim() === "" || Number.isNaN(n)) v.invalid = "a number"; else { v.value = n; delete v.invalid; }
          } else v.value = text;
          changed(false);
        }, draft.kind === "number" ? { inputmode: "decimal" } : {});
      }
      const remove = h("button", { type: "button", class: "small danger", disabled: fixed || draft.variations.length < 2,
        "aria-label": `Remove variation ${v.key}` }, "✕");
      remove.addEventListener("click", () => { draft.variations.splice(i, 1); changed(true); });
      return h("div", { class: "row card", dataset: { path: p } },
        control(problems, `${p}.key`, [sr(`Variation ${i + 1} `), "Key"], input(v.key, (k) => { v.key = k; changed(false); }, { readonly: fixed, size: 10 })),
        control(problems, `${p}.name`, [sr(`Variation ${i + 1} `), "Name"], input(v.name, (k) => { v.name = k; changed(false); }, { size: 14 })),
        h("div", { class: "grow" }, control(problems, `${p}.value`, [sr(`Variation ${i + 1} `), "Value"], valueEl)), remove);
    });
    const add = h("button", { type: "button", class: "small", hidden: fixed }, "+ Variation");
    add.addEventListener("click", () => {
      draft.variations.push({ key: `v${draft.variations.length + 1}`, name: "", description: "",
        value: draft.kind === "number" ? 0 : draft.kind === "json" ? {} : "" });
      changed(true);
    });
    return h("section", { class: "panel", "aria-labelledby": "s-variations" },
      h("h2", { id: "s-variations" }, `Variations `, h("span", { class: "muted small" }, `(${draft.kind})`)),
      errorsAt(problems, "$.variations"), rows, add,
      h("div", { class: "row", style: null }, control(problems, "$.off_variation", "When the flag is OFF, serve",
        select(variationOptions(), draft.off_variation, (v) => { draft.off_variation = v; changed(false); }))));
  }

  function targets() {
    const cards = draft.targets.map((t, i) => {
      const p = `$.targets[${i}]`;
      const keys = h("textarea", { rows: 2, placeholder: "one context key per line" });
      keys.value = lines(t.values);
      keys.addEventListener("input", () => { t.values = parseLines(keys.value); changed(false); });
      const remove = h("button", { type: "button", class: "small danger", "aria-label": `Remove target ${i + 1}` }, "✕");
      remove.addEventListener("click", () => { draft.targets.splice(i, 1); changed(true); });
      return h("div", { class: "card row", dataset: { path: p } },
        control(problems, `${p}.variation`, "Serve", select([["", "— choose —"], ...variationOptions()], t.variation,
          (v) => { t.variation = v; changed(false); })),
        control(problems, `${p}.context_kind`, "to context kind", input(t.context_kind, (v) => { t.context_kind = v; changed(false); }, { size: 8 })),
        h("div", { class: "grow" }, control(problems, `${p}.values`, "with these keys", keys)), remove);
    });
    const add = h("button", { type: "button", class: "small", id: "add-target" }, "+ Individual target");
    add.addEventListener("click", () => {
      draft.targets.push({ variation: draft.variations[0]?.key || "", values: [], context_kind: "user" }); changed(true);
    });
    return h("section", { class: "panel", "aria-labelledby": "s-targets" },
      h("h2", { id: "s-targets" }, "Individual targets"),
      h("p", { class: "muted small" }, "Checked first: these exact context keys get their variation."), cards, add);
  }

  function rules() {
    const cards = draft.rules.map((rule, i) => {
      const p = `$.rules[${i}]`;
      const up = h("button", { type: "button", class: "small", disabled: i === 0, "aria-label": `Move rule ${i + 1} up` }, "↑");
      up.addEventListener("click", () => { draft.rules.splice(i - 1, 0, draft.rules.splice(i, 1)[0]); changed(true); });
      const down = h("button", { type: "button", class: "small", disabled: i === draft.rules.length - 1, "aria-label": `Move rule ${i + 1} down` }, "↓");
      down.addEventListener("click", () => { draft.rules.splice(i + 1, 0, draft.rules.splice(i, 1)[0]); changed(true); });
      const remove = h("button", { type: "button", class: "small danger", "aria-label": `Delete rule ${i + 1}` }, "Delete rule");
      remove.addEventListener("click", () => { draft.rules.splice(i, 1); changed(true); });
      return h("div", { class: "card rule", dataset: { path: p } },
        h("div", { class: "card-head" }, h("h3", { class: "grow" }, `Rule ${i + 1}`), up, down, remove),
        control(problems, `${p}.description`, "Description", input(rule.description, (v) => { rule.description = v; changed(false); })),
        h("h4", { class: "small" }, "If all of these match"),
        clausesEditor(rule.clauses, `${p}.clauses`, problems, changed, { segments }),
        serveEditor(rule.serve, `${p}.serve`, rule));
    });
    const add = h("button", { type: "button", class: "small", id: "add-rule" }, "+ Rule");
    add.addEventListener("click", () => {
      draft.rules.push({ id: newId("rule"), description: "", serve: { variation: draft.variations[0]?.key },
        clauses: [{ attribute: "key", op: "in", values: [], negate: false, case_insensitive: false, context_kind: "user" }] });
      changed(true);
    });
    return h("section", { class: "panel", "aria-labelledby": "s-rules" },
      h("h2", { id: "s-rules" }, "Rules"),
      h("p", { class: "muted small" }, "Tried in order after the individual targets; the first that matches wins."),
      cards, add,
      h("div", { class: "card", dataset: { path: "$.fallthrough" } },
        h("h3", {}, "Default rule"), h("p", { class: "muted small" }, "When the flag is ON and nothing above matched."),
        serveEditor(draft.fallthrough, "$.fallthrough", draft)));
  }

  function prerequisites() {
    const cards = draft.prerequisites.map((pr, i) => {
      const p = `$.prerequisites[${i}]`;
      const other = otherFlags.find((f) => f.key === pr.flag);
      const remove = h("button", { type: "button", class: "small danger", "aria-label": `Remove prerequisite ${i + 1}` }, "✕");
      remove.addEventListener("click", () => { draft.prerequisites.splice(i, 1); changed(true); });
      return h("div", { class: "card row", dataset: { path: p } },
        control(problems, `${p}.flag`, "Flag", select([["", "— choose —"], ...otherFlags.map((f) => [f.key, f.name || f.key])],
          pr.flag, (v) => { pr.flag = v; pr.variation = otherFlags.find((f) => f.key === v)?.variations[0]?.key || ""; changed(true); })),
        control(problems, `${p}.variation`, "must serve", select([["", "— choose —"],
          ...(other ? other.variations.map((v) => [v.key, v.name || v.key]) : [])], pr.variation, (v) => { pr.variation = v; changed(false); })),
        remove);
    });
    const add = h("button", { type: "button", class: "small", disabled: !otherFlags.length }, "+ Prerequisite");
    add.addEventListener("click", () => { draft.prerequisites.push({ flag: "", variation: "" }); changed(true); });
    return h("section", { class: "panel", "aria-labelledby": "s-prereq" },
      h("h2", { id: "s-prereq" }, "Prerequisites"),
      h("p", { class: "muted small" }, "This flag is served normally only if each of these flags serves the given variation."),
      cards, add);
  }

  function savebar() {
    const commentEl = h("textarea", { id: "comment", rows: 1, placeholder: ctx.production ? "Required in production: why?" : "Optional" });
    commentEl.value = comment;
    commentEl.addEventListener("input", () => { comment = commentEl.value; if (problems.size) changed(false); });
    const save = h("button", { type: "submit", class: "primary", id: "save" }, dirty ? "Save changes" : "Saved");
    const discard = h("button", { type: "button", id: "discard", disabled: !dirty }, "Discard");
    discard.addEventListener("click", () => accept(rec));
    return h("div", { class: "savebar" },
      h("div", { class: "grow" }, control(problems, "comment", ctx.production ? "Comment (required in production)" : "Comment", commentEl)),
      discard, save);
  }

  function focusPath(path) {
    let target = root.querySelector(`[data-path="${CSS.escape(path)}"]`);
    let p = path;
    while (!target && p.includes(".")) {
      p = p.replace(/(\.[^.[\]]+|\[\d+\])$/, "");
      target = root.querySelector(`[data-path="${CSS.escape(p)}"]`);
    }
    if (target) {
      target.scrollIntoView({ block: "center" });
      (target.matches("input,select,textarea,button") ? target : target.querySelector("input,select,textarea,button"))?.focus();
    }
  }

  function paint() {
    const focused = document.activeElement?.dataset?.path;
    const form = h("form", { novalidate: true, "aria-label": `Edit flag ${key}` },
      banners(), settings(), variations(), targets(), rules(), prerequisites(), savebar());
    form.addEventListener("submit", (event) => { event.preventDefault(); save(); });
    clear(root, header(), form,
      h("datalist", { id: "attribute-suggestions" }, ["key", "email", "country", "plan", "version", "name"].map((a) => h("option", { value: a }))));
    decorate(root, problems);
    updateSums();
    if (focused) root.querySelector(`[data-path="${CSS.escape(focused)}"]`)?.focus();
  }

  function accept(updated, { keepDraft = false } = {}) {
    rec = updated;
    conflict = null;
    changedElsewhere = null;
    if (keepDraft && dirty) {
      draft.on = updated.flag.on;
    } else {
      draft = clone(updated.flag);
      dirty = false;
      problems = new Problems();
    }
    paint();
  }

  function payload() {
    // Every field of the flag as read, with the edits: a PUT carries the whole flag, so a field this editor does
    // not show goes back unchanged (never reset, never a 422 for a field added to the model later).
    const body = { ...draft };
    body.variations = draft.variations.map(({ invalid, ...v }) => v);
    body.comment = comment.trim();
    return body;
  }

  async function save() {
    problems = new Problems(flagProblems(draft, { production: ctx.production, comment, otherFlags }));
    if (problems.size) {
      paint();
      root.querySelector("#problems")?.focus?.();
      focusPath(problems.list[0].path);
      return;
    }
    const button = root.querySelector("#save");
    button.disabled = true;
    button.textContent = "Saving…";
    try {
      const updated = await call("PUT", url, { body: payload(), ifMatch: rec.version });
      comment = "";
      accept(updated);
      toast(`Saved ${key} (revision r${updated.revision}).`);
    } catch (err) {
      if (err.status === 409 && err.body.current) {
        conflict = err.body.current;
        paint();
        root.querySelector("#conflict")?.scrollIntoView({ block: "center" });
        root.querySelector("#reload")?.focus();
      } else if (err.status === 422 && err.problems.length) {
        problems = new Problems(err.problems);
        paint();
        focusPath(problems.list[0].path);
      } else {
        paint();
        toast(`Not saved: ${err.message}`, "error");
      }
    }
  }

  paint();
  return {
    canLeave: () => !dirty,
    onChange(change) {
      if (change.kind === "segment") { loadRefs(); return; }
      if (change.kind !== "flag") return;
      if (change.record.key !== key) {
        const at = otherFlags.findIndex((f) => f.key === change.record.key);
        if (at >= 0) otherFlags[at] = change.record.flag; else if (!change.record.flag.archived) otherFlags.push(change.record.flag);
        return;
      }
      if (change.record.version <= rec.version) return;
      if (!dirty) {
        accept(change.record);
        toast(`${change.record.actor} changed ${key}; showing the new version.`);
      } else {
        changedElsewhere = change.record;
        paint();
      }
    },
  };
}
