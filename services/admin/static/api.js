// The admin REST API, as whoever is signed in: a person's session (an HttpOnly cookie the page never sees, plus
// its CSRF token on every change) or an API token pasted in (kept in sessionStorage, sent as a bearer token).

const TOKEN = "flagstream.token";

export const auth = {
  get token() { return sessionStorage.getItem(TOKEN) || ""; },
  set token(value) { value ? sessionStorage.setItem(TOKEN, value) : sessionStorage.removeItem(TOKEN); },
  /** The session's CSRF token (from GET /api/v1/whoami or the password sign-in); "" without a session. */
  csrf: "",
};

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
    this.problems = (body && body.problems) || [];
  }
}

export async function call(method, path, { body, ifMatch, signal, signingIn = false } = {}) {
  const headers = { Accept: "application/json" };
  if (auth.token) headers.Authorization = `Bearer ${auth.token}`;
  else if (auth.csrf && method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = auth.csrf;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (ifMatch !== undefined && ifMatch !== null) headers["If-Match"] = `"${ifMatch}"`;
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal,
      credentials: "same-origin" });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, { error: `The admin service cannot be reached (${err.message}).` });
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = { error: text }; }
  }
  if (!response.ok) {
    const error = new ApiError(response.status, data);
    if (response.status === 401 && !signingIn) window.dispatchEvent(new CustomEvent("flagstream:unauthorized"));
    throw error;
  }
  return data;
}

export const API = "/api/v1";
export const envBase = (project, env) =>
  `${API}/projects/${encodeURIComponent(project)}/environments/${encodeURIComponent(env)}`;

export const projectBase = (project) => `${API}/projects/${encodeURIComponent(project)}`;
export const flagBase = (project, key) => `${projectBase(project)}/flags/${encodeURIComponent(key)}`;

let openapi = null;
/** The operations this server offers (so pages for features not deployed yet stay hidden). */
export async function operations() {
  if (!openapi) {
    const doc = await call("GET", "/openapi.json");
    openapi = new Set();
    for (const methods of Object.values(doc.paths || {})) {
      for (const op of Object.values(methods)) openapi.add(op.operationId);
    }
    openapi.paths = doc.paths || {};
  }
  return openapi;
}
