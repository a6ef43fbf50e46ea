// Form building blocks shared by the flag and segment editors: every control carries the JSON path of the
// field it edits (data-path), so client-side checks and the server's 422 problems appear next to the field.
import { h, nextId } from "./dom.js";

export const OPERATORS = [
  ["in", "is one of"], ["not_in", "is not one of"], ["equals", "equals"], ["starts_with", "starts with"],
  ["ends_with", "ends with"], ["contains", "contains"], ["matches", "matches regex"],
  ["lt", "<"], ["lte", "≤"], ["gt", ">"], ["gte", "≥"],
  ["semver_eq", "semver ="], ["semver_lt", "semver <"], ["semver_lte", "semver ≤"], ["semver_gt", "semver >"],
  ["semver_gte", "semver ≥"], ["before", "before (date)"], ["after", "after (date)"], ["exists", "exists"],
  ["in_segment", "in segment"],
];
export const NUMERIC = new Set(["lt", "lte", "gt", "gte"]);

/** Problems by JSON path, rendered next to controls. */
export class Problems {
  constructor(list = []) { this.list = list; }
  at(path) { return this.list.filter((p) => p.path === path).map((p) => p.message); }
  get size() { return this.list.length; }
}

/** A labelled control bound to a path (its errors are added by `decorate`). */
export function control(problems, path, label, el, { hint } = {}) {
  const id = el.id || nextId("c");
  el.id = id;
  el.dataset.path = path;
  return h("label", { class: "field", for: id }, h("span", {}, label), el, hint ? h("small", {}, hint) : null);
}

/** A placeholder for errors about a whole list or sum (no single control). */
export function errorsAt(problems, path) {
  return h("div", { class: "errors-at", dataset: { path } });
}

/**
 * Show every problem next to the control it is about: the control whose data-path is the problem's path, or
 * else the nearest enclosing path that has one (a problem at $.rules[0].clauses[1].values[2] lands on the
 * values box of that clause). The control is marked aria-invalid and described by the message.
 */
export function decorate(root, problems) {
  for (const problem of problems.list) {
    let path = problem.path;
    let target = null;
    for (;;) {
      target = root.querySelector(`[data-path="${CSS.escape(path)}"]`);
      if (target || !/(\.[^.[\]]+|\[\d+\])$/.test(path)) break;
      path = path.replace(/(\.[^.[\]]+|\[\d+\])$/, "");
    }
    if (!target) continue;
    const message = h("p", { class: "field-error", id: nextId("err"), dataset: { errorFor: problem.path } }, problem.message);
    if (target.matches("input, select, textarea")) {
      target.setAttribute("aria-invalid", "true");
      const ids = (target.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
      target.setAttribute("aria-describedby", [...ids, message.id].join(" "));
      target.closest("label")?.append(message) ?? target.after(message);
    } else {
      target.append(message);
    }
  }
}

export function input(value, onInput, attrs = {}) {
  const el = h("input", { value: value ?? "", ...attrs });
  el.addEventListener("input", () => onInput(el.value));
  return el;
}

export function select(options, value, onChange, attrs = {}) {
  const el = h("select", attrs, options.map(([v, l]) => h("option", { value: v }, l)));
  el.value = value ?? "";
  el.addEventListener("change", () => onChange(el.value));
  return el;
}

export function checkbox(label, checked, onChange) {
  const el = h("input", { type: "checkbox", checked });
  el.addEventListener("change", () => onChange(el.checked));
  return h("label", { class: "check" }, el, label);
}

export function lines(values) { return (values || []).map((v) => (typeof v === "string" ? v : JSON.stringify(v))).join("\n"); }

export function parseLines(text) { return text.split(/\n/).map((s) => s.trim()).filter(Boolean); }

/** Clause values as the API wants them: numbers for numeric operators, strings otherwise. */
export function clauseValues(op, text) {
  const items = parseLines(text);
  if (NUMERIC.has(op)) return items.map((v) => (v !== "" && !Number.isNaN(Number(v)) ? Number(v) : v));
  return items;
}

/** Editor of a list of clauses (all must match). `changed(structural)` is called after each edit. */
export function clausesEditor(clauses, path, problems, changed, { segments = [] } = {}) {
  const rows = clauses.map((clause, j) => {
    const cp = `${path}[${j}]`;
    const remove = h("button", { type: "button", class: "small danger", "aria-label": `Remove condition ${j + 1}` }, "✕");
    remove.addEventListener("click", () => { clauses.splice(j, 1); changed(true); });
    const isSegment = clause.op === "in_segment";
    const valuesEl = isSegment && segments.length
      ? h("select", { multiple: true, size: Math.min(4, segments.length) },
        segments.map((s) => h("option", { value: s, selected: clause.values.includes(s) }, s)))
      : h("textarea", { rows: 1, placeholder: clause.op === "exists" ? "(no values)" : "one value per line",
        disabled: clause.op === "exists" });
    if (valuesEl.tagName === "TEXTAREA") {
      valuesEl.value = lines(clause.values);
      valuesEl.addEventListener("input", () => { clause.values = clauseValues(clause.op, valuesEl.value); changed(false); });
    } else {
      valuesEl.addEventListener("change", () => {
        clause.values = [...valuesEl.selectedOptions].map((o) => o.value); changed(false);
      });
    }
    return h("div", { class: "clause", dataset: { path: cp } },
      control(problems, `${cp}.context_kind`, "Context kind",
        input(clause.context_kind ?? "user", (v) => { clause.context_kind = v; changed(false); }, { size: 6 })),
      control(problems, `${cp}.attribute`, "Attribute",
        input(clause.attribute ?? "key", (v) => { clause.attribute = v; changed(false); },
          { disabled: isSegment, list: "attribute-suggestions" })),
      control(problems, `${cp}.op`, "Operator", select(OPERATORS, clause.op, (v) => {
        clause.op = v;
        if (v === "exists") clause.values = [];
        clause.values = NUMERIC.has(v) ? clauseValues(v, lines(clause.values)) : clause.values.map(String);
        changed(true);
      })),
      h("div", { class: "values" }, control(problems, `${cp}.values`, isSegment ? "Segments" : "Values", valuesEl)),
      h("div", { class: "opts" },
        checkbox("not", clause.negate, (v) => { clause.negate = v; changed(false); }),
        checkbox("ignore case", clause.case_insensitive, (v) => { clause.case_insensitive = v; changed(false); }),
        remove));
  });
  const add = h("button", { type: "button", class: "small" }, "+ Condition");
  add.addEventListener("click", () => {
    clauses.push({ attribute: "key", op: "in", values: [], negate: false, case_insensitive: false, context_kind: "user" });
    changed(true);
  });
  return h("div", { class: "clauses" },
    clauses.length ? null : h("p", { class: "muted small" }, "No conditions: matches every context."),
    rows, errorsAt(problems, path), add);
}

export const newId = (prefix) => `${prefix}-${Date.now().toString(36)}${Math.floor(Math.random() * 1e4).toString(36)}`;
