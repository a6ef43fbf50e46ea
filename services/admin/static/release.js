// Releases: release plans (a variation of a flag rolled out in steps, rolled back by the guardian on harm) and the
// experiment results of a flag with a percentage rollout. Routes: releases (the list), releases/new/<flag> (a plan
// from the flag page), releases/<id> (its steps, what the guardian sees, the chart of its intervals, the timeline,
// pause / resume / advance / abort), releases/results/<flag> (per variation, each metric, with a chart).
// The charts are SVG drawn here: nothing is fetched from anywhere but this server.
import { ApiError, call, envBase } from "./api.js";
import { clear, confirmDialog, field, h, timeEl, toast } from "./dom.js";

// The SVG namespace, as the HTML parser gives it to an <svg> element (no address written in this file).
const SVG = (() => { const box = document.createElement("div"); box.innerHTML = "<svg></svg>"; return box.firstChild.namespaceURI; })();
function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) if (value !== null && value !== undefined) el.setAttribute(name, String(value));
  for (const child of children.flat(Infinity)) if (child) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return el;
}

const num = (v) => (v === null || v === undefined ? "—" : Math.abs(v) >= 100 ? v.toFixed(0) : Number(v.toPrecision(3)).toString());
const pctText = (p) => `${Number(p.toFixed(3))}%`;
function holdText(seconds) {
  if (seconds === null || seconds === undefined) return "until advanced";
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60]]) if (seconds >= size && seconds % size === 0) return `${seconds / size}${unit}`;
  return `${seconds}s`;
}
const KINDS = { count: "events per user", proportion: "share of users", mean: "mean per user" };
const STATUS = { running: "on", paused: "off", completed: "on", rolled_back: "archived", aborted: "archived",
  failed: "archived", rolling_back: "archived", aborting: "archived" };

export async function render(ctx, main, key, rest = []) {
  if (key === "new") return create(ctx, main, rest[0]);
  if (key === "results") return results(ctx, main, rest[0]);
  if (key) return plan(ctx, main, key);
  return list(ctx, main);
}

// -- the list ---------------------------------------------------------------------------------------------------------

