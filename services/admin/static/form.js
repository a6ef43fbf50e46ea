// Form building blocks shared by the flag and segment editors: every control carries the JSON path of the
// field it edits (data-path), so client-side checks and the server's 422 problems appear next to the field.
import { h, nextId } from "./dom.js";
import { readingOptions } from "./sentences.js";

export const OPERATORS = [
  ["in", "is one of"], ["not_in", "is not one of"], ["equals", "equals"], ["starts_with", "starts with"],
  ["ends_with", "ends with"], ["contains", "contains"], ["matches", "matches (regular expression)"],
  ["lt", "is less than"], ["lte", "is at most"], ["gt", "is more than"], ["gte", "is at least"],
  ["semver_eq", "is version"], ["semver_lt", "is a version before"], ["semver_lte", "is a version up to"],
  ["semver_gt", "is a version after"], ["semver_gte", "is a version from"],
  ["before", "is before (date)"], ["after", "is after (date)"], ["exists", "is set"],
  ["in_cidr", "is in network (CIDR)"], ["mod", "modulo [divisor, remainder]"], ["in_segment", "is in segment"],
];
export const DATES = new Set(["before", "after"]);
export const NUMERIC = new Set(["lt", "lte", "gt", "gte", "mod"]);

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

/** Values of a condition that compares as another system does (`cast`: imported): each line JSON when it reads as
 * a JSON text, number, boolean or null (`"30"` is text, `30` a number: they compare differently there), else text. */
export function typedValues(text) {
  return parseLines(text).map((line) => {
    try {
      const value = JSON.parse(line);
      return value === null || typeof value !== "object" ? value : line;
    } catch {
      return line;
    }
  });
}

const typedLines = (values) => (values || []).map((v) => JSON.stringify(v)).join("\n");

const OTHER = "\u0000other";

/**
 * A choice among known names (context kinds, attribute names) that still takes a name not listed yet: the
 * select has "Other…", which shows a text box. `onChange(name)` is called with the chosen or typed name.
 */
function choice(problems, path, label, known, value, onChange, otherLabel) {
  const names = [...new Set([...known])].filter(Boolean);
  const listed = names.includes(value);
  const sel = h("select", {}, names.map((n) => h("option", { value: n }, n)), h("option", { value: OTHER }, "Other…"));
  sel.value = listed ? value : OTHER;
  const other = h("input", { value: listed ? "" : value ?? "", "aria-label": otherLabel, placeholder: "name", hidden: listed, size: 10 });
  sel.addEventListener("change", () => {
    other.hidden = sel.value !== OTHER;
    if (sel.value === OTHER) { other.focus(); onChange(other.value.trim()); } else onChange(sel.value);
  });
  other.addEventListener("input", () => onChange(other.value.trim()));
  return h("div", { class: "choice" }, control(problems, path, label, sel), other);
}

