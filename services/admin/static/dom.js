// Small DOM helpers: element building, toasts (aria-live), dialogs, time formatting.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (name === "value") el.value = value;
    else if (name === "checked") el.checked = !!value;
    else if (name === "text") el.textContent = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let uid = 0;
export const nextId = (prefix = "f") => `${prefix}-${++uid}`;

/** A labelled form control: <label class="field"><span>Label</span>control</label>. */
export function field(label, control, hint) {
  return h("label", { class: "field" }, h("span", {}, label), control, hint ? h("small", {}, hint) : null);
}

export function toast(message, kind = "info") {
  const box = document.getElementById("toasts");
  // A page's sticky save bar sits at the bottom where the toasts go: lift them above it, so Save stays clickable.
  const bar = [...document.querySelectorAll(".savebar")].map((el) => el.getBoundingClientRect())
    .find((r) => r.height > 0 && r.top < window.innerHeight && r.bottom > 0);
  document.documentElement.style.setProperty("--above-savebar", bar ? `${Math.ceil(window.innerHeight - bar.top)}px` : "0px");
  const el = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" }, message);
  box.append(el);
  setTimeout(() => el.remove(), kind === "error" ? 8000 : 4000);
}

/** A modal dialog. Resolves to {comment} on confirm, or null when cancelled (Escape works too). */
export function confirmDialog({ title, message, confirmLabel = "Confirm", danger = false, comment = "none" }) {
  const dialog = document.getElementById("dialog");
  const opener = document.activeElement;
  return new Promise((resolve) => {
    const textId = nextId("comment");
    const error = h("p", { class: "field-error", id: `${textId}-error`, hidden: true }, "A comment is required here.");
    const text = comment === "none" ? null : h("textarea", {
      id: textId, name: "comment", required: comment === "required",
      "aria-describedby": `${textId}-error`, placeholder: "Why? (shown in the history)",
    });
    const cancel = h("button", { type: "button" }, "Cancel");
    const ok = h("button", { type: "submit", class: danger ? "primary danger-fill" : "primary" }, confirmLabel);
    const form = h("form", { method: "dialog", novalidate: true },
      h("h2", { id: "dialog-title" }, title),
      message ? h("p", {}, message) : null,
      text ? h("label", { class: "field", for: textId },
        h("span", {}, comment === "required" ? "Comment (required)" : "Comment (optional)"), text, error) : null,
      h("div", { class: "actions" }, cancel, ok));
    let settled = false;
    const finish = (value) => {
      if (settled) return;
      settled = true;
      dialog.dataset.session = "";
      dialog.removeEventListener("close", onClose); // eslint-disable-line no-use-before-define
      dialog.removeEventListener("cancel", onCancel); // eslint-disable-line no-use-before-define
      if (dialog.open) dialog.close();
      if (opener && opener.isConnected && typeof opener.focus === "function") opener.focus();
      resolve(value);
    };
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (text && comment === "required" && !text.value.trim()) {
        error.hidden = false;
        text.setAttribute("aria-invalid", "true");
        text.focus();
        return;
      }
      finish({ comment: text ? text.value.trim() : "" });
    });
    cancel.addEventListener("click", () => finish(null));
    // Escape is a cancel. The cancel event comes at once, with the key; the close event only in a later task,
    // after the browser has already put the focus back: a Space pressed in between found the switch still busy
    // and was lost. So the cancel settles the dialog itself, and the close event stays as the fallback (a
    // browser may skip the cancel event). A close event of an earlier dialog can arrive after this one is open
    // in the same element (Escape, then at once Space on the switch): it must not cancel this one, so a close
    // event counts only while the element is really closed.
    const session = nextId("dialog");
    const onClose = () => {
      if (!dialog.open && dialog.dataset.session === session) finish(null);
    };
    const onCancel = (event) => {
      if (dialog.dataset.session !== session) return;
      event.preventDefault();
      finish(null);
    };
    dialog.addEventListener("close", onClose);
    dialog.addEventListener("cancel", onCancel);
    dialog.dataset.session = session;
    clear(dialog, form);
    dialog.showModal();
    (text || ok).focus();
  });
}

export function relTime(iso) {
  if (!iso) return "";
  const then = new Date(iso);
  const seconds = Math.round((Date.now() - then.getTime()) / 1000);
  const fmt = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  if (Math.abs(seconds) < 60) return fmt.format(-seconds, "second");
  if (Math.abs(seconds) < 3600) return fmt.format(-Math.round(seconds / 60), "minute");
  if (Math.abs(seconds) < 86400) return fmt.format(-Math.round(seconds / 3600), "hour");
  return fmt.format(-Math.round(seconds / 86400), "day");
}

export function timeEl(iso) {
  return h("time", { datetime: iso, title: new Date(iso).toLocaleString() }, relTime(iso));
}

/** "2 minutes ago by alice — comment" */
export function lastChange(rec) {
  return h("span", { class: "small" }, timeEl(rec.at), " by ", h("strong", { class: "actor" }, rec.actor),
    rec.comment ? h("span", { class: "muted" }, ` — ${rec.comment}`) : null);
}

export const clone = (value) => JSON.parse(JSON.stringify(value));
