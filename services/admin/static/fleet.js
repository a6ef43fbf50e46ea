// Fleet: connected SDK instances, how far the latest changes reached, evaluation counts per flag, stale flags.
import { call, envBase } from "./api.js";
import { clear, h, timeEl } from "./dom.js";

export async function render(ctx, main) {
  const base = `${envBase(ctx.project, ctx.env)}/fleet`;
  const days = h("input", { id: "stale-days", type: "number", min: 0, step: "any", value: "30", size: 4 });
  const box = h("div");
  async function load() {
    const [status, evals, stale] = await Promise.all([
      call("GET", base), call("GET", `${base}/evaluations`), call("GET", `${base}/stale?days=${encodeURIComponent(days.value || "30")}`),
    ]);
    const connected = status.instances.filter((i) => i.connected);
    clear(box,
      h("section", { class: "panel", "aria-labelledby": "fl-inst" }, h("h2", { id: "fl-inst" }, `SDK instances (${connected.length} connected)`),
        status.instances.length ? h("table", { class: "responsive", "aria-label": "SDK instances" },
          h("thead", {}, h("tr", {}, ["Instance", "SDK", "Status", "Applied up to", "Last heartbeat"].map((c) => h("th", { scope: "col" }, c)))),
          h("tbody", {}, status.instances.map((i) => h("tr", {},
            h("td", { "data-label": "Instance" }, h("code", {}, i.instance_id)),
            h("td", { "data-label": "SDK" }, i.sdk_version),
            h("td", { "data-label": "Status" }, h("span", { class: `state ${i.connected ? "on" : "off"}` }, i.connected ? i.status : "gone")),
            h("td", { "data-label": "Applied up to" }, `#${i.seq}`),
            h("td", { "data-label": "Last heartbeat" }, timeEl(i.last_heartbeat))))))
          : h("p", { class: "muted" }, "No SDK instance has reported yet.")),
      h("section", { class: "panel", "aria-labelledby": "fl-conv" }, h("h2", { id: "fl-conv" }, "Convergence of the latest changes"),
        status.changes.length ? h("table", { class: "responsive", "aria-label": "Convergence" },
          h("thead", {}, h("tr", {}, ["Change", "By", "Reached", "p50 / p99"].map((c) => h("th", { scope: "col" }, c)))),
          h("tbody", {}, status.changes.map((c) => h("tr", {},
            h("td", { "data-label": "Change" }, `${c.change.type} ${c.change.key} `, h("span", { class: "small muted" }, "#", c.change.seq, " ", timeEl(c.change.at))),
            h("td", { "data-label": "By" }, c.change.actor || "—"),
            h("td", { "data-label": "Reached" }, h("span", { class: `state ${c.pending ? "off" : "on"}` }, `${c.applied} of ${c.applied + c.pending}`)),
            h("td", { "data-label": "p50 / p99" }, c.p50_ms != null ? `${c.p50_ms.toFixed(1)} / ${c.p99_ms.toFixed(1)} ms` : "—")))))
          : h("p", { class: "muted" }, "No changes yet.")),
      h("section", { class: "panel", "aria-labelledby": "fl-evals" }, h("h2", { id: "fl-evals" }, "Evaluations per flag"),
        h("p", { class: "small muted" }, "Since ", timeEl(evals.counting_since), `; recent = last ${evals.window_seconds} s.`),
        evals.flags.length ? h("table", { class: "responsive", "aria-label": "Evaluations" },
          h("thead", {}, h("tr", {}, ["Flag", "Total", "Recent", "By variation", "Last evaluated"].map((c) => h("th", { scope: "col" }, c)))),
          h("tbody", {}, evals.flags.map((f) => h("tr", {},
            h("td", { "data-label": "Flag" }, h("a", { href: ctx.link(`flags/${encodeURIComponent(f.flag)}`) }, f.flag)),
            h("td", { "data-label": "Total" }, f.total), h("td", { "data-label": "Recent" }, f.recent),
            h("td", { "data-label": "By variation" }, f.variations.map((v) => `${v.variation ?? "default (error)"}: ${v.total}`).join(", ")),
            h("td", { "data-label": "Last evaluated" }, f.last_evaluated ? timeEl(f.last_evaluated) : "—")))))
          : h("p", { class: "muted" }, "No evaluations reported yet.")),
      h("section", { class: "panel", "aria-labelledby": "fl-stale" }, h("h2", { id: "fl-stale" }, "Stale flags"),
        h("p", { class: "small muted" }, "Active flags no SDK evaluated for the given number of days (known since ", timeEl(stale.observed_since), ")."),
        stale.flags.length ? h("ul", {}, stale.flags.map((f) => h("li", {},
          h("a", { href: ctx.link(`flags/${encodeURIComponent(f.key)}`) }, f.key), " — ",
          f.last_evaluated ? ["last evaluated ", timeEl(f.last_evaluated)] : "never evaluated", ", last changed ", timeEl(f.last_changed))))
          : h("p", {}, "None.")));
  }
  const refresh = h("button", { type: "button" }, "Refresh");
  refresh.addEventListener("click", load);
  days.addEventListener("change", load);
  clear(main, h("div", { class: "page-head" }, h("h1", { class: "grow" }, "Fleet"),
    h("label", { class: "field", for: "stale-days" }, h("span", {}, "Stale after (days)"), days), refresh), box);
  await load();
  // Telemetry is not in the change stream: refresh while the page is open.
  const timer = setInterval(() => { if (document.visibilityState === "visible") load().catch(() => {}); }, 5000);
  return { onChange(change) { if (change.kind === "flag") load().catch(() => {}); }, destroy() { clearInterval(timer); } };
}
