// The current environment's settings: what it is (key, name, production-like) and whether its changes need
// approvals (docs/requests.md): how many, who may approve, whether a flag may still be turned off at once.
// Everyone who may read the environment sees the setting; those the API lets change it (a writer of the
// environment) get a form. The API stays the judge: what it answers (a 4xx and its reason, or a 202 when the
// change is itself held as a change request) is shown as it says it.
import { call, envBase } from "./api.js";
import { clear, h, lastChange, toast } from "./dom.js";
import { Problems, decorate } from "./form.js";

/** Roles an environment may name as its approvers, with what each means (that role here, or a higher one). */
const ROLES = [
  ["writer", "Writers (and admins) of this environment"],
  ["admin", "Admins of this environment"],
  ["reader", "Anyone with a role here (readers and above)"],
];

/** The setting in a sentence: "Changes need 2 approvals, from writers or group:sre; a flag can be turned off at once". */
export function approvalsText(env) {
  const n = env.approvals || 0;
  if (!n) return "Changes apply at once: no approval needed.";
  const who = (env.approvers || []).length ? env.approvers.join(" or ") : "writers (the default)";
  return `Changes need ${n} approval${n === 1 ? "" : "s"}, from ${who}; ` +
    (env.emergency_off ? "a flag can still be turned off at once, with a reason." : "turning a flag off is held too.");
}

