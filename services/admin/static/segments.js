// Segments: the list, and the editor (included and excluded keys, rules of clauses with an optional share).
import { call, envBase } from "./api.js";
import { clear, clone, confirmDialog, field, h, lastChange, timeEl, toast } from "./dom.js";
import { Problems, clausesEditor, control, decorate, input, lines, newId, parseLines } from "./form.js";
import { segmentProblems } from "./validate.js";

export const list = {
  async render(ctx, main) {
    const base = envBase(ctx.project, ctx.env);
    let records = (await call("GET", `${base}/segments?archived=all`)).items;
    const search = h("input", { type: "search", id: "segment-search", placeholder: "key or name" });
    const archived = h("input", { type: "checkbox", id: "segment-archived" });
    const body = h("tbody");
    const paint = () => {
      const q = search.value.trim().toLowerCase();
      const rows = records.filter((r) => (archived.checked || !r.segment.archived)
        && (!q || [r.key, r.segment.name].some((s) => (s || "").toLowerCase().includes(q))))
        .sort((a, b) => a.key.localeCompare(b.key));
      clear(body, rows.length ? rows.map((r) => h("tr", { dataset: { key: r.key } },
        h("td", { "data-label": "Segment" }, h("a", { href: ctx.link(`segments/${encodeURIComponent(r.key)}`) },
          h("strong", {}, r.segment.name || r.key)), " ", h("code", { class: "muted" }, r.key),
          r.segment.archived ? h("span", { class: "state archived" }, "archived") : null),
        h("td", { "data-label": "Audience", class: "small" },
          `${r.segment.included.length} included, ${r.segment.excluded.length} excluded, ${r.segment.rules.length} rule${r.segment.rules.length === 1 ? "" : "s"}`),
        h("td", { "data-label": "Last change" }, lastChange(r))))
        : h("tr", {}, h("td", { colspan: 3, class: "empty" }, records.length ? "No segment matches." : "No segments yet.")));
    };
    search.addEventListener("input", paint);
    archived.addEventListener("change", paint);
    const key = h("input", { id: "new-segment-key", required: true, pattern: "[A-Za-z0-9_\\-]{1,64}", placeholder: "e.g. beta-testers" });
    const create = h("form", { class: "row" }, field("New segment key", key),
      h("button", { class: "primary", type: "submit" }, "Create segment"));
    create.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        await call("POST", `${base}/segments`, { body: { key: key.value.trim(), name: key.value.trim() } });
        ctx.go(`segments/${encodeURIComponent(key.value.trim())}`);
      } catch (err) {
        toast(err.message, "error");
      }
    });
    clear(main,
      h("div", { class: "page-head" }, h("h1", { class: "grow" }, "Segments"), create),
      h("div", { class: "filters", role: "search" }, field("Search", search), h("label", { class: "check" }, archived, "Show archived")),
      h("table", { class: "responsive", "aria-label": "Segments" },
        h("thead", {}, h("tr", {}, ["Segment", "Audience", "Last change"].map((c) => h("th", { scope: "col" }, c)))), body));
    paint();
    return {
      onChange(change) {
        if (change.kind !== "segment") return;
        const at = records.findIndex((r) => r.key === change.record.key);
        if (at >= 0) records[at] = change.record; else records.push(change.record);
        paint();
      },
    };
  },
};

