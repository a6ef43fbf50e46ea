// Change requests: in an environment that asks for approvals, a change is held as a request until others approve
// it and someone applies it. Routes: requests (the project's requests, open ones first), requests/<id> (what it
// changes, in the history's sentences; approvals, comments; approve / reject / comment / apply / cancel / rebase).
// pendingOn(ctx, flagKey) is the banner the flag page shows when a request is pending on that flag.
import { call, API } from "./api.js";
import { clear, confirmDialog, h, timeEl, toast } from "./dom.js";

const STATUSES = [["open", "Open"], ["applied", "Applied"], ["rejected", "Rejected"], ["cancelled", "Cancelled"],
  ["failed", "Failed"], ["all", "All"]];
const STATE_CLASS = { open: "off", approved: "on", applied: "on", rejected: "archived", cancelled: "archived", failed: "archived" };

const base = (ctx) => `${API}/projects/${encodeURIComponent(ctx.project)}/requests`;

/** "approved", "needs 1 approval in production", or the closed status. */
export function stateText(rec) {
  if (rec.status !== "open") return rec.status;
  if (rec.approved) return "approved";
  return `needs ${Object.entries(rec.missing).map(([env, n]) => `${n} approval${n === 1 ? "" : "s"} in ${env}`).join(", ")}`;
}

const stateBadge = (rec, attrs = {}) =>
  h("span", { class: `state ${STATE_CLASS[rec.status === "open" && rec.approved ? "approved" : rec.status] || "off"}`, ...attrs }, stateText(rec));

export async function render(ctx, main, key) {
  if (key) return one(ctx, main, key);
  return list(ctx, main);
}

// -- the list ---------------------------------------------------------------------------------------------------------

