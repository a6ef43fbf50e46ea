// Live changes of every environment of the project (those the token may read): Server-Sent Events read with
// fetch (so the token goes in a header), resumed after the last seen stream sequence on every reconnect, so no
// change is missed. Each change names its environment.
import { API, auth } from "./api.js";

export class Live {
  constructor(onChange, onState) {
    this.onChange = onChange;
    this.onState = onState;
    this.controller = null;
    this.last = null;
  }

  start(project) {
    this.stop();
    const controller = new AbortController();
    this.controller = controller;
    if (this.where !== project) this.last = null;
    this.where = project;
    this.run(project, controller.signal);
  }

  /** Start unless already following this project. */
  ensure(project) {
    if (!this.controller || this.where !== project) this.start(project);
  }

  stop() {
    if (this.controller) this.controller.abort();
    this.controller = null;
  }

  async run(project, signal) {
    let delay = 500;
    while (!signal.aborted) {
      try {
        const url = `${API}/projects/${encodeURIComponent(project)}/changes/stream${this.last !== null ? `?after=${this.last}` : ""}`;
        const response = await fetch(url, {
          headers: { Accept: "text/event-stream", ...(auth.token ? { Authorization: `Bearer ${auth.token}` } : {}) },
          signal, credentials: "same-origin",
        });
        if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
        await this.read(response.body, signal);
        delay = 500;
      } catch (err) {
        if (signal.aborted) return;
        this.onState(false);
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay = Math.min(delay * 2, 10000);
      }
    }
  }

  async read(body, signal) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done || signal.aborted) return;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          this.dispatch(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 2);
        }
      }
    } finally {
      reader.releaseLock();
    }
  }

  dispatch(block) {
    let event = "message", data = "", id = null;
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue;
      const at = line.indexOf(":");
      const name = at < 0 ? line : line.slice(0, at);
      const value = at < 0 ? "" : line.slice(at + 1).replace(/^ /, "");
      if (name === "event") event = value;
      else if (name === "data") data += value;
      else if (name === "id") id = value;
    }
    if (event === "ready") {
      const ready = JSON.parse(data || "{}");
      if (this.last === null && typeof ready.after === "number") this.last = ready.after;
      this.onState(true);
    }
    if (event !== "change") return;
    if (id !== null) this.last = Number(id);
    this.onChange(JSON.parse(data));
  }
}
