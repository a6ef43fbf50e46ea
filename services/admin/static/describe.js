// Read-only views of a flag or a segment in words (used by time travel and the history), in the sentences the
// server uses (sentences.js).
import { h } from "./dom.js";
import { clauseText, configurationLines } from "./sentences.js";

const show = (v) => (typeof v === "string" ? v : JSON.stringify(v));

export function flagSummary(flag) {
  return h("div", { class: "flag-summary" },
    h("p", {}, h("span", { class: `state ${flag.archived ? "archived" : flag.on ? "on" : "off"}` },
      flag.archived ? "archived" : flag.on ? "ON" : "OFF"), " ", h("strong", {}, flag.name || flag.key),
    " ", h("code", { class: "muted" }, flag.key)),
    h("dl", { class: "kv" },
      h("dt", {}, "Variations"), h("dd", {}, flag.variations.map((v) => `${v.name || v.key} = ${show(v.value)}`).join("; ")),
      h("dt", {}, "When off"), h("dd", {}, flag.off_variation),
      h("dt", {}, "When on"), h("dd", {}, h("ol", { class: "sentences" }, configurationLines({ ...flag, on: true }).map((l) => h("li", {}, l)))),
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