async function list(ctx, main) {
  const status = h("select", { id: "requests-status" }, STATUSES.map(([v, l]) => h("option", { value: v }, l)));
  status.value = sessionStorage.getItem("flagstream.requests.status") || "open";
  const body = h("div", { "aria-live": "polite" });
  async function paint() {
    const found = await call("GET", `${base(ctx)}?status=${encodeURIComponent(status.value)}`);
    clear(body, found.items.length
      ? h("table", { class: "responsive", "aria-label": "Change requests" },
        h("thead", {}, h("tr", {}, ["Request", "Title", "Author", "State", "Changes", "Last step"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, found.items.map((r) => h("tr", {},
          h("td", { "data-label": "Request" }, h("a", { href: ctx.link(`requests/${r.id}`) }, r.id)),
          h("td", { "data-label": "Title" }, h("a", { href: ctx.link(`requests/${r.id}`) }, r.title)),
          h("td", { "data-label": "Author" }, r.author.name),
          h("td", { "data-label": "State" }, stateBadge(r)),
          h("td", { "data-label": "Changes" }, r.changes.map((c) => `${c.kind} ${c.key} in ${c.environment}`).join(", ")),
          h("td", { "data-label": "Last step" }, h("code", {}, r.event), " by ", r.actor, " ", timeEl(r.at))))))
      : h("p", { class: "muted" }, status.value === "open" ? "No open change request." : "No change request here."));
  }
  status.addEventListener("change", () => {
    sessionStorage.setItem("flagstream.requests.status", status.value);
    paint().catch((err) => toast(err.message, "error"));
  });
  await paint();
  clear(main,
    h("div", { class: "page-head" }, h("h1", { class: "grow" }, "Change requests"),
      h("label", { class: "field", for: "requests-status", "data-read-ok": true }, h("span", {}, "Show"), status)),
    h("p", { class: "small muted" }, "In an environment that asks for approvals, every change is held here until ",
      "someone other than its author approves it and it is applied. ",
      h("a", { href: ctx.link("settings") }, `Approvals in ${ctx.environment?.name || ctx.env}`), "."),
    h("section", { class: "panel" }, body));
  return { onChange(change) { if (change.kind === "request") paint().catch(() => {}); } };
}

// -- one request ------------------------------------------------------------------------------------------------------

async function one(ctx, main, id) {
  const url = `${base(ctx)}/${encodeURIComponent(id)}`;
  let timer = null;
  async function act(label, path, { body = {}, confirm = null, comment = "optional", done, danger = false } = {}) {
    if (confirm) {
      const answer = await confirmDialog({ title: confirm, confirmLabel: label, comment, danger });
      if (!answer) return;
      body = { comment: answer.comment };
    }
    try {
      await call("POST", `${url}/${path}`, { body });
      toast(done);
    } catch (err) {
      toast(err.message, "error");
    }
    await paint().catch(() => {});
  }
  async function paint() {
    const rec = await call("GET", url);
    const me = (a) => !!ctx.me && a.kind === ctx.me.kind && a.id === ctx.me.id;
    const mine = me(rec.author);
    const approvedByMe = rec.approvals.some((r) => me(r.by));
    const open = rec.status === "open";
    const button = (label, handler, cls = "") => {
      const el = h("button", { type: "button", class: cls, "data-write": true }, label);
      el.addEventListener("click", handler);
      return el;
    };
    const buttons = [];
    if (open && !mine) {
      if (!approvedByMe) buttons.push(button("Approve", () => act("Approve", "approve", { confirm: `Approve “${rec.title}”?`, done: `Approved ${rec.id}.` }), "primary"));
      buttons.push(button("Reject", () => act("Reject", "reject", { confirm: `Reject “${rec.title}”?`, comment: "required", danger: true, done: `Rejected ${rec.id}.` }), "danger"));
    }
    if (open && rec.approved) {
      buttons.push(button("Apply", () => act("Apply", "apply", { confirm: `Apply “${rec.title}” now?`, done: `Applied ${rec.id}: the change is live.` }), "primary"));
    }
    if (open && mine) {
      buttons.push(button("Rebase", () => act("Rebase", "rebase", { done: `${rec.id} made again on the current state: it needs approving again.` })));
      buttons.push(button("Cancel request", () => act("Cancel request", "cancel", { confirm: `Cancel “${rec.title}”?`, danger: true, done: `Cancelled ${rec.id}.` }), "danger"));
    }
    const text = h("textarea", { id: "request-comment", name: "comment", required: true, placeholder: "Say something to the author and the approvers" });
    const form = h("form", { class: "row", "aria-label": "Add a comment" },
      h("label", { class: "field grow", for: "request-comment" }, h("span", {}, "Comment"), text),
      h("button", { type: "submit", "data-write": true }, "Comment"));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!text.value.trim()) return text.focus();
      try {
        await call("POST", `${url}/comments`, { body: { text: text.value } });
        text.value = "";
      } catch (err) {
        toast(err.message, "error");
      }
      await paint().catch(() => {});
    });
    const review = [
      ...rec.approvals.map((r) => ({ at: r.at, node: [h("strong", {}, r.by.name), " approved", r.comment ? `: ${r.comment}` : ""] })),
      ...(rec.rejection ? [{ at: rec.rejection.at, node: [h("strong", {}, rec.rejection.by.name), " rejected it", rec.rejection.comment ? `: ${rec.rejection.comment}` : ""] }] : []),
      ...rec.comments.map((c) => ({ at: c.at, node: [h("strong", {}, c.by.name), `: ${c.text}`] })),
    ].sort((a, b) => (a.at < b.at ? -1 : 1));
    clear(main,
      h("div", { class: "page-head" },
        h("div", { class: "grow" },
          h("p", { class: "small" }, h("a", { href: ctx.link("requests") }, "← Change requests")),
          h("h1", {}, rec.title),
          h("p", { class: "small muted" }, `Change request ${rec.id} by ${rec.author.name}, revision ${rec.revision}. Last step: `,
            h("code", {}, rec.event), ` by ${rec.actor} `, timeEl(rec.at), "."),
          rec.apply_at ? h("p", { class: "small" }, "Applies at ", timeEl(rec.apply_at), " if approved by then.") : null),
        h("div", { class: "row" }, stateBadge(rec, { id: "request-state" }), buttons)),
      rec.error ? h("div", { class: "banner error", role: "alert" }, rec.error) : null,
      rec.description ? h("section", { class: "panel" }, rec.description.split("\n").map((line) => h("p", {}, line))) : null,
      h("section", { class: "panel", "aria-labelledby": "rq-changes" },
        h("h2", { id: "rq-changes" }, "What it changes"),
        h("ul", { class: "plain", "aria-label": "What it changes" }, rec.changes.map((c) => h("li", {},
          h("h3", {}, `${c.kind} `, c.kind === "flag" ? h("a", { href: `#/${encodeURIComponent(c.environment)}/flags/${encodeURIComponent(c.key)}` }, c.key) : h("code", {}, c.key),
            ` in ${c.environment}`, h("span", { class: "small muted" }, c.base ? ` (from version ${c.base})` : " (new)")),
          c.lines.length ? h("ul", {}, c.lines.map((line) => h("li", {}, line))) : h("p", { class: "muted" }, "No visible change."))))),
      h("section", { class: "panel", "aria-labelledby": "rq-review" },
        h("h2", { id: "rq-review" }, "Review"),
        review.length ? h("ol", { class: "timeline", "aria-label": "Review" }, review.map((r) => h("li", {}, timeEl(r.at), " ", r.node)))
          : h("p", { class: "muted" }, "No approval or comment yet."),
        rec.closed_by && rec.status !== "rejected" ? h("p", {}, `${rec.status[0].toUpperCase()}${rec.status.slice(1)} by ${rec.closed_by.name}.`) : null,
        open ? form : null));
    if (!open && timer) { clearInterval(timer); timer = null; }
  }
  await paint();
  timer = setInterval(() => { if (document.visibilityState === "visible" && !document.getElementById("dialog")?.open
    && !document.activeElement?.matches?.("textarea")) paint().catch(() => {}); }, 3000);
  return {
    onChange(change) { if (change.kind === "request") paint().catch(() => {}); },
    destroy() { if (timer) clearInterval(timer); },
  };
}

// -- on the flag page -------------------------------------------------------------------------------------------------

/** A banner (filled in once loaded; empty if none) naming the open change requests on flag `key` (in any
 * environment: the flag page shows them all); its
 * `refresh()` reads them again (the flag page calls it on a request's event; a change held here calls it too). */
export function pendingOn(ctx, key) {
  const box = h("div", { id: "pending-requests" });
  const params = new URLSearchParams({ status: "open", flag: key });
  box.refresh = () => call("GET", `${base(ctx)}?${params}`).then((found) => {
    clear(box, found.items.length ? h("div", { class: "banner warn", role: "status" },
      found.items.length === 1 ? "A change request is pending on this flag: " : "Change requests are pending on this flag: ",
      found.items.map((r, i) => [i ? ", " : "", h("a", { href: ctx.link(`requests/${r.id}`) }, r.title),
        ` (${[...new Set(r.changes.filter((c) => c.kind === "flag" && c.key === key).map((c) => c.environment))].join(", ")}: ${stateText(r)})`]),
      ". Nothing of it is served until it is approved and applied.") : null);
  }).catch(() => {});
  const held = () => { if (box.isConnected) box.refresh(); else window.removeEventListener("flagstream:held", held); };
  window.addEventListener("flagstream:held", held);
  box.refresh();
  return box;
}
