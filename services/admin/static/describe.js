// Read-only views of a flag or a segment in words (used by time travel and the playground).
import { h } from "./dom.js";
import { OPERATORS } from "./form.js";

const OPS = Object.fromEntries(OPERATORS);
const show = (v) => (typeof v === "string" ? v : JSON.stringify(v));

export function serveText(serve, flag) {
  if (!serve) return "nothing";
  const name = (key) => flag.variations.find((v) => v.key === key)?.name || key;
  if (serve.variation != null) return name(serve.variation);
  return serve.rollout.variations.filter((wv) => wv.weight > 0)
    .map((wv) => `${wv.weight / 1000}% ${name(wv.variation)}`).join(", ") + ` (by ${serve.rollout.bucket_by})`;
}

export function clauseText(c) {
  if (c.op === "in_segment") return `${c.negate ? "not " : ""}in segment ${c.values.join(" or ")}`;
  const who = c.context_kind && c.context_kind !== "user" ? `${c.context_kind}.` : "";
  const values = c.op === "exists" ? "" : ` ${c.values.map(show).join(", ")}`;
  return `${who}${c.attribute} ${c.negate ? "NOT " : ""}${OPS[c.op] || c.op}${values}${c.case_insensitive ? " (any case)" : ""}`;
}

export function flagSummary(flag) {
  return h("div", { class: "flag-summary" },
    h("p", {}, h("span", { class: `state ${flag.archived ? "archived" : flag.on ? "on" : "off"}` },
      flag.archived ? "archived" : flag.on ? "ON" : "OFF"), " ", h("strong", {}, flag.name || flag.key),
    " ", h("code", { class: "muted" }, flag.key)),
    h("dl", { class: "kv" },
      h("dt", {}, "Variations"), h("dd", {}, flag.variations.map((v) => `${v.name || v.key} = ${show(v.value)}`).join("; ")),
      h("dt", {}, "When off"), h("dd", {}, flag.off_variation),
      flag.targets.length ? [h("dt", {}, "Targets"), h("dd", {}, flag.targets.map((t) => `${t.values.join(", ")} → ${t.variation}`).join("; "))] : null,
      flag.rules.map((r, i) => [h("dt", {}, `Rule ${i + 1}`),
        h("dd", {}, `if ${r.clauses.map(clauseText).join(" and ") || "always"} → ${serveText(r.serve, flag)}`)]),
      h("dt", {}, "Default"), h("dd", {}, serveText(flag.fallthrough, flag)),
      flag.prerequisites.length ? [h("dt", {}, "Prerequisites"), h("dd", {}, flag.prerequisites.map((p) => `${p.flag} = ${p.variation}`).join("; "))] : null,
      flag.tags.length ? [h("dt", {}, "Tags"), h("dd", {}, flag.tags.join(", "))] : null));
}

export function segmentSummary(segment) {
  return h("div", {}, h("p", {}, h("strong", {}, segment.name || segment.key), " ", h("code", { class: "muted" }, segment.key),
    segment.archived ? h("span", { class: "state archived" }, "archived") : null),
  h("dl", { class: "kv" },
    h("dt", {}, "Included"), h("dd", {}, segment.included.join(", ") || "—"),
    h("dt", {}, "Excluded"), h("dd", {}, segment.excluded.join(", ") || "—"),
    segment.rules.map((r, i) => [h("dt", {}, `Rule ${i + 1}`),
      h("dd", {}, `${r.clauses.map(clauseText).join(" and ")}${r.weight != null ? ` (${r.weight / 1000}% of them)` : ""}`)])));
}
