// Targeting in words: a rule, a serve, a flag's configuration in one line. The same text as the Python side
// (services/targeting/sentences.py), word for word: tests/ui/test_ui_sentences.py renders the same flags in
// Chromium and in Python and compares. Pure: a flag as the API gives it (JSON) in, text out.
//
//     If state is one of CA and os is one of iOS, serve on to 10%, off to 90%
//     Otherwise serve off

// How each operator reads; the negated form where English has one.
const PHRASES = {
  in: ["is one of", "is not one of"],
  not_in: ["is not one of", "is one of"],
  equals: ["equals", "does not equal"],
  starts_with: ["starts with", "does not start with"],
  ends_with: ["ends with", "does not end with"],
  contains: ["contains", "does not contain"],
  matches: ["matches", "does not match"],
  lt: ["is less than", "is not less than"],
  lte: ["is at most", "is more than"],
  gt: ["is more than", "is at most"],
  gte: ["is at least", "is less than"],
  semver_eq: ["is version", "is not version"],
  semver_lt: ["is a version before", "is not a version before"],
  semver_lte: ["is a version up to", "is not a version up to"],
  semver_gt: ["is a version after", "is not a version after"],
  semver_gte: ["is a version from", "is not a version from"],
  before: ["is before", "is not before"],
  after: ["is after", "is not after"],
  exists: ["is set", "is not set"],
  in_cidr: ["is in", "is not in"],
};

const WEIGHT_TOTAL = 100000;

// Python's json.dumps with its defaults: ", " and ": " separators, non-ASCII escaped as \uXXXX.
function pyJson(value) {
  if (value === null || value === undefined) return "null";
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "number") return Number.isFinite(value) ? String(value) : value > 0 ? "Infinity" : value < 0 ? "-Infinity" : "NaN";
  if (typeof value === "string") {
    return JSON.stringify(value).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
  }
  if (Array.isArray(value)) return `[${value.map(pyJson).join(", ")}]`;
  return `{${Object.entries(value).map(([k, v]) => `${pyJson(k)}: ${pyJson(v)}`).join(", ")}}`;
}

export function valueText(value) { return typeof value === "string" ? value : pyJson(value); }

export function valuesText(values) { return (values || []).map(valueText).join(", "); }

/** 100,000ths as a percentage without needless digits: 10000 -> "10%", 12345 -> "12.345%". */
export function percent(weight) {
  return `${((weight * 100) / WEIGHT_TOTAL).toFixed(3).replace(/0+$/, "").replace(/\.$/, "")}%`;
}

// How an imported condition reads its attribute or compares (options an importer sets so the flag answers as
// its original system did), in words; a value not listed here reads `option=value`.
const READING = {
  stringify: { python: "numbers read as text, as Python writes them", js: "numbers read as text, as JavaScript writes them" },
  semver: {
    strict: "strict semver",
    launchdarkly: "versions read as LaunchDarkly does",
    flagd: "versions read as flagd does",
    growthbook: "versions read as GrowthBook does",
  },
  now: { always: "the evaluation time, not the attribute", if_absent: "the evaluation time when absent" },
  cast: { python: "compared as Flagsmith does", js: "compared as GrowthBook does", jsonlogic: "compared as flagd does" },
};

/** A condition's reading options in words (`any case`, `numbers read from strings`...), in a fixed order. */
export function readingOptions(clause) {
  const found = clause.case_insensitive ? ["any case"] : [];
  if (clause.numeric_strings) found.push("numbers read from strings");
  for (const [name, words] of Object.entries(READING)) {
    const value = clause[name];
    if (value) found.push(Object.hasOwn(words, value) ? words[value] : `${name}=${value}`);
  }
  return found;
}

function withOptions(text, clause) {
  const options = readingOptions(clause);
  return options.length ? `${text} (${options.join(", ")})` : text;
}