async function list(ctx, main) {
  const base = `${envBase(ctx.project, ctx.env)}/plans`;
  const found = await call("GET", base);
  clear(main,
    h("div", { class: "page-head" }, h("h1", { class: "grow" }, "Releases"),
      h("p", { class: "small muted" }, "Plan a release from a flag's page.")),
    h("section", { class: "panel" }, found.items.length
      ? h("table", { class: "responsive", "aria-label": "Release plans" },
        h("thead", {}, h("tr", {}, ["Plan", "Flag", "Rolls out", "Status", "Step", "Why it ended"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, found.items.map((p) => h("tr", {},
          h("td", { "data-label": "Plan" }, h("a", { href: ctx.link(`releases/${p.id}`) }, p.id)),
          h("td", { "data-label": "Flag" }, h("a", { href: ctx.link(`flags/${encodeURIComponent(p.flag)}`) }, p.flag)),
          h("td", { "data-label": "Rolls out" }, `${p.variation} (instead of ${p.control})`),
          h("td", { "data-label": "Status" }, h("span", { class: `state ${STATUS[p.status] || "off"}` }, p.status.replace("_", " "))),
          h("td", { "data-label": "Step" }, p.step < 0 ? "not started" : `${p.step + 1} of ${p.steps.length} (${pctText(p.percent)})`),
          h("td", { "data-label": "Why it ended" }, p.evidence ? p.evidence.text : p.error || "")))))
      : h("p", { class: "muted" }, "No release plan in this environment yet.")));
  return { onChange(change) { if (change.kind === "plan") list(ctx, main).catch(() => {}); } };
}

// -- creating a plan --------------------------------------------------------------------------------------------------

async function create(ctx, main, flagKey) {
  const env = envBase(ctx.project, ctx.env);
  const [rec, known] = await Promise.all([
    call("GET", `${env}/flags/${encodeURIComponent(flagKey)}`),
    call("GET", `${env}/metrics`).catch(() => ({ metrics: [] })),
  ]);
  const flag = rec.flag;
  const options = (pairs, chosen) => pairs.map(([value, label]) => h("option", { value, selected: value === chosen }, label));
  const rule = h("select", { id: "plan-rule", name: "rule" },
    options([["", "Default rule"], ...flag.rules.map((r) => [r.id, `Rule ${r.id}${r.description ? `: ${r.description}` : ""}`])], ""));
  const serving = () => (rule.value ? flag.rules.find((r) => r.id === rule.value)?.serve : flag.fallthrough) || {};
  const variation = h("select", { id: "plan-variation", name: "variation" });
  const refreshVariations = () => {
    const current = serving().variation;
    clear(variation, options(flag.variations.filter((v) => v.key !== current).map((v) => [v.key, `${v.name || v.key} (${JSON.stringify(v.value)})`]), variation.value));
  };
  refreshVariations();
  rule.addEventListener("change", refreshVariations);
  const steps = h("input", { id: "plan-steps", name: "steps", value: "5, 25, 50, 100", "aria-describedby": "plan-steps-help" });
  const hold = h("input", { id: "plan-hold", name: "hold", value: "30m", size: 8, "aria-describedby": "plan-steps-help" });
  const rollback = h("select", { id: "plan-rollback", name: "rollback" },
    options([["restore", "Serve what it served before"], ["off", "Turn the flag off"]], "restore"));
  const errorRate = h("input", { id: "plan-error-rate", name: "error_rate", type: "number", min: 0.001, max: 0.2, step: "any", value: 0.05 });
  const minUsers = h("input", { id: "plan-min-users", name: "min_users", type: "number", min: 10, step: 1, value: 100 });
  const comment = h("textarea", { id: "plan-comment", name: "comment", placeholder: "Why? (shown in the history)" });
  const guardRows = h("div", { class: "guardrails" });
  const metricList = h("datalist", { id: "plan-metrics" }, known.metrics.map((m) => h("option", { value: m })));

  function guardRow(kind) {
    const index = guardRows.children.length;
    const remove = h("button", { type: "button", class: "small", "aria-label": `Remove guardrail ${index + 1}` }, "Remove");
    let row;
    if (kind === "promql") {
      const query = h("input", { name: "promql", "aria-label": `PromQL query of guardrail ${index + 1}`, placeholder: "sum(rate(http_errors_total[5m]))", size: 40 });
      const bad = h("select", { name: "bad", "aria-label": `Breached when guardrail ${index + 1} is` }, options([["increase", "above"], ["decrease", "below"]], "increase"));
      const threshold = h("input", { name: "threshold", type: "number", step: "any", "aria-label": `Threshold of guardrail ${index + 1}`, size: 8 });
      row = h("div", { class: "row guardrail", dataset: { kind } }, h("span", {}, "Prometheus"), query, h("span", {}, "may not go"), bad, threshold, remove);
      row.read = () => ({ promql: query.value.trim(), bad: bad.value, threshold: threshold.value === "" ? null : Number(threshold.value) });
    } else {
      const metric = h("input", { name: "metric", list: "plan-metrics", "aria-label": `Metric of guardrail ${index + 1}`, size: 16 });
      const what = h("select", { name: "kind", "aria-label": `Kind of guardrail ${index + 1}` },
        options(Object.entries(KINDS).map(([k, label]) => [k, label]), "count"));
      const bad = h("select", { name: "bad", "aria-label": `Direction that hurts in guardrail ${index + 1}` }, options([["increase", "may not rise by more than"], ["decrease", "may not fall by more than"]], "increase"));
      const change = h("input", { name: "max_change", type: "number", min: 0, step: "any", value: 0, "aria-label": `Largest change accepted in guardrail ${index + 1}`, size: 8 });
      const unit = h("select", { name: "unit", "aria-label": `Unit of the change in guardrail ${index + 1}` }, options([["abs", "(its unit)"], ["pct", "% of the control"]], "abs"));
      row = h("div", { class: "row guardrail", dataset: { kind } }, metric, what, bad, change, unit, remove);
      row.read = () => {
        const out = { metric: metric.value.trim(), kind: what.value, bad: bad.value };
        out[unit.value === "pct" ? "max_change_pct" : "max_change"] = change.value === "" ? null : Number(change.value);
        return out;
      };
    }
    remove.addEventListener("click", () => row.remove());
    guardRows.append(row);
    row.querySelector("input")?.focus();
  }
  if (known.metrics.includes("errors")) {
    guardRow("metric");
    guardRows.querySelector("input[name=metric]").value = "errors";
  }
  const addMetric = h("button", { type: "button" }, "Add a tracked metric");
  addMetric.addEventListener("click", () => guardRow("metric"));
  const addProm = h("button", { type: "button" }, "Add a Prometheus query");
  addProm.addEventListener("click", () => guardRow("promql"));
  const error = h("p", { class: "field-error", role: "alert", id: "plan-error", hidden: true });
  const submit = h("button", { class: "primary", type: "submit" }, "Start the release");
  const form = h("form", { class: "panel", "aria-labelledby": "plan-title", novalidate: true },
    h("h2", { id: "plan-title" }, "Plan"),
    h("div", { class: "row" }, field("Rule", rule), field("Roll out", variation)),
    h("div", { class: "row" }, field("Steps (% of users)", steps), field("Hold each step", hold)),
    h("p", { class: "small muted", id: "plan-steps-help" },
      "Each step's share of the rule's users, increasing, the last one usually 100. A hold is 90s, 30m, 2h, 1d or ",
      "manual (until someone advances it); a step may have its own after a colon: 5:10m, 25:manual, 100."),
    h("h3", {}, "Guardrails"),
    h("p", { class: "small muted" }, "The guardian compares the users given the new variation with those the rollout still gives ",
      h("strong", {}, serving().variation || "the current one"), " and rolls back when one of these is worse than it accepts, ",
      "beyond the chance it may be wrong (the error rate below, shared by every check of the plan)."),
    metricList, guardRows, h("div", { class: "row" }, addMetric, addProm),
    h("div", { class: "row" }, field("On a breach", rollback), field("Error rate", errorRate), field("Users on each side first", minUsers)),
    field("Comment", comment), error, h("div", { class: "row" }, submit));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    form.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
    const parts = steps.value.split(",").map((p) => p.trim()).filter(Boolean);
    const body = {
      flag: flagKey, variation: variation.value, rollback: rollback.value, error_rate: Number(errorRate.value),
      min_users: Number(minUsers.value), comment: comment.value.trim(),
      steps: parts.map((p, i) => {
        const [percent, own] = p.split(":");
        const step = { percent: Number(percent.replace("%", "")) };
        if (own || i < parts.length - 1) step.hold = (own || hold.value).trim();
        return step;
      }),
      guardrails: [...guardRows.children].map((row) => row.read()),
    };
    if (rule.value) body.rule = rule.value;
    try {
      const made = await call("POST", `${env}/plans`, { body });
      toast(`Release plan ${made.id} started.`);
      ctx.go(`releases/${made.id}`);
    } catch (err) {
      error.hidden = false;
      error.textContent = err.message;
      const path = err.problems?.[0]?.path || "";
      const found = /^\$\.guardrails\[(\d+)\]\.?(\w*)/.exec(path);
      let target = null;
      if (found) {
        const row = guardRows.children[Number(found[1])];
        target = row?.querySelector(`[name=${found[2] || "metric"}]`) || row?.querySelector("input");
      } else if (/^\$\.steps/.test(path)) target = /hold/.test(path) ? hold : steps;
      else target = { "$.variation": variation, "$.rule": rule, "$.error_rate": errorRate, "$.min_users": minUsers, "$.rollback": rollback }[path] || null;
      target?.setAttribute("aria-invalid", "true");
      target?.focus();
    }
  });
  clear(main,
    h("div", { class: "page-head" }, h("div", { class: "grow" },
      h("p", { class: "small" }, h("a", { href: ctx.link(`flags/${encodeURIComponent(flagKey)}`) }, `← ${flagKey}`)),
      h("h1", {}, `Release ${flag.name || flagKey} in steps`))),
    form);
  return {};
}

