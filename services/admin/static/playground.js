// Playground: enter a context, see the value and the full reason for every flag, now or as of an instant.
import { call, envBase } from "./api.js";
import { clear, h, timeEl, toast } from "./dom.js";

const EXAMPLE = { kind: "user", key: "user-123", email: "ada@example.com", country: "NL", plan: "pro" };

function reasonText(r, flag) {
  switch (r.kind) {
    case "OFF": return "the flag is off";
    case "TARGET_MATCH": return "individually targeted";
    case "RULE_MATCH": return `matched rule ${r.rule_index + 1}${r.rule_id ? ` (${r.rule_id})` : ""}${r.in_rollout ? ", in its percentage rollout" : ""}`;
    case "PREREQUISITE_FAILED": return `prerequisite ${r.prerequisite_key} not met`;
    case "FALLTHROUGH": return `no rule matched: default rule${r.in_rollout ? ", in its percentage rollout" : ""}`;
    case "ERROR": return `error: ${r.error_kind || "unknown"}`;
    default: return r.kind;
  }
}

export async function render(ctx, main) {
  const saved = sessionStorage.getItem("flagstream.playground");
  const context = h("textarea", { id: "pg-context", rows: 8, class: "mono", "aria-describedby": "pg-help pg-error" });
  context.value = saved || JSON.stringify(EXAMPLE, null, 2);
  const error = h("p", { class: "field-error", id: "pg-error", hidden: true });
  const asOf = h("input", { type: "datetime-local", id: "pg-asof", step: 1 });
  const only = h("input", { id: "pg-flags", placeholder: "all flags" });
  const results = h("div", { "aria-live": "polite", id: "pg-results" });
  const form = h("form", { class: "panel", novalidate: true },
    h("label", { class: "field", for: "pg-context" }, h("span", {}, "Context (JSON)"), context,
      h("small", { id: "pg-help" }, 'A context: {"kind": "user", "key": "...", attributes...}, or a multi-kind context {"kind": "multi", "user": {...}, "org": {...}}.'),
      error),
    h("div", { class: "row" },
      h("label", { class: "field grow", for: "pg-flags" }, h("span", {}, "Only these flags (comma separated)"), only),
      h("label", { class: "field", for: "pg-asof" }, h("span", {}, "As of (empty: now)"), asOf),
      h("button", { type: "submit", class: "primary", "data-read-ok": true }, "Evaluate")));

  async function evaluate() {
    let parsed;
    try {
      parsed = JSON.parse(context.value);
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("the context must be a JSON object");
    } catch (err) {
      error.hidden = false;
      error.textContent = `Not a valid context: ${err.message}`;
      context.setAttribute("aria-invalid", "true");
      context.focus();
      return;
    }
    error.hidden = true;
    context.removeAttribute("aria-invalid");
    sessionStorage.setItem("flagstream.playground", context.value);
    const body = { context: parsed };
    const flags = only.value.split(",").map((s) => s.trim()).filter(Boolean);
    if (flags.length) body.flags = flags;
    if (asOf.value) body.as_of = new Date(asOf.value).toISOString();
    try {
      const out = await call("POST", `${envBase(ctx.project, ctx.env)}/evaluate`, { body });
      clear(results, h("p", { class: "small muted" }, asOf.value ? ["As of ", new Date(asOf.value).toLocaleString()] : "Now",
        ` (stream #${out.seq}${out.at ? "" : ""})`, out.at ? [", last change ", timeEl(out.at)] : null),
      h("table", { class: "responsive", "aria-label": "Evaluation results" },
        h("thead", {}, h("tr", {}, ["Flag", "Value", "Variation", "Why"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, out.results.length ? out.results.map((r) => h("tr", { dataset: { flag: r.flag } },
          h("td", { "data-label": "Flag" }, h("a", { href: ctx.link(`flags/${encodeURIComponent(r.flag)}`) }, r.flag)),
          h("td", { "data-label": "Value" }, h("code", {}, JSON.stringify(r.value))),
          h("td", { "data-label": "Variation" }, r.variation ?? "—"),
          h("td", { "data-label": "Why", class: "reason", title: JSON.stringify(r.reason) }, reasonText(r.reason))))
          : h("tr", {}, h("td", { colspan: 4, class: "empty" }, "No flags.")))));
    } catch (err) {
      clear(results, h("div", { class: "banner error", role: "alert" }, `Cannot evaluate: ${err.message}`));
      if (err.status !== 422) toast(err.message, "error");
    }
  }
  form.addEventListener("submit", (event) => { event.preventDefault(); evaluate(); });
  clear(main, h("div", { class: "page-head" }, h("h1", { class: "grow" }, "Playground"),
    h("p", { class: "muted small" }, `What would ${ctx.environment.name || ctx.env} serve to this context, and why?`)),
  form, results);
  return {
    onChange(change) { if ((change.kind === "flag" || change.kind === "segment") && !asOf.value && results.firstChild) evaluate(); },
  };
}
