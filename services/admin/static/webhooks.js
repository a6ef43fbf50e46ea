// Webhooks: each change POSTed to a URL of yours (Slack, CI), signed, in order. Admin tokens only.
import { API, call } from "./api.js";
import { clear, confirmDialog, h, timeEl, toast } from "./dom.js";

const BASE = `${API}/webhooks`;
const KINDS = ["flag", "segment", "environment", "schedule"];

const sends = (w) => `${w.kinds ? w.kinds.join(", ") : "every kind"} in ${w.environments ? w.environments.join(", ") : "every environment"}`;

export async function render(ctx, main) {
  const box = h("div");
  const created = h("div", { role: "status" });
  const url = h("input", { id: "wh-url", name: "url", type: "url", required: true, placeholder: "your endpoint, e.g. a Slack incoming-webhook URL" });
  const description = h("input", { id: "wh-desc", name: "description", maxlength: 500 });
  const envs = ctx.envs.filter((e) => !e.environment.archived).map((e) => ({ value: `${ctx.project}/${e.key}`, label: e.environment.name || e.key }));
  const envChecks = envs.map((e) => h("input", { type: "checkbox", name: "environments", value: e.value }));
  const kindChecks = KINDS.map((k) => h("input", { type: "checkbox", name: "kinds", value: k }));
  const error = h("p", { class: "field-error", role: "alert", hidden: true });
  const form = h("form", { class: "panel", "aria-labelledby": "wh-new" },
    h("h2", { id: "wh-new" }, "New webhook"),
    h("div", { class: "row" },
      h("label", { class: "field grow", for: "wh-url" }, h("span", {}, "URL"), url),
      h("label", { class: "field grow", for: "wh-desc" }, h("span", {}, "Description (optional)"), description)),
    h("div", { class: "row top" },
      h("fieldset", {}, h("legend", {}, "Environments (none checked: all)"),
        envChecks.map((c, i) => h("label", { class: "check" }, c, envs[i].label))),
      h("fieldset", {}, h("legend", {}, "Kinds (none checked: all)"),
        kindChecks.map((c) => h("label", { class: "check" }, c, c.value)))),
    error,
    h("p", {}, h("button", { class: "primary", type: "submit" }, "Create webhook")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const checked = (boxes) => boxes.filter((c) => c.checked).map((c) => c.value);
    const body = { url: url.value.trim(), description: description.value.trim() };
    if (checked(envChecks).length) body.environments = checked(envChecks);
    if (checked(kindChecks).length) body.kinds = checked(kindChecks);
    try {
      const hook = await call("POST", BASE, { body });
      clear(created, h("section", { class: "banner info", "aria-labelledby": "wh-secret" },
        h("h2", { id: "wh-secret" }, "Signing secret"),
        h("p", {}, "Webhook ", h("code", {}, hook.id), " sends to ", hook.url, ". Its signing secret is shown only now: ",
          "store it where your endpoint checks X-Flagstream-Signature."),
        h("p", {}, h("code", { class: "secret", id: "wh-secret-value" }, hook.secret))));
      form.reset();
      await load();
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
      url.focus();
    }
  });

  async function remove(hook) {
    const ok = await confirmDialog({ title: "Delete this webhook?", message: `Nothing more is sent to ${hook.url}.`,
      confirmLabel: "Delete webhook", danger: true });
    if (!ok) return;
    try {
      await call("DELETE", `${BASE}/${encodeURIComponent(hook.id)}`);
      toast(`Webhook ${hook.id} deleted.`);
    } catch (err) {
      toast(err.message, "error");
    }
    await load();
  }

  async function ping(hook) {
    try {
      const result = await call("POST", `${BASE}/${encodeURIComponent(hook.id)}/ping`);
      if (result.ok) toast(`Test delivery taken: ${hook.url} answered ${result.status}.`);
      else toast(`Test delivery failed: ${result.error}`, "error");
    } catch (err) {
      toast(err.message, "error");
    }
  }

  async function load() {
    const { items } = await call("GET", BASE);
    const details = await Promise.all(items.map((w) => call("GET", `${BASE}/${encodeURIComponent(w.id)}`).catch(() => null)));
    clear(box, h("section", { class: "panel", "aria-labelledby": "wh-list" },
      h("h2", { id: "wh-list" }, `Webhooks (${items.length})`),
      items.length ? h("table", { class: "responsive", "aria-label": "Webhooks" },
        h("thead", {}, h("tr", {}, ["URL", "Sends", "Delivered", "Failed", "To send", "Last error", ""].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, items.map((w, i) => {
          const d = details[i];
          const s = d ? d.status : null;
          const del = h("button", { type: "button", class: "danger", "aria-label": `Delete webhook ${w.url}` }, "Delete");
          del.addEventListener("click", () => remove(w));
          const test = h("button", { type: "button", "aria-label": `Send a test delivery to ${w.url}` }, "Send test");
          test.addEventListener("click", () => ping(w));
          return h("tr", {},
            h("td", { "data-label": "URL" }, h("code", {}, w.url), w.description ? h("div", { class: "small muted" }, w.description) : null),
            h("td", { "data-label": "Sends" }, sends(w)),
            h("td", { "data-label": "Delivered" }, s ? s.delivered : "—", s && s.last_delivered_at ? h("div", { class: "small muted" }, timeEl(s.last_delivered_at)) : null),
            h("td", { "data-label": "Failed" }, s ? h("span", { class: `state ${s.failed ? "off" : "on"}` }, String(s.failed)) : "—"),
            h("td", { "data-label": "To send" }, d ? String(d.pending + d.in_flight) : "—"),
            h("td", { "data-label": "Last error" }, s && s.last_error ? s.last_error : "—"),
            h("td", { class: "actions" }, test, " ", del));
        })))
        : h("p", { class: "muted" }, "No webhooks yet. Each change can be sent to Slack, a CI job or a change log of yours.")));
  }

  const refresh = h("button", { type: "button" }, "Refresh");
  refresh.addEventListener("click", () => load().catch((err) => toast(err.message, "error")));
  clear(main, h("div", { class: "page-head" }, h("h1", { class: "grow" }, "Webhooks"), refresh), created, box, form);
  await load();
  // Delivery status is not in the change stream: refresh while the page is open.
  const timer = setInterval(() => { if (document.visibilityState === "visible") load().catch(() => {}); }, 5000);
  return { destroy() { clearInterval(timer); } };
}