// -- one plan ---------------------------------------------------------------------------------------------------------

function stepsView(p) {
  return h("ol", { class: "steps", "aria-label": "Steps" }, p.steps.map((st, i) => {
    const state = i < p.step ? "done" : i === p.step ? "current" : "todo";
    return h("li", { class: `step ${state}`, "aria-current": i === p.step ? "step" : null },
      h("strong", {}, pctText(st.percent)), h("span", { class: "small muted" }, i < p.steps.length - 1 || st.hold !== null ? ` hold ${holdText(st.hold)}` : ""),
      st.sample_ratio_alpha ? h("span", { class: "small muted", title: "This step's share of the plan's error rate: each tracked guardrail's, the sample ratio test's" },
        ` · error rate ${num(st.guardrail_alpha)} per guardrail, ${num(st.sample_ratio_alpha)} sample ratio`) : null);
  }));
}

function guardrailTable(p) {
  const watch = p.watch;
  if (!watch || !watch.guardrails.length) return h("p", { class: "muted", id: "guardian-waiting" }, p.step < 0 ? "The first step is not written yet." : "The guardian has not looked yet.");
  return h("table", { class: "responsive", "aria-label": "Guardrails now" },
    h("thead", {}, h("tr", {}, ["Guardrail", "State", p.variation, p.control, "Difference", "Interval", "Accepted", "Not counted"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, watch.guardrails.map((g) => g.kind === "promql"
      ? h("tr", {}, h("td", { "data-label": "Guardrail" }, h("code", {}, g.name)), h("td", { "data-label": "State" }, h("span", { class: `state ${g.state === "breached" || g.state === "error" ? "archived" : "on"}` }, g.state)),
        h("td", { "data-label": p.variation, colspan: 3 }, g.error || `value ${num(g.value)}`), h("td", { "data-label": "Interval" }, ""),
        h("td", { "data-label": "Accepted" }, `${g.bad === "increase" ? "≤" : "≥"} ${num(g.limit)}`), h("td", { "data-label": "Not counted" }, ""))
      : h("tr", {},
        h("td", { "data-label": "Guardrail" }, `${g.name} (${KINDS[g.kind]})`),
        h("td", { "data-label": "State" }, h("span", { class: `state ${g.state === "breached" ? "archived" : g.state === "ok" ? "on" : "off"}` }, g.state)),
        h("td", { "data-label": p.variation }, `${num(g.treatment?.value)} (${g.treatment?.users ?? 0} users)`),
        h("td", { "data-label": p.control }, `${num(g.control?.value)} (${g.control?.users ?? 0} users)`),
        h("td", { "data-label": "Difference" }, num(g.effect)),
        h("td", { "data-label": "Interval" }, `[${num(g.lower)}, ${num(g.upper)}]`),
        h("td", { "data-label": "Accepted" }, `${g.bad === "increase" ? "+" : "−"}${num(g.limit)}`),
        h("td", { "data-label": "Not counted" }, `${g.unexposed} never exposed`)))));
}

/** The interval of one guardrail over time: a band (lower..upper), the estimate, the limit and zero. */
function intervalChart(name, points, limit, bad) {
  const W = 640, H = 180, L = 56, R = 10, T = 14, B = 24;
  const finite = (v) => v !== null && v !== undefined && Number.isFinite(v);
  const ys = points.flatMap((p) => [p[2], p[3], p[4]]).filter(finite).concat([0, bad === "increase" ? limit : -limit]);
  let lo = Math.min(...ys), hi = Math.max(...ys);
  if (hi - lo < 1e-9) { hi += 1; lo -= 1; }
  const pad = (hi - lo) * 0.08; lo -= pad; hi += pad;
  const times = points.map((p) => new Date(p[0]).getTime());
  const t0 = Math.min(...times), t1 = Math.max(...times, t0 + 1);
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const y = (v) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
  const band = points.filter((p) => finite(p[3]) && finite(p[4]));
  const area = band.length ? `M${band.map((p, i) => `${x(times[points.indexOf(p)])},${y(p[4])}`).join(" L")} L${[...band].reverse().map((p) => `${x(times[points.indexOf(p)])},${y(p[3])}`).join(" L")} Z` : "";
  const line = points.map((p, i) => `${i ? "L" : "M"}${x(times[i])},${y(p[2])}`).join(" ");
  const lim = bad === "increase" ? limit : -limit;
  const steps = points.filter((p, i) => i > 0 && p[1] !== points[i - 1][1]);
  return s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": `Difference in ${name} over time, with its interval` },
    s("title", {}, `${name}: ${points.length} looks`),
    s("line", { x1: L, x2: W - R, y1: y(0), y2: y(0), class: "zero" }),
    s("line", { x1: L, x2: W - R, y1: y(lim), y2: y(lim), class: "limit" }),
    s("text", { x: W - R, y: y(lim) - 4, class: "label end" }, `accepted ${num(lim)}`),
    steps.map((p) => s("line", { x1: x(new Date(p[0]).getTime()), x2: x(new Date(p[0]).getTime()), y1: T, y2: H - B, class: "stepline" })),
    area && band.length > 1 ? s("path", { d: area, class: "band" }) : null,
    points.length > 1 ? s("path", { d: line, class: "estimate" }) : null,
    points.length <= 60 ? points.map((p, i) => s("g", {},
      points.length < 2 && finite(p[3]) && finite(p[4]) ? s("line", { x1: x(times[i]), x2: x(times[i]), y1: y(p[3]), y2: y(p[4]), class: "whisker" }) : null,
      s("circle", { cx: x(times[i]), cy: y(p[2]), r: 3, class: "point" }))) : null,
    s("text", { x: L - 6, y: y(hi - pad) + 4, class: "label end" }, num(hi - pad)),
    s("text", { x: L - 6, y: y(lo + pad) + 4, class: "label end" }, num(lo + pad)),
    s("text", { x: L, y: H - 6, class: "label" }, new Date(t0).toLocaleTimeString()),
    s("text", { x: W - R, y: H - 6, class: "label end" }, new Date(t1).toLocaleTimeString()));
}

async function plan(ctx, main, id) {
  const base = `${envBase(ctx.project, ctx.env)}/plans/${encodeURIComponent(id)}`;
  let timer = null;
  async function paint() {
    const [p, timeline] = await Promise.all([call("GET", base), call("GET", `${base}/timeline`)]);
    const active = ["running", "paused", "rolling_back", "aborting"].includes(p.status);
    const act = (label, action, { danger = false, confirm = null } = {}) => {
      const button = h("button", { type: "button", class: danger ? "danger" : "", "data-write": true }, label);
      button.addEventListener("click", async () => {
        let comment = "";
        if (confirm) {
          const answer = await confirmDialog({ title: confirm, confirmLabel: label, danger, comment: ctx.production ? "required" : "optional",
            message: action === "abort" ? `The rule serves ${p.control} again to everyone; the plan ends.` : null });
          if (!answer) return;
          comment = answer.comment;
        }
        try {
          await call("POST", `${base}/${action}`, { body: { comment } });
          toast(`Release plan ${id}: ${action === "abort" ? "aborted" : `${action}d`}.`);
        } catch (err) {
          toast(err.message, "error");
        }
        await paint().catch(() => {});
      });
      return button;
    };
    const buttons = [];
    if (p.status === "running") buttons.push(act("Pause", "pause"), act("Advance now", "advance", { confirm: `Write step ${p.step + 2} now?` }));
    if (p.status === "paused") buttons.push(act("Resume", "resume"));
    if (p.status === "running" || p.status === "paused") buttons.push(act("Abort", "abort", { danger: true, confirm: `Abort release plan ${id}?` }));
    const watch = p.watch;
    const charts = watch ? Object.entries(watch.series || {}).map(([name, pts]) => {
      const g = watch.guardrails.find((v) => v.name === name) || p.guardrails.find((v) => v.metric === name) || {};
      return h("figure", { class: "chart-box" }, intervalChart(name, pts, g.limit ?? g.max_change ?? 0, g.bad || "increase"),
        h("figcaption", { class: "small muted" }, `${name}: ${p.variation} minus ${p.control}, with its always-valid interval (band); `,
          "the dashed line is the worst change accepted; vertical lines mark steps."));
    }) : [];
    const evidence = p.evidence;
    const who = [...timeline.entries].reverse().find((e) => e.type === "plan.stopping")?.actor;
    clear(main,
      h("div", { class: "page-head" },
        h("div", { class: "grow" },
          h("p", { class: "small" }, h("a", { href: ctx.link("releases") }, "← Releases"), " · ",
            h("a", { href: ctx.link(`flags/${encodeURIComponent(p.flag)}`) }, p.flag), " · ",
            h("a", { href: ctx.link(`releases/results/${encodeURIComponent(p.flag)}`) }, "Experiment results")),
          h("h1", {}, `${p.flag}: ${p.variation} instead of ${p.control}`),
          h("p", { class: "small muted" }, `Plan ${p.id}. `, p.step >= 0 ? [`Step ${p.step + 1} of ${p.steps.length} (${pctText(p.percent)}) since `, timeEl(p.step_at)] : "Not started yet.",
            p.status === "running" && p.next_step_in !== null ? `; next step in ${Math.ceil(p.next_step_in)} s.` : p.status === "running" && p.step >= 0 ? "; next step when advanced." : "")),
        h("div", { class: "row" }, h("span", { class: `state ${STATUS[p.status] || "off"}`, id: "plan-status" }, p.status.replace("_", " ")), buttons)),
      evidence ? h("div", { class: "banner error", role: "alert", id: "rollback" },
        h("strong", {}, `Rolled back${who ? ` by ${who}` : ""}: `), evidence.text,
        evidence.reason === "guardrail" ? h("p", { class: "small" },
          `${evidence.metric}: ${p.variation} ${num(evidence.treatment_value)} over ${evidence.treatment_users} users, `,
          `${p.control} ${num(evidence.control_value)} over ${evidence.control_users} users; difference ${num(evidence.effect)} `,
          `[${num(evidence.lower)}, ${num(evidence.upper)}], accepted ${num(evidence.limit)} (error rate of this check ${num(evidence.alpha)}).`) : null) : null,
      p.error ? h("div", { class: "banner error", role: "alert" }, p.error) : null,
      h("section", { class: "panel", "aria-labelledby": "pl-steps" }, h("h2", { id: "pl-steps" }, "Steps"), stepsView(p)),
      h("section", { class: "panel", "aria-labelledby": "pl-guard" }, h("h2", { id: "pl-guard" }, "What the guardian sees"),
        watch ? h("p", { class: "small muted" }, `Step ${watch.step + 1}: ${watch.treatment_users} users on ${p.variation}, ${watch.control_users} on ${p.control} `,
          `(the rollout gives ${p.variation} ${(watch.expected_share * 100).toFixed(3)}%); looked `, timeEl(watch.at), ` from ${watch.holder}.`) : null,
        guardrailTable(p), charts),
      h("section", { class: "panel", "aria-labelledby": "pl-time" }, h("h2", { id: "pl-time" }, "Timeline"),
        h("ol", { class: "timeline", "aria-label": "Timeline" }, timeline.entries.map((e) => h("li", {},
          timeEl(e.at), " ", h("code", {}, e.type), " ", h("strong", { class: "actor" }, e.actor), e.comment ? h("span", { class: "muted" }, ` — ${e.comment}`) : null)))));
    if (!active && timer) { clearInterval(timer); timer = null; }
  }
  await paint();
  timer = setInterval(() => { if (document.visibilityState === "visible") paint().catch(() => {}); }, 2000);
  return {
    onChange(change) { if (change.kind === "plan" || change.kind === "flag") paint().catch(() => {}); },
    destroy() { if (timer) clearInterval(timer); },
  };
}

// -- experiment results ---------------------------------------------------------------------------------------------

/** Per variation, its difference to the control with the interval: a point and a whisker around the zero line. */
function forest(metric, found) {
  const rows = metric.variations.filter((v) => v.variation !== found.control);
  const W = 640, rowH = 34, L = 120, R = 20, T = 10, H = T + rowH * Math.max(1, rows.length) + 22;
  const vals = rows.flatMap((v) => [v.difference, v.lower, v.upper]).filter((v) => v !== null && Number.isFinite(v)).concat([0]);
  let lo = Math.min(...vals), hi = Math.max(...vals);
  if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
  const pad = (hi - lo) * 0.1; lo -= pad; hi += pad;
  const x = (v) => L + ((v - lo) / (hi - lo)) * (W - L - R);
  return s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img",
    "aria-label": `${metric.metric} (${KINDS[metric.kind]}): difference to ${found.control} per variation, with intervals` },
    s("line", { x1: x(0), x2: x(0), y1: T, y2: H - 22, class: "zero" }),
    rows.map((v, i) => {
      const cy = T + rowH * i + rowH / 2;
      const known = v.difference !== null && v.difference !== undefined;
      return s("g", {},
        s("text", { x: L - 8, y: cy + 4, class: "label end" }, v.variation),
        known && v.lower !== null && v.upper !== null ? s("line", { x1: x(v.lower), x2: x(v.upper), y1: cy, y2: cy, class: "whisker" }) : null,
        known ? s("circle", { cx: x(v.difference), cy, r: 5, class: v.lower > 0 ? "point up" : v.upper < 0 ? "point down" : "point" }) : s("text", { x: x(0) + 6, y: cy + 4, class: "label" }, "too few users"));
    }),
    s("text", { x: L, y: H - 6, class: "label" }, num(lo + pad)),
    s("text", { x: W - R, y: H - 6, class: "label end" }, num(hi - pad)));
}

