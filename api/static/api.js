// @ts-check
// Calls to the hub's API. The console signs in with a session cookie (HttpOnly: scripts never see it); every
// request that changes something carries the session's CSRF token, read from the sharpeye_csrf cookie.
const csrfCookie = () => (document.cookie.split("; ").find((c) => c.startsWith("sharpeye_csrf=")) || "").slice(14);

export const session = {
  signedIn: Boolean(csrfCookie()),
  /** @type {import("./types.js").User | null} */
  user: null,
  /** @type {() => void} */
  onLogout: () => {},
};

/**
 * Headers for a request with the given method: the CSRF token unless the method is safe.
 * @param {string} [method]
 * @param {Record<string, string>} [headers]
 * @returns {Record<string, string>}
 */
export function authHeaders(method = "GET", headers = {}) {
  const safe = ["GET", "HEAD", "OPTIONS"].includes(method.toUpperCase());
  return safe ? { ...headers } : { ...headers, "X-CSRF-Token": decodeURIComponent(csrfCookie()) };
}

/**
 * A request to the hub; the answer's JSON (or text), null for 204. Throws with the status and body on an error.
 * @param {string} path
 * @param {{ method?: string, json?: unknown, body?: BodyInit, headers?: Record<string, string> }} [options]
 * @returns {Promise<any>}
 */
export async function api(path, options = {}) {
  const headers = authHeaders(options.method || "GET", options.headers || {});
  let body = options.body;
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(options.json);
  }
  const res = await fetch(path, { method: options.method, body, headers, credentials: "same-origin" });
  if (res.status === 401) { signedOut(); throw new Error("unauthorised"); }
  if (!res.ok) throw new Error(`${res.status} ${await res.text()}`);
  if (res.status === 204) return null;
  const type = res.headers.get("content-type") || "";
  return type.includes("json") ? res.json() : res.text();
}

/**
 * Sign in: a generated password must be changed before anything else works.
 * @param {string} username
 * @param {string} password
 * @returns {Promise<{ ok: boolean, mustChange?: boolean, throttled?: boolean }>}
 */
export async function login(username, password) {
  const body = new URLSearchParams({ username, password });
  const res = await fetch("/api/auth/session", { method: "POST", body, credentials: "same-origin" });
  if (!res.ok) return { ok: false, throttled: res.status === 429 };
  const started = await res.json();
  session.signedIn = true;
  return { ok: true, mustChange: Boolean(started.must_change_password) };
}

/**
 * @param {string} current
 * @param {string} next
 * @returns {Promise<string | null>} null, or what is wrong with the new password
 */
export async function changePassword(current, next) {
  const res = await fetch("/api/auth/password", {
    method: "POST",
    credentials: "same-origin",
    headers: authHeaders("POST", { "Content-Type": "application/json" }),
    body: JSON.stringify({ current_password: current, new_password: next }),
  });
  if (res.ok) return null;
  const detail = (await res.json().catch(() => ({}))).detail;
  return typeof detail === "string" ? detail : `${res.status}`;
}

// Sign out: the hub revokes the session and clears its cookies.
export async function logout() {
  await fetch("/api/auth/logout", { method: "POST", headers: authHeaders("POST"), credentials: "same-origin" })
    .catch(() => {});
  signedOut();
}

function signedOut() {
  session.signedIn = false; session.user = null;
  session.onLogout();
}

/**
 * Live alarm changes: the session cookie goes with the WebSocket handshake; the first message ({}) says so.
 * Reconnects with backoff. Returns a function that stops the stream.
 * @param {(msg: import("./types.js").AlarmChange) => void} onMessage
 * @param {(up: boolean) => void} onState
 * @returns {() => void}
 */
export function alarmStream(onMessage, onState) {
  /** @type {WebSocket | null} */
  let ws = null; let delay = 1000; let stopped = false;
  const open = () => {
    if (stopped || !session.signedIn) return;
    const proto = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${proto}://${location.host}/api/ws/alarms`);
    ws = socket;
    socket.onopen = () => socket.send("{}");
    socket.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      if (msg.type === "hello") { delay = 1000; onState(true); return; }
      onMessage(msg);
    };
    socket.onclose = () => { onState(false); if (!stopped) setTimeout(open, delay); delay = Math.min(delay * 2, 15000); };
  };
  open();
  return () => { stopped = true; if (ws) ws.close(); };
}