export function clauseText(clause) {
  const kind = clause.context_kind ?? "user";
  const values = clause.values || [];
  if (clause.op === "in_segment") {
    const who = kind === "user" ? "" : `the ${kind} `;
    const verb = clause.negate ? "is not in" : "is in";
    const noun = values.length === 1 ? "segment" : "one of the segments";
    return `${who || "the user "}${verb} ${noun} ${valuesText(values)}`.trim();
  }
  const attribute = kind === "user" ? (clause.attribute ?? "key") : `${kind}.${clause.attribute ?? "key"}`;
  if (clause.op === "mod") { // values [divisor, remainder]
    const [divisor = null, remainder = null] = values;
    return withOptions(`${attribute} modulo ${valueText(divisor)} ${clause.negate ? "is not" : "is"} ${valueText(remainder)}`, clause);
  }
  let phrase = (PHRASES[clause.op] || [clause.op, `not ${clause.op}`])[clause.negate ? 1 : 0];
  if ((clause.op === "in" || clause.op === "not_in") && values.length === 1) phrase = phrase.replace(" one of", "");
  const text = clause.op === "exists" ? `${attribute} ${phrase}` : `${attribute} ${phrase} ${valuesText(values)}`;
  return withOptions(text, clause);
}

export function conditionsText(clauses) { return (clauses || []).map(clauseText).join(" and "); }

/** `on`, or `on to 10%, off to 90%` (`by company` when not bucketed by the key). */
export function serveText(serve) {
  if (!serve || !serve.rollout) return (serve && serve.variation) || "nothing";
  const r = serve.rollout;
  let shares = r.variations.filter((w) => w.weight).map((w) => `${w.variation} to ${percent(w.weight)}`).join(", ");
  const by = r.bucket_by ?? "key";
  const kind = r.context_kind ?? "user";
  if (by !== "key" || kind !== "user") shares += ` by ${kind === "user" ? by : `${kind}.${by}`}`;
  return shares || "nothing";
}

/** `If state is one of CA and os is iOS, serve on to 10%, off to 90%`. */
export function ruleText(rule) {
  if (!rule.clauses || !rule.clauses.length) return `Always serve ${serveText(rule.serve)}`;
  return `If ${conditionsText(rule.clauses)}, serve ${serveText(rule.serve)}`;
}

function targetsText(config) {
  return (config.targets || []).filter((t) => t.values && t.values.length).map((t) => `${t.values.join(", ")} get ${t.variation}`);
}

/** `login-v2 is on`; `(not while switched off)` when it also fails while the other flag is off, whatever that flag
 * then serves (LaunchDarkly's rule, kept by its importer: `require_on`). */
export function prerequisiteText(p) {
  const text = `${p.flag} is ${p.variation}`;
  return p.require_on ? `${text} (not while switched off)` : text;
}

/** A flag's configuration in one environment, line by line, in the order it is evaluated. */
export function configurationLines(config) {
  if (!config.on) return [`Off: serve ${config.off_variation}`];
  const rules = config.rules || [];
  const targets = config.targets || [];
  const lines = (config.prerequisites || []).map((p) => `Only if ${prerequisiteText(p)}`);
  lines.push(...targetsText(config));
  rules.forEach((rule, i) => lines.push(`Rule ${i + 1}: ${ruleText(rule)}`));
  lines.push(`${rules.length || targets.length ? "Otherwise serve" : "Serve"} ${serveText(config.fallthrough)}`);
  return lines;
}

/** A serve in a few words: `on`, or a rollout's shares but the off variation's (`10% on`). */
function short(serve, off) {
  if (!serve || !serve.rollout) return (serve && serve.variation) || "nothing";
  const shares = serve.rollout.variations.filter((w) => w.weight && w.variation !== off).map((w) => `${percent(w.weight)} ${w.variation}`);
  return shares.join(", ") || off;
}

/** One line for a list column: `off`, `on to everyone`, `10% on for state is CA; else off`, `3 rules; else off`. */
export function summary(config) {
  if (config.archived) return "archived";
  if (!config.on) return "off";
  const rules = config.rules || [];
  const rest = [];
  if (config.prerequisites && config.prerequisites.length) {
    rest.push(`if ${config.prerequisites.map(prerequisiteText).join(", ")}`);
  }
  if (config.targets && config.targets.length) rest.push(`${config.targets.reduce((n, t) => n + t.values.length, 0)} targeted`);
  const otherwise = short(config.fallthrough, config.off_variation);
  let head;
  if (rules.length === 1 && rules[0].clauses && rules[0].clauses.length) {
    head = `${short(rules[0].serve, config.off_variation)} for ${conditionsText(rules[0].clauses)}; else ${otherwise}`;
  } else if (rules.length) {
    head = `${rules.length} rules; else ${otherwise}`;
  } else {
    head = config.fallthrough && config.fallthrough.rollout ? otherwise : `${otherwise} to everyone`;
  }
  return [head, ...rest].join("; ");
}