async function results(ctx, main, flagKey) {
  const base = `${envBase(ctx.project, ctx.env)}/flags/${encodeURIComponent(flagKey)}/results`;
  const box = h("div");
  async function load() {
    const found = await call("GET", base);
    clear(box,
      h("p", { class: "small muted" }, "Since ", timeEl(found.since), `, compared with ${found.control}; intervals hold at `,
        `${Math.round(found.confidence * 100)}% however often you look. Users: `,
        Object.entries(found.users).map(([v, n]) => `${v} ${n}`).join(", "), "."),
      found.metrics.length ? found.metrics.map((m) => h("section", { class: "panel", "aria-label": `${m.metric} (${m.kind})` },
        h("h2", {}, `${m.metric}`, h("span", { class: "muted" }, ` — ${KINDS[m.kind]}`)),
        forest(m, found),
        h("table", { class: "responsive", "aria-label": `${m.metric} (${m.kind}) per variation` },
          h("thead", {}, h("tr", {}, ["Variation", "Users", "Value", "Difference", "Interval"].map((c) => h("th", { scope: "col" }, c)))),
          h("tbody", {}, m.variations.map((v) => h("tr", {},
            h("td", { "data-label": "Variation" }, v.variation === found.control ? `${v.variation} (control)` : v.variation),
            h("td", { "data-label": "Users" }, v.users), h("td", { "data-label": "Value" }, num(v.value)),
            h("td", { "data-label": "Difference" }, num(v.difference)),
            h("td", { "data-label": "Interval" }, v.difference === null ? "" : `[${num(v.lower)}, ${num(v.upper)}]`))))),
        h("p", { class: "small muted" }, `Not counted: ${m.unexposed} events from contexts no rollout had served, `,
          `${m.elsewhere} from contexts only other flags' rollouts served.`)))
        : h("p", { class: "muted" }, "No metric tracked for this flag's users yet (client.track in your application)."));
  }
  const refresh = h("button", { type: "button" }, "Refresh");
  refresh.addEventListener("click", () => load().catch((err) => toast(err.message, "error")));
  clear(main,
    h("div", { class: "page-head" }, h("div", { class: "grow" },
      h("p", { class: "small" }, h("a", { href: ctx.link(`flags/${encodeURIComponent(flagKey)}`) }, `← ${flagKey}`)),
      h("h1", {}, `Experiment results: ${flagKey}`)), refresh),
    box);
  try {
    await load();
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    clear(box, h("div", { class: "banner error", role: "alert" }, err.message));
  }
  return {};
}