export const editor = {
  async render(ctx, main, key) {
    const url = `${envBase(ctx.project, ctx.env)}/segments/${encodeURIComponent(key)}`;
    let rec = await call("GET", url);
    let draft = clone(rec.segment);
    let problems = new Problems();
    let conflict = null;
    let dirty = false;
    let comment = "";
    const root = h("div");
    clear(main, root);
    const changed = (structural) => {
      dirty = true;
      if (problems.size) problems = new Problems(segmentProblems(draft, { production: ctx.production, comment }));
      if (structural || problems.size) paint();
    };
    const keysArea = (which) => {
      const t = h("textarea", { rows: 4, placeholder: "one context key per line" });
      t.value = lines(draft[which]);
      t.addEventListener("input", () => { draft[which] = parseLines(t.value); changed(false); });
      return t;
    };
    function accept(updated) {
      rec = updated; draft = clone(updated.segment); dirty = false; conflict = null; problems = new Problems(); paint();
    }
    async function save() {
      problems = new Problems(segmentProblems(draft, { production: ctx.production, comment }));
      if (problems.size) return paint();
      try {
        const body = { ...draft }; // the whole segment as read, with the edits (a PUT carries every field)
        body.comment = comment.trim();
        const updated = await call("PUT", url, { body, ifMatch: rec.version });
        comment = "";
        accept(updated);
        toast(`Saved segment ${key}.`);
      } catch (err) {
        if (err.status === 409 && err.body.current) { conflict = err.body.current; paint(); root.querySelector("#reload")?.focus(); }
        else if (err.status === 422) { problems = new Problems(err.problems); paint(); }
        else toast(`Not saved: ${err.message}`, "error");
      }
    }
    function paint() {
      const rules = draft.rules.map((rule, i) => {
        const p = `$.rules[${i}]`;
        const remove = h("button", { type: "button", class: "small danger" }, "Delete rule");
        remove.addEventListener("click", () => { draft.rules.splice(i, 1); changed(true); });
        const share = input(rule.weight == null ? "" : String(rule.weight / 1000), (text) => {
          rule.weight = text.trim() === "" ? null : Math.round(Number(text) * 1000); changed(false);
        }, { inputmode: "decimal", size: 6, placeholder: "100" });
        return h("div", { class: "card", dataset: { path: p } },
          h("div", { class: "card-head" }, h("h3", { class: "grow" }, `Rule ${i + 1}`), remove),
          clausesEditor(rule.clauses, `${p}.clauses`, problems, changed),
          control(problems, `${p}.weight`, "Keep this % of the matches (empty: all)", share));
      });
      const addRule = h("button", { type: "button", class: "small" }, "+ Rule");
      addRule.addEventListener("click", () => {
        draft.rules.push({ id: newId("rule"), bucket_by: "key", weight: null,
          clauses: [{ attribute: "email", op: "ends_with", values: [], negate: false, case_insensitive: true, context_kind: draft.context_kind }] });
        changed(true);
      });
      const commentEl = h("textarea", { id: "comment", rows: 1, placeholder: ctx.production ? "Required in production: why?" : "Optional" });
      commentEl.value = comment;
      commentEl.addEventListener("input", () => { comment = commentEl.value; });
      const archive = h("button", { type: "button", class: "small danger" }, rec.segment.archived ? "Restore" : "Archive");
      archive.addEventListener("click", async () => {
        const restoring = rec.segment.archived;
        const answer = await confirmDialog({ title: `${restoring ? "Restore" : "Archive"} segment ${key}?`,
          confirmLabel: restoring ? "Restore" : "Archive", comment: ctx.production ? "required" : "optional" });
        if (!answer) return;
        try { accept(await call("POST", `${url}/${restoring ? "restore" : "archive"}`, { body: { comment: answer.comment }, ifMatch: rec.version })); }
        catch (err) { toast(err.message, "error"); }
      });
      const form = h("form", { novalidate: true, "aria-label": `Edit segment ${key}` },
        conflict ? (() => {
          const reload = h("button", { type: "button", class: "primary", id: "reload" }, "Reload their version (discard my edits)");
          reload.addEventListener("click", () => accept(conflict));
          return h("div", { class: "banner error", role: "alert", id: "conflict" },
            h("strong", {}, "Not saved: someone else saved this segment first. "),
            h("strong", {}, conflict.actor), " changed it ", timeEl(conflict.at), ". Reload to see it, then make your change again.",
            h("div", { class: "actions" }, reload));
        })() : null,
        problems.size ? h("div", { class: "banner error", role: "alert", id: "problems" },
          h("strong", {}, "Not saved:"), h("ul", {}, problems.list.map((p) => h("li", {}, `${p.path}: ${p.message}`)))) : null,
        h("section", { class: "panel" }, h("h2", {}, "Settings"),
          h("div", { class: "row top" },
            h("div", { class: "grow" }, control(problems, "$.name", "Name", input(draft.name, (v) => { draft.name = v; changed(false); }))),
            control(problems, "$.context_kind", "Context kind", input(draft.context_kind, (v) => { draft.context_kind = v; changed(false); }, { size: 8 }))),
          control(problems, "$.description", "Description", input(draft.description, (v) => { draft.description = v; changed(false); }))),
        h("section", { class: "panel" }, h("h2", {}, "Who is in it"),
          h("div", { class: "row" },
            h("div", { class: "grow" }, control(problems, "$.included", "Included keys", keysArea("included"))),
            h("div", { class: "grow" }, control(problems, "$.excluded", "Excluded keys (win over everything)", keysArea("excluded"))))),
        h("section", { class: "panel" }, h("h2", {}, "Rules"),
          h("p", { class: "muted small" }, "A context is in the segment if any rule matches (all its conditions)."), rules, addRule),
        h("div", { class: "savebar" },
          h("div", { class: "grow" }, control(problems, "comment", ctx.production ? "Comment (required in production)" : "Comment", commentEl)),
          h("button", { type: "submit", class: "primary", id: "save" }, "Save segment")));
      form.addEventListener("submit", (event) => { event.preventDefault(); save(); });
      clear(root,
        h("div", { class: "page-head" }, h("div", { class: "grow" },
          h("p", { class: "small" }, h("a", { href: ctx.link("segments") }, "← Segments")),
          h("h1", {}, draft.name || key, " ", h("code", { class: "muted small" }, key)),
          h("p", { class: "small muted" }, `Revision r${rec.revision}. Last change `, lastChange(rec))), archive),
        form);
      decorate(root, problems);
    }
    paint();
    return {
      canLeave: () => !dirty,
      onChange(change) {
        if (change.kind !== "segment" || change.record.key !== key || change.record.version <= rec.version) return;
        if (!dirty) { accept(change.record); toast(`${change.record.actor} changed ${key}; showing the new version.`); }
      },
    };
  },
};
