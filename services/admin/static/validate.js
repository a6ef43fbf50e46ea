// Client-side checks, run before saving so the person sees what is wrong next to the field (the server checks
// again and its 422 problems are shown the same way). Paths are the JSON paths the API uses.
const KEY = /^[A-Za-z0-9_-]{1,64}$/;
const TOTAL = 100000;

function serveProblems(serve, path, keys, out) {
  if (!serve || (serve.variation == null) === (serve.rollout == null)) {
    out.push({ path, message: "choose a variation or a percentage rollout" });
    return;
  }
  if (serve.variation != null) {
    if (!keys.has(serve.variation)) out.push({ path: `${path}.variation`, message: "choose a variation" });
    return;
  }
  const r = serve.rollout;
  let sum = 0;
  r.variations.forEach((wv, i) => {
    const p = `${path}.rollout.variations[${i}]`;
    if (!keys.has(wv.variation)) out.push({ path: `${p}.variation`, message: `unknown variation ${wv.variation}` });
    if (!Number.isInteger(wv.weight) || wv.weight < 0 || wv.weight > TOTAL) {
      out.push({ path: `${p}.weight`, message: "a percentage between 0 and 100 (up to 3 decimals)" });
    }
    sum += Number.isFinite(wv.weight) ? wv.weight : 0;
  });
  if (r.partial && sum > TOTAL) {
    out.push({ path: `${path}.rollout.variations`, message: `the percentages add up to ${sum / 1000}%, at most 100% for a partial rollout` });
  } else if (!r.partial && sum !== TOTAL) {
    out.push({ path: `${path}.rollout.variations`, message: `the percentages add up to ${sum / 1000}%, they must add up to 100%` });
  }
  if (!r.bucket_by) out.push({ path: `${path}.rollout.bucket_by`, message: "name the attribute to bucket by (usually key)" });
}

function clauseProblems(clause, path, out) {
  if (clause.op !== "in_segment" && !clause.attribute) out.push({ path: `${path}.attribute`, message: "name an attribute" });
  if (clause.op !== "exists" && !clause.values.length) out.push({ path: `${path}.values`, message: "give at least one value" });
  // An imported condition that compares as its original system does (cast) may compare texts with these operators.
  if (["lt", "lte", "gt", "gte", "mod"].includes(clause.op) && !clause.cast && clause.values.some((v) => typeof v !== "number")) {
    out.push({ path: `${path}.values`, message: "this operator compares numbers" });
  }
}

export function flagProblems(flag, { production = false, comment = "", otherFlags = [] } = {}) {
  const out = [];
  const keys = new Set();
  if (!flag.variations.length) out.push({ path: "$.variations", message: "a flag needs at least one variation" });
  flag.variations.forEach((v, i) => {
    if (!KEY.test(v.key || "")) out.push({ path: `$.variations[${i}].key`, message: "letters, digits, - and _ only" });
    else if (keys.has(v.key)) out.push({ path: `$.variations[${i}].key`, message: `duplicate variation key ${v.key}` });
    keys.add(v.key);
    if (v.invalid) out.push({ path: `$.variations[${i}].value`, message: v.invalid });
    else if (flag.kind === "number" && typeof v.value !== "number") out.push({ path: `$.variations[${i}].value`, message: "a number" });
    else if (flag.kind === "string" && typeof v.value !== "string") out.push({ path: `$.variations[${i}].value`, message: "a string" });
  });
  if (!keys.has(flag.off_variation)) out.push({ path: "$.off_variation", message: "choose the variation served when the flag is off" });
  serveProblems(flag.fallthrough, "$.fallthrough", keys, out);
  flag.targets.forEach((t, i) => {
    if (!keys.has(t.variation)) out.push({ path: `$.targets[${i}].variation`, message: "choose a variation" });
    if (!t.values.length) out.push({ path: `$.targets[${i}].values`, message: "list at least one context key" });
  });
  const ids = new Set();
  flag.rules.forEach((rule, i) => {
    const p = `$.rules[${i}]`;
    if (ids.has(rule.id)) out.push({ path: `${p}.id`, message: "duplicate rule id" });
    ids.add(rule.id);
    // A rule without conditions matches everyone: only a partial rollout (the rest goes on to the next rule)
    // makes it different from the default rule.
    const partial = rule.serve && rule.serve.rollout && rule.serve.rollout.partial;
    if (!rule.clauses.length && !partial) out.push({ path: `${p}.clauses`, message: "add at least one condition (or use the default rule)" });
    rule.clauses.forEach((c, j) => clauseProblems(c, `${p}.clauses[${j}]`, out));
    serveProblems(rule.serve, `${p}.serve`, keys, out);
  });
  flag.prerequisites.forEach((pr, i) => {
    const p = `$.prerequisites[${i}]`;
    if (!pr.flag) out.push({ path: `${p}.flag`, message: "choose a flag" });
    else if (pr.flag === flag.key) out.push({ path: `${p}.flag`, message: "a flag cannot depend on itself" });
    else {
      const other = otherFlags.find((f) => f.key === pr.flag);
      if (other && !other.variations.some((v) => v.key === pr.variation)) {
        out.push({ path: `${p}.variation`, message: "choose a variation of that flag" });
      }
    }
  });
  if (production && !comment.trim()) out.push({ path: "comment", message: "production: say why you make this change" });
  return out;
}

export function segmentProblems(segment, { production = false, comment = "" } = {}) {
  const out = [];
  const ids = new Set();
  segment.rules.forEach((rule, i) => {
    const p = `$.rules[${i}]`;
    if (ids.has(rule.id)) out.push({ path: `${p}.id`, message: "duplicate rule id" });
    ids.add(rule.id);
    rule.clauses.forEach((c, j) => {
      // Segments may name segments; the server refuses a cycle through others (422 naming it).
      if (c.op === "in_segment" && (c.values || []).includes(segment.key)) {
        out.push({ path: `${p}.clauses[${j}].values`, message: "a segment cannot contain itself" });
      } else clauseProblems(c, `${p}.clauses[${j}]`, out);
    });
    if (rule.weight != null && (!Number.isInteger(rule.weight) || rule.weight < 0 || rule.weight > TOTAL)) {
      out.push({ path: `${p}.weight`, message: "a percentage between 0 and 100" });
    }
  });
  if (production && !comment.trim()) out.push({ path: "comment", message: "production: say why you make this change" });
  return out;
}