/** An ISO date-time (or epoch seconds/milliseconds) as a datetime-local value in this browser's time zone. */
export function toLocalInput(value) {
  let date = null;
  if (typeof value === "number") date = new Date(value > 1e11 ? value : value * 1000);
  else if (typeof value === "string" && value) date = new Date(value);
  if (!date || Number.isNaN(date.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/** A datetime-local value (this browser's time zone) as the ISO-8601 UTC instant the API stores. */
export function fromLocalInput(text) {
  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? "" : date.toISOString().replace(/\.000Z$/, "Z");
}

/**
 * Editor of a list of clauses (all must match), built from choices: the context kind and the attribute are
 * picked from those known (`kinds`, `attributes`: kind -> names, e.g. what the fleet has seen), with "Other…"
 * for a name not seen yet; the operator from a list; a date picker for the date operators, a list of the
 * environment's segments for "is in segment" (which has no attribute). `changed(structural)` after each edit.
 */
export function clausesEditor(clauses, path, problems, changed, { segments = [], kinds = [], attributes = {} } = {}) {
  const rows = clauses.map((clause, j) => {
    const cp = `${path}[${j}]`;
    const n = j + 1;
    const remove = h("button", { type: "button", class: "small danger", "aria-label": `Remove condition ${n}` }, "✕");
    remove.addEventListener("click", () => { clauses.splice(j, 1); changed(true); });
    const isSegment = clause.op === "in_segment";
    const kind = clause.context_kind ?? "user";
    const kindChoice = choice(problems, `${cp}.context_kind`, "Context kind", ["user", ...kinds, kind], kind,
      (v) => { clause.context_kind = v; changed(true); }, `Condition ${n}: kind not listed`);
    const known = ["key", ...(attributes[kind] || []), clause.attribute ?? "key"];
    const attributeChoice = isSegment ? null : choice(problems, `${cp}.attribute`, "Attribute", known, clause.attribute ?? "key",
      (v) => { clause.attribute = v; changed(false); }, `Condition ${n}: name not listed`);
    let valuesEl;
    let valuesLabel = "Values";
    if (isSegment) {
      valuesLabel = "Segments";
      valuesEl = h("select", { multiple: true, size: Math.max(2, Math.min(4, segments.length)) },
        [...new Set([...segments, ...clause.values])].map((s) => h("option", { value: s, selected: clause.values.includes(s) }, s)));
      valuesEl.addEventListener("change", () => { clause.values = [...valuesEl.selectedOptions].map((o) => o.value); changed(false); });
    } else if (DATES.has(clause.op)) {
      valuesLabel = "Date and time";
      valuesEl = h("input", { type: "datetime-local", value: toLocalInput(clause.values[0]) });
      valuesEl.addEventListener("input", () => {
        const iso = fromLocalInput(valuesEl.value);
        clause.values = iso ? [iso] : [];
        changed(false);
      });
    } else if (clause.op === "exists") {
      valuesEl = null;
    } else if (clause.cast) {
      // Compared as the system it was imported from does: a value's type matters there, so each is shown typed.
      valuesEl = h("textarea", { rows: 1, placeholder: "one value per line, as JSON" });
      valuesEl.value = typedLines(clause.values);
      valuesEl.addEventListener("input", () => { clause.values = typedValues(valuesEl.value); changed(false); });
    } else {
      valuesEl = h("textarea", { rows: 1, placeholder: "one value per line" });
      valuesEl.value = lines(clause.values);
      valuesEl.addEventListener("input", () => { clause.values = clauseValues(clause.op, valuesEl.value); changed(false); });
    }
    const opSelect = select(OPERATORS, clause.op, (v) => {
      const was = clause.op;
      clause.op = v;
      if (v === "exists") clause.values = [];
      else if (v === "in_segment" || was === "in_segment" || DATES.has(v) !== DATES.has(was)) clause.values = [];
      if (!clause.cast) clause.values = NUMERIC.has(v) ? clauseValues(v, lines(clause.values)) : clause.values.map(String);
      changed(true);
    });
    // Options an importer set (how the attribute is read, how values compare): shown, and kept as they are by a
    // save (the clause object is edited in place, so nothing the editor has no control for is dropped).
    const caseBox = !(isSegment || DATES.has(clause.op) || clause.op === "exists");
    const reading = readingOptions(clause).filter((o) => !(caseBox && o === "any case"));
    return h("div", { class: `clause${isSegment ? " segment" : ""}`, dataset: { path: cp } },
      kindChoice,
      attributeChoice,
      control(problems, `${cp}.op`, "Operator", opSelect),
      h("div", { class: "values" }, valuesEl ? control(problems, `${cp}.values`, valuesLabel, valuesEl,
        DATES.has(clause.op) ? { hint: "in your time zone; saved as UTC" }
          : clause.cast ? { hint: '"30" is text, 30 a number' } : {})
        : h("p", { class: "small muted", "data-path": `${cp}.values` }, "(no value)")),
      h("div", { class: "opts" },
        checkbox("not", clause.negate, (v) => { clause.negate = v; changed(false); }),
        caseBox ? checkbox("ignore case", clause.case_insensitive, (v) => { clause.case_insensitive = v; changed(false); }) : null,
        remove),
      reading.length ? h("p", { class: "reading small" },
        "Read as imported: ", reading.join(", ")) : null);
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
