// Calls to the hub's API with the bearer token kept in this tab's session storage.
export const session = { token: sessionStorage.getItem("sharpeye.token"), user: null, onLogout: () => {} };

export async function api(path, options = {}) {
  const headers = { ...(options.headers || {}), Authorization: `Bearer ${session.token}` };
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    options = { ...options, body: JSON.stringify(options.json) };
  }
  const res = await fetch(path, { ...options, headers });
  if (res.status === 401) { logout(); throw new Error("unauthorised"); }
  if (!res.ok) throw new Error(`${res.status} ${await res.text()}`);
  if (res.status === 204) return null;
  const type = res.headers.get("content-type") || "";
  return type.includes("json") ? res.json() : res.text();
}

// Returns {ok, mustChange, throttled}: a generated password must be changed before anything else works.
export async function login(username, password) {
  const body = new URLSearchParams({ username, password });
  const res = await fetch("/api/auth/token", { method: "POST", body });
  if (!res.ok) return { ok: false, throttled: res.status === 429 };
  const token = await res.json();
  session.token = token.access_token;
  sessionStorage.setItem("sharpeye.token", session.token);
  return { ok: true, mustChange: Boolean(token.must_change_password) };
}

export async function changePassword(current, next) {
  const res = await fetch("/api/auth/password", {
    method: "POST",
    headers: { Authorization: `Bearer ${session.token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ current_password: current, new_password: next }),
  });
  if (res.ok) return null;
  const detail = (await res.json().catch(() => ({}))).detail;
  return typeof detail === "string" ? detail : `${res.status}`;
}

export function logout() {
  session.token = null; session.user = null;
  sessionStorage.removeItem("sharpeye.token");
  session.onLogout();
}

// Live alarm changes: the token goes in the first message, never in the URL. Reconnects with backoff.
export function alarmStream(onMessage, onState) {
  let ws = null; let delay = 1000; let stopped = false;
  const open = () => {
    if (stopped || !session.token) return;
    const proto = location.protocol === "https:" ? "wss" : "ws";
    ws = new WebSocket(`${proto}://${location.host}/api/ws/alarms`);
    ws.onopen = () => ws.send(JSON.stringify({ token: session.token }));
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
