// Actions shared by several pages: turning a flag on or off (with confirmation and a required comment in a
// production-like environment), showing errors.
import { call, envBase } from "./api.js";
import { confirmDialog, toast } from "./dom.js";

/** Turn a flag on/off (in `env`, by default the current environment). Resolves to the new record of that
 * environment, or null if cancelled or refused. `rec`: {key, version, flag: {name}} (the environment's). */
export async function toggleFlag(ctx, rec, on, env = ctx.env) {
  const name = rec.flag.name || rec.key;
  const environment = ctx.envs.find((e) => e.key === env)?.environment || {};
  let comment = "";
  if (environment.production) {
    const answer = await confirmDialog({
      title: `Turn ${name} ${on ? "on" : "off"} in ${environment.name || env}?`,
      message: `This is a production environment: the change reaches every connected application within ` +
        `milliseconds. Say why, for whoever is on call next.`,
      confirmLabel: `Turn ${on ? "on" : "off"}`,
      comment: "required",
    });
    if (!answer) return null;
    comment = answer.comment;
  }
  try {
    const updated = await call("POST", `${envBase(ctx.project, env)}/flags/${encodeURIComponent(rec.key)}/${on ? "on" : "off"}`,
      { body: { comment }, ifMatch: rec.version });
    toast(`${name} is now ${on ? "ON" : "OFF"} in ${env}.`);
    return updated;
  } catch (err) {
    if (err.status === 409 && err.body.current) {
      toast(`Not changed: ${err.body.current.actor} changed ${name} just before you. Look at the current state and try again.`, "error");
      return err.body.current;
    }
    toast(`Could not turn ${name} ${on ? "on" : "off"}: ${err.message}`, "error");
    return null;
  }
}
