// A flag across the environments of its project, as the API gives it (GET /projects/{p}/flags/{key}): its
// definition once, each environment's configuration with its own version. Live changes arrive per environment
// (an environment's whole flag); these helpers fold them into the project-wide record.
import { configurationLines, summary } from "./sentences.js";

/** What a flag is, project-wide (the same in every environment). */
export const DEFINITION_FIELDS = ["name", "description", "kind", "tags", "variations", "salt", "maintainer", "lifecycle", "remove_by",
  "client_side"];
/** What a flag does in one environment, as the editor's tabs edit it (saved as a merge patch of these). */
export const CONFIG_FIELDS = ["on", "off_variation", "fallthrough", "targets", "rules", "prerequisites"];

/** An environment's configuration from its record (an event of that environment: {version, actor, flag...}). */
export function configOf(record) {
  const flag = record.flag;
  const config = {
    version: record.version, revision: record.revision, actor: record.actor, at: record.at,
    comment: record.comment, event: record.event, summary: summary(flag), lines: configurationLines(flag),
  };
  for (const f of CONFIG_FIELDS) config[f] = flag[f];
  return config;
}

/** The project-wide record with one environment's new record folded in (null: the flag was deleted). */
export function withChange(rec, env, record) {
  if (record.flag.deleted) return null;
  const current = rec.environments[env];
  if (current && current.version >= record.version) return rec;
  const next = { ...rec, environments: { ...rec.environments, [env]: configOf(record) } };
  if (record.version >= rec.version) {
    next.version = record.version;
    const definition = { ...rec.definition, archived: record.flag.archived };
    for (const f of DEFINITION_FIELDS) if (f in record.flag) definition[f] = record.flag[f];
    next.definition = definition;
  }
  return next;
}

/** The environment whose configuration changed last (its config), for a "last change" column. */
export function lastChanged(rec) {
  let best = null;
  for (const [env, config] of Object.entries(rec.environments)) {
    if (!best || config.version > best.config.version) best = { env, config };
  }
  return best;
}

export const envLabel = (ctx, key) => {
  const env = ctx.envs.find((e) => e.key === key)?.environment;
  return (env && env.name) || key;
};

export const isProduction = (ctx, key) => !!ctx.envs.find((e) => e.key === key)?.environment?.production;

/** The environments of the project the page shows, in the API's order, only those the token may use. */
export function shownEnvironments(ctx, listed) {
  const active = new Set(ctx.envs.filter((e) => !e.environment.archived).map((e) => e.key));
  return listed.filter((e) => active.has(e));
}
