// Calls to the hub's API. The console signs in with a session cookie (HttpOnly: scripts never see it); every
// request that changes something carries the session's CSRF token, read from the sharpeye_csrf cookie.
const csrfCookie = () => (document.cookie.split("; ").find((c) => c.startsWith("sharpeye_csrf=")) || "").slice(14);

export const session = { signedIn: Boolean(csrfCookie()), user: null, onLogout: () => {} };

// Headers for a request with the given method: the CSRF token unless the method is safe.
export function authHeaders(method = "GET", headers = {}) {
  const safe = ["GET", "HEAD", "OPTIONS"].includes(method.toUpperCase());
  return safe ? { ...headers } : { ...headers, "X-CSRF-Token": decodeURIComponent(csrfCookie()) };
}

export async function api(path, options = {}) {
  const headers = authHeaders(options.method || "GET", options.headers || {});
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    options = { ...options, body: JSON.stringify(options.json) };
  }
  const res = await fetch(path, { ...options, headers, credentials: "same-origin" });
  if (res.status === 401) { signedOut(); throw new Error("unauthorised"); }
  if (!res.ok) throw new Error(`${res.status} ${await res.text()}`);
  if (res.status === 204) return null;
  const type = res.headers.get("content-type") || "";
  return type.includes("json") ? res.json() : res.text();
}

// Returns {ok, mustChange, throttled}: a generated password must be changed before anything else works.
export async function login(username, password) {
  const body = new URLSearchParams({ username, password });
  const res = await fetch("/api/auth/session", { method: "POST", body, credentials: "same-origin" });
  if (!res.ok) return { ok: false, throttled: res.status === 429 };
  const started = await res.json();
  session.signedIn = true;
  return { ok: true, mustChange: Boolean(started.must_change_password) };
}

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

// Live alarm changes: the session cookie goes with the WebSocket handshake; the first message ({}) says so.
// Reconnects with backoff.
export function alarmStream(onMessage, onState) {
  let ws = null; let delay = 1000; let stopped = false;
  const open = () => {
    if (stopped || !session.signedIn) return;
    const proto = location.protocol === "https:" ? "wss" : "ws";
    ws = new WebSocket(`${proto}://${location.host}/api/ws/alarms`);
    ws.onopen = () => ws.send("{}");
    ws.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      if (msg.type === "hello") { delay = 1000; onState(true); return; }
      onMessage(msg);
    };
    ws.onclose = () => { onState(false); if (!stopped) setTimeout(open, delay); delay = Math.min(delay * 2, 15000); };
  };
  open();
  return () => { stopped = true; if (ws) ws.close(); };
}
