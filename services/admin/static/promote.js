// Compare and promote: what a flag (or every flag) serves in one environment next to another, in sentences,
// and "copy from staging to production" for the flags chosen: previewed first (a dry run that also gives each
// flag's version in the target), then applied all or none with a comment. If someone changed one of them in the
// target after the preview, nothing is copied and the page says which.
import { call, flagBase, projectBase } from "./api.js";
import { clear, h, toast } from "./dom.js";
import { envLabel, isProduction, shownEnvironments } from "./project.js";
import { configurationLines } from "./sentences.js";

/** An environment's configuration in sentences: on or off, then what it serves when on (even while off). */
function said(config) {
  if (!config) return ["(not in this environment)"];
  return [config.on ? "On" : `Off: serve ${config.off_variation}`, ...configurationLines({ ...config, on: true }).map((l) => `When on: ${l}`)];
}

export async function render(ctx, main, key) {
  const listing = await call("GET", `${projectBase(ctx.project)}/flags?archived=false`);
  const envs = shownEnvironments(ctx, listing.environments);
  let byKey = Object.fromEntries(listing.items.map((r) => [r.key, r]));
  const fromDefault = envs.includes(ctx.env) && !isProduction(ctx, ctx.env) ? ctx.env : envs.find((e) => !isProduction(ctx, e)) || envs[0];
  const toDefault = envs.find((e) => e !== fromDefault && isProduction(ctx, e)) || envs.find((e) => e !== fromDefault) || envs[0];
  const options = () => envs.map((e) => h("option", { value: e }, envLabel(ctx, e)));
  const from = h("select", { id: "promote-from", "aria-label": "Copy from" }, options());
  const to = h("select", { id: "promote-to", "aria-label": "Copy to" }, options());
  from.value = fromDefault;
  to.value = toDefault;
  const results = h("div", { id: "promote-results", "aria-live": "polite" });
  let preview = null; // the last dry run: {from, to, flags: [{key, version, lines}]}

  function sideBySide(rec) {
    const a = said(rec?.environments[from.value]);
    const b = said(rec?.environments[to.value]);
    const column = (list, other, label, cls) => h("div", { class: `side ${cls}` }, h("h4", { class: "small" }, label),
      h("ol", { class: "sentences" }, list.map((l) => h("li", { class: other.includes(l) ? null : "changed" }, l))));
    return h("div", { class: "compare" },
      column(a, b, `In ${envLabel(ctx, from.value)}`, "from"), column(b, a, `In ${envLabel(ctx, to.value)} now`, "to"));
  }

  async function load() {
    main.querySelector("#changed-since")?.setAttribute("hidden", "");
    if (from.value === to.value) {
      clear(results, h("p", { class: "banner warn" }, "Choose two different environments."));
      return;
    }
    byKey = Object.fromEntries((await call("GET", `${projectBase(ctx.project)}/flags?archived=false`)).items.map((r) => [r.key, r]));
    try {
      preview = key
        ? await call("GET", `${flagBase(ctx.project, key)}/compare?${new URLSearchParams({ from: from.value, to: to.value })}`)
        : await call("POST", `${projectBase(ctx.project)}/promotions`, { body: { from: from.value, to: to.value, dry_run: true } });
    } catch (err) {
      clear(results, h("div", { class: "banner error", role: "alert" }, `Cannot compare: ${err.message}`));
      return;
    }
    show();
  }

  function show(banner = null) {
    const flags = preview.flags;
    const source = envLabel(ctx, from.value);
    const target = envLabel(ctx, to.value);
    if (!flags.length) {
      clear(results, banner, h("p", { class: "banner info", id: "nothing-differs" },
        key ? `${key} serves the same in ${source} and ${target}.` : `Every flag serves the same in ${source} and ${target}.`),
      key ? sideBySide(byKey[key]) : null);
      return;
    }
    const checks = {};
    const items = flags.map((f) => {
      const box = h("input", { type: "checkbox", checked: true, id: `pick-${f.key}`, dataset: { key: f.key } });
      checks[f.key] = box;
      box.addEventListener("change", count);
      return h("li", { class: "card promote-flag", dataset: { key: f.key } },
        h("label", { class: "check" }, box, h("strong", {}, byKey[f.key]?.definition.name || f.key), " ", h("code", { class: "muted" }, f.key)),
        sideBySide(byKey[f.key]),
        h("details", {}, h("summary", { class: "small" }, "Field by field"),
          h("ul", { class: "small mono" }, f.lines.map((l) => h("li", {}, l)))));
    });
    const production = isProduction(ctx, to.value);
    const comment = h("textarea", { id: "promote-comment", rows: 1, placeholder: production ? "Required in production: why?" : "Optional" });
    const error = h("p", { class: "field-error", hidden: true, id: "promote-comment-error" }, "A comment is required to change production.");
    const apply = h("button", { type: "submit", class: "primary", id: "promote-apply" });
    function count() {
      const n = Object.values(checks).filter((c) => c.checked).length;
      apply.textContent = `Copy ${n} flag${n === 1 ? "" : "s"} from ${source} to ${target}`;
      apply.disabled = n === 0;
    }
    count();
    const form = h("form", { novalidate: true, class: "panel", dataset: { env: to.value } },
      h("p", {}, `${flags.length} flag${flags.length === 1 ? "" : "s"} would change in ${target}. Copying replaces `,
        `each one's configuration in ${target} (on/off, targets, rules, default and off variations, prerequisites) with ${source}'s, `,
        "all or none, as one change."),
      h("ul", { class: "plain" }, items),
      h("label", { class: "field", for: "promote-comment" },
        h("span", {}, production ? "Comment (required in production)" : "Comment"), comment, error),
      h("div", { class: "actions" }, apply));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (production && !comment.value.trim()) {
        error.hidden = false;
        comment.setAttribute("aria-invalid", "true");
        comment.setAttribute("aria-describedby", "promote-comment-error");
        comment.focus();
        return;
      }
      const chosen = Object.keys(checks).filter((k) => checks[k].checked);
      const expected = Object.fromEntries(flags.filter((f) => chosen.includes(f.key)).map((f) => [f.key, f.version]));
      apply.disabled = true;
      try {
        const done = await call("POST", `${projectBase(ctx.project)}/promotions`,
          { body: { from: from.value, to: to.value, flags: chosen, expected, comment: comment.value.trim() } });
        toast(`Copied ${done.flags.length} flag${done.flags.length === 1 ? "" : "s"} from ${source} to ${target}.`);
        await load();
      } catch (err) {
        const conflict = err.status === 409;
        const again = h("button", { type: "button", class: "primary", id: "preview-again" }, "Preview again");
        again.addEventListener("click", load);
        const box = h("div", { class: "banner error", role: "alert", id: "promotion-refused" },
          h("strong", {}, conflict ? "Not copied: someone changed these flags since the preview. " : "Not copied. "),
          err.message, conflict ? h("div", { class: "actions" }, again) : null);
        main.querySelector("#changed-since")?.setAttribute("hidden", ""); // said again, in the refusal
        show(box);
        results.querySelector("#preview-again")?.focus();
      }
    });
    clear(results, banner, form);
  }

  from.addEventListener("change", load);
  to.addEventListener("change", load);
  const swap = h("button", { type: "button", id: "promote-swap", "aria-label": "Swap the environments" }, "⇄");
  swap.addEventListener("click", () => { [from.value, to.value] = [to.value, from.value]; load(); });
  clear(main,
    h("div", { class: "page-head" }, h("div", { class: "grow" },
      h("p", { class: "small" }, key ? h("a", { href: ctx.link(`flags/${encodeURIComponent(key)}`) }, `← flag ${key}`) : h("a", { href: ctx.link("flags") }, "← Flags")),
      h("h1", {}, key ? `Compare ${byKey[key]?.definition.name || key}` : "Compare and promote"))),
    h("div", { class: "filters" },
      h("label", { class: "field", for: "promote-from" }, h("span", {}, "Copy from"), from), swap,
      h("label", { class: "field", for: "promote-to" }, h("span", {}, "to"), to)),
    results);
  await load();
  // A change in either environment after the preview: said, never swapped in under the person's eyes (copying
  // what was previewed is then refused, and says which flag moved).
  const notice = h("div", { id: "changed-since", class: "banner warn", role: "status", hidden: true });
  main.insertBefore(notice, results);
  return {
    everyEnvironment: true,
    onChange(change) {
      if (change.kind !== "flag" || (change.environment !== from.value && change.environment !== to.value)) return;
      if (key && change.record.key !== key) return;
      if (!preview || !preview.flags.length) { load().catch(() => {}); return; }
      const again = h("button", { type: "button" }, "Preview again");
      again.addEventListener("click", () => { notice.hidden = true; load(); });
      clear(notice, `${change.record.actor} changed ${change.record.key} in ${envLabel(ctx, change.environment)} after this preview. `, again);
      notice.hidden = false;
    },
  };
}