export async function render(ctx, main) {
  const url = envBase(ctx.project, ctx.env);
  let rec = await call("GET", url);
  let dirty = false;
  const box = h("div");
  /** What the form shows: the environment's setting, or what was typed (kept when the API refuses it). */
  const draftOf = (env) => ({
    approvals: String(env.approvals || 0),
    roles: ROLES.map(([role]) => role).filter((role) => (env.approvers || []).includes(role)),
    groups: (env.approvers || []).filter((a) => a.startsWith("group:")).map((a) => a.slice(6)).join("\n"),
    emergency: !!env.emergency_off,
    comment: "",
  });
  let draft = draftOf(rec.environment);

  function paint(problems = new Problems(), message = null, held = null) {
    const env = rec.environment;
    const name = env.name || rec.key;
    const mayChange = ctx.may("writer");
    const approvals = h("input", { id: "env-approvals", type: "number", min: 0, step: 1, inputmode: "numeric",
      value: draft.approvals, "aria-describedby": "env-approvals-help", "data-path": "$.approvals" });
    const roleBoxes = ROLES.map(([role, label]) => {
      const el = h("input", { type: "checkbox", value: role, checked: draft.roles.includes(role) });
      return { role, el, node: h("label", { class: "check" }, el, label) };
    });
    const groupsEl = h("textarea", { id: "env-groups", rows: 2, placeholder: "one group per line, e.g. sre" });
    groupsEl.value = draft.groups;
    const emergency = h("input", { type: "checkbox", id: "env-emergency", checked: draft.emergency });
    const comment = h("textarea", { id: "env-comment", rows: 1, placeholder: "Why? (shown in the history)" });
    comment.value = draft.comment;
    const error = h("div", { class: "banner error", role: "alert", id: "env-error", hidden: !message }, message || "");
    const save = h("button", { class: "primary", type: "submit", id: "save-approvals" }, "Save approvals");
    const fields = h("fieldset", { class: "bare", disabled: !mayChange },
      h("legend", { class: "sr-only" }, "Approvals"),
      h("label", { class: "field", for: "env-approvals" }, h("span", {}, "Approvals needed"), approvals,
        h("small", { id: "env-approvals-help" }, "0: none, a change applies at once. From 1, every change to ",
          `${name} becomes a change request that others approve.`)),
      h("fieldset", { "data-path": "$.approvers" },
        h("legend", {}, "Who may approve"),
        roleBoxes.map((r) => r.node),
        h("label", { class: "field", for: "env-groups" }, h("span", {}, "Single sign-on groups"), groupsEl,
          h("small", {}, "People of these groups, as your identity provider names them (tokens are in no group).")),
        h("p", { class: "small muted" }, "Nobody chosen: the writers of this environment (the default).")),
      h("label", { class: "check" }, emergency,
        "Let a flag be turned off at once, without approval (the kill switch: a reason is required, and the ",
        "history marks it as an emergency change)"),
      h("label", { class: "field", for: "env-comment" },
        h("span", {}, env.production ? "Comment (required in production)" : "Comment"), comment));
    const form = h("form", { class: "panel", "aria-labelledby": "approvals-title", novalidate: true },
      h("h2", { id: "approvals-title" }, "Approvals"),
      h("p", { id: "approvals-state" }, approvalsText(env)),
      env.approvals ? h("p", { class: "small muted" },
        "Changing this setting is a change to ", name, " too: it is held as a change request like the others.") : null,
      mayChange ? null : h("p", { class: "banner info", id: "approvals-read-only" },
        `Your role in ${name} is reader: you can see this setting but not change it.`),
      fields, error,
      held ? h("p", { class: "banner info", role: "status", id: "approvals-held" }, "Held for approval as ",
        h("a", { href: ctx.link(`requests/${held.id}`) }, `change request ${held.id}`),
        ": the setting stays as shown until it is approved and applied.") : null,
      mayChange ? h("p", {}, save) : null);
    const edited = () => {
      dirty = true;
      draft = { approvals: approvals.value, roles: roleBoxes.filter((r) => r.el.checked).map((r) => r.role),
        groups: groupsEl.value, emergency: emergency.checked, comment: comment.value };
    };
    form.addEventListener("input", edited);
    form.addEventListener("change", edited);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const groups = groupsEl.value.split("\n").map((g) => g.trim()).filter(Boolean).map((g) => `group:${g}`);
      const body = {
        // What was typed, as typed when it is no whole number: the API says what is wrong with it.
        approvals: /^\d+$/.test(approvals.value.trim()) ? Number(approvals.value.trim()) : approvals.value,
        approvers: [...roleBoxes.filter((r) => r.el.checked).map((r) => r.role), ...groups],
        emergency_off: emergency.checked,
        comment: comment.value.trim(),
      };
      if (env.production && !body.comment) {
        return paint(new Problems([{ path: "comment", message: "A comment is required in production." }]));
      }
      save.disabled = true;
      save.textContent = "Saving…";
      try {
        rec = await call("PATCH", url, { body, ifMatch: rec.version });
        dirty = false;
        draft = draftOf(rec.environment);
        ctx.envs = ctx.envs.map((e) => (e.key === rec.key ? rec : e));
        paint();
        toast(`Saved the approvals of ${name}.`);
      } catch (err) {
        if (err.held) { // the setting is itself a change to a gated environment: held until approved and applied
          dirty = false;
          draft = draftOf(rec.environment);
          paint(new Problems(), null, err.request);
          return;
        }
        paint(new Problems(err.status === 422 ? err.problems : []),
          err.status === 409 ? `${err.message}. Someone changed this environment meanwhile: reload to see it.` : err.message);
      }
    });
    comment.dataset.path = "comment";
    decorate(form, problems);
    clear(box,
      h("h1", {}, `${name} settings`),
      h("dl", { class: "kv panel", "aria-label": "About this environment" },
        h("dt", {}, "Key"), h("dd", {}, h("code", {}, rec.key)),
        h("dt", {}, "Production-like"), h("dd", {}, env.production
          ? "yes: every change asks for confirmation and a comment" : "no"),
        h("dt", {}, "Last change"), h("dd", {}, lastChange(rec))),
      form);
  }

  paint();
  clear(main, box);
  return {
    canLeave: () => !dirty,
    onChange(change) {
      if (change.kind !== "environment" || change.record.key !== ctx.env || change.record.version <= rec.version) return;
      rec = change.record;
      if (!dirty) { draft = draftOf(rec.environment); paint(); }
      else toast(`${change.record.actor} changed this environment while you were editing: reload to see it.`);
    },
  };
}
