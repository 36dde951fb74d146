// @ts-check
// The field app (网格通) for grid workers and handlers on a phone: one-click report with photos and position that
// works offline, my tasks with 签收 and feedback, 巡查 with a GPS track. Signs in with the hub's accounts (the
// console's session cookie); everything it sends goes through the outbox (queue.js) so nothing is lost offline.
import { h, fill } from "./dom.js";
import { t, lang } from "./i18n.js";
import { put, remove, entries, newId } from "./queue.js";
import { downscale } from "./photo.js";
import { voiceControl, voiceName } from "./voice.js";
import { disablePush, enablePush, pushState } from "./push.js";

/**
 * @typedef {{ username: string, role: string, org_unit: string | null, department: string | null,
 *   permissions: string[], categories: string[], units: string[] }} Profile
 * @typedef {{ id: string, title: string, category: string, stage: string, org_unit: string, description: string,
 *   light: string | null, due_at: string | null, created_at: string, claimed_by: string | null,
 *   location: { lat: number, lon: number } | null }} Case
 * @typedef {{ at: string, action: string, actor: string, note: string }} CaseEvent
 * @typedef {{ id: string, media_type: string }} Photo
 * @typedef {{ case: Case, history: CaseEvent[], photos: Photo[], actions: string[] }} Task
 * @typedef {{ id: string, points: number, distance_m: number, ended_at: string | null }} Patrol
 * @typedef {{ lat: number, lon: number, accuracy: number, at: number }} Fix
 */

const FLUSH_EVERY_MS = 15000;
const TRACK_BATCH_MS = 10000;

const root = /** @type {HTMLElement} */ (document.getElementById("app"));
/** @type {Profile | null} */
let profile = null;
let tab = "report";
let flushing = false;

// --- the hub ------------------------------------------------------------------------------------------------
const csrf = () => decodeURIComponent((document.cookie.split("; ").find((c) => c.startsWith("sharpeye_csrf=")) || "").slice(14));

/**
 * @param {string} path
 * @param {{ method?: string, json?: unknown, body?: BodyInit }} [options]
 * @returns {Promise<Response>}
 */
function call(path, options = {}) {
  const method = options.method || "GET";
  /** @type {Record<string, string>} */
  const headers = method === "GET" ? {} : { "X-CSRF-Token": csrf() };
  let body = options.body;
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(options.json);
  }
  return fetch(path, { method, headers, body, credentials: "same-origin" });
}

/**
 * The reason a refused request gives (FastAPI's ``detail``), in one line.
 * @param {Response} res
 * @returns {Promise<string>}
 */
async function reason(res) {
  try {
    const body = await res.json();
    const detail = body.detail;
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) return detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ");
    return JSON.stringify(detail);
  } catch {
    return `HTTP ${res.status}`;
  }
}

// --- position and photos -----------------------------------------------------------------------------------
/** @type {Fix | null} */
let lastFix = null;

/** @returns {Promise<Fix | null>} the phone's position now (null when it cannot tell within 10 s) */
function locate() {
  return new Promise((resolve) => {
    if (!navigator.geolocation) { resolve(null); return; }
    navigator.geolocation.getCurrentPosition(
      (p) => {
        lastFix = { lat: p.coords.latitude, lon: p.coords.longitude, accuracy: p.coords.accuracy, at: p.timestamp };
        resolve(lastFix);
      },
      () => resolve(null),
      { enableHighAccuracy: true, timeout: 10000, maximumAge: 30000 },
    );
  });
}

/**
 * @param {Fix | null} fix
 * @returns {Record<string, string>}
 */
function fixFields(fix) {
  return fix ? { lat: fix.lat.toFixed(6), lon: fix.lon.toFixed(6), accuracy_m: String(Math.round(fix.accuracy)) } : {};
}

// --- the outbox -------------------------------------------------------------------------------------------
/** @param {import("./queue.js").Entry} entry */
async function enqueue(entry) {
  await put(entry);
  await flush();
}

/**
 * Send what waits, oldest first; stop at the first entry the network or the hub cannot take now.
 * @returns {Promise<void>}
 */
async function flush() {
  if (flushing) return;
  flushing = true;
  try {
    for (const entry of await entries()) {
      if (entry.error) continue; // refused with a reason: waits for the user to delete it
      const outcome = await send(entry);
      if (outcome === "retry") break;
    }
  } finally {
    flushing = false;
    showStatus();
    if (tab === "report" || tab === "me") await renderOutbox();
  }
}

/**
 * @param {import("./queue.js").Entry} entry
 * @returns {Promise<"done" | "retry" | "refused">}
 */
async function send(entry) {
  /** @type {Response} */
  let res;
  try {
    if (entry.fields) {
      const form = new FormData();
      for (const [k, v] of Object.entries(entry.fields)) form.append(k, v);
      (entry.photos || []).forEach((blob, n) => form.append("photos", blob, `photo-${n + 1}.jpg`));
      if (entry.voice) form.append("voice", entry.voice, voiceName(entry.voice));
      res = await call(entry.url, { method: "POST", body: form });
    } else {
      res = await call(entry.url, { method: "POST", json: entry.json ?? {} });
    }
  } catch {
    return "retry"; // no network
  }
  if (res.ok) {
    const body = await res.json().catch(() => null);
    await remove(entry.id);
    if (entry.kind === "report" && body) remember(body.case_id, entry.label);
    if (entry.kind === "points" && body) showPatrol(body);
    return "done";
  }
  if (res.status === 401 || res.status === 409 && res.headers.get("Retry-After") || res.status >= 500 || res.status === 429) {
    if (res.status === 401) signedOut();
    return "retry";
  }
  await put({ ...entry, error: `${res.status}: ${await reason(res)}` });
  return "refused";
}

/**
 * @param {string} caseId
 * @param {string} label
 */
function remember(caseId, label) {
  const recent = JSON.parse(localStorage.getItem("field-recent") || "[]");
  recent.unshift({ case_id: caseId, label, at: new Date().toISOString() });
  localStorage.setItem("field-recent", JSON.stringify(recent.slice(0, 20)));
  toast(`${t("sent")}: ${caseId}`);
}

// --- the page ---------------------------------------------------------------------------------------------
/** @param {string} text */
function toast(text) {
  const el = h("div", { class: "toast", role: "status" }, text);
  document.body.append(el);
  setTimeout(() => el.remove(), 4000);
}

function showStatus() {
  const bar = document.getElementById("net");
  if (!bar) return;
  bar.className = navigator.onLine ? "net online" : "net offline";
  entries().then((all) => {
    const waiting = all.filter((e) => !e.error).length;
    fill(bar, navigator.onLine ? t("online") : t("offline"), waiting ? ` · ${t("outbox")} ${waiting}` : "");
  });
}

function signedOut() {
  profile = null;
  renderLogin();
}

function renderLogin(message = "") {
  const user = /** @type {HTMLInputElement} */ (h("input", { name: "username", autocomplete: "username", required: true }));
  const pass = /** @type {HTMLInputElement} */ (h("input", { name: "password", type: "password", autocomplete: "current-password", required: true }));
  const note = h("p", { class: "error", role: "alert" }, message);
  const form = h("form", { class: "login", onsubmit: async (/** @type {Event} */ e) => {
    e.preventDefault();
    const res = await fetch("/api/auth/session", { method: "POST", credentials: "same-origin",
      body: new URLSearchParams({ username: user.value, password: pass.value }) }).catch(() => null);
    if (!res) { fill(note, t("need_online")); return; }
    if (!res.ok) { fill(note, res.status === 429 ? t("throttled") : t("wrong_login")); return; }
    const started = await res.json();
    if (started.must_change_password) { renderPasswordChange(pass.value); return; }
    await start();
  } },
  h("h1", {}, t("app")),
  h("label", {}, t("username"), user),
  h("label", {}, t("password"), pass),
  h("button", { type: "submit", class: "primary" }, t("sign_in")),
  note);
  fill(root, form);
}

/**
 * A password set by an administrator must be replaced at the first sign-in, here as on the console.
 * @param {string} current
 */
function renderPasswordChange(current) {
  const fresh = /** @type {HTMLInputElement} */ (h("input", { name: "new_password", type: "password", autocomplete: "new-password", minlength: 10, required: true }));
  const again = /** @type {HTMLInputElement} */ (h("input", { name: "confirm_password", type: "password", autocomplete: "new-password", required: true }));
  const note = h("p", { class: "error", role: "alert", "data-testid": "password-error" });
  fill(root, h("form", { class: "login password", onsubmit: async (/** @type {Event} */ e) => {
    e.preventDefault();
    if (fresh.value !== again.value) { fill(note, t("password_mismatch")); return; }
    const res = await call("/api/auth/password", { method: "POST", json: { current_password: current, new_password: fresh.value } }).catch(() => null);
    if (!res) { fill(note, t("need_online")); return; }
    if (!res.ok) { fill(note, await reason(res)); return; }
    await start();
  } },
  h("h1", {}, t("new_password_title")),
  h("p", { class: "muted" }, t("must_change")),
  h("label", {}, t("new_password"), fresh),
  h("label", {}, t("confirm_password"), again),
  h("button", { type: "submit", class: "primary" }, t("save")),
  note));
}

/** @param {string} permission */
const may = (permission) => Boolean(profile && profile.permissions.includes(permission));

function renderShell() {
  const tabs = [
    may("reports:create") && ["report", t("tab_report")],
    may("tasks:act") && ["tasks", t("tab_tasks")],
    may("patrols:write") && ["patrol", t("tab_patrol")],
    ["me", t("tab_me")],
  ].filter((x) => Array.isArray(x));
  if (!tabs.some((x) => Array.isArray(x) && x[0] === tab)) tab = /** @type {string[]} */ (tabs[0])[0];
  const nav = h("nav", { class: "tabs" }, tabs.map((x) => {
    const [id, label] = /** @type {string[]} */ (x);
    return h("button", { "data-tab": id, class: id === tab ? "active" : "", onclick: () => { tab = id; renderShell(); } }, label);
  }));
  const main = h("main", { id: "view" });
  fill(root, h("div", { id: "net", class: "net" }), main, nav);
  showStatus();
  if (tab === "report") renderReport(main);
  else if (tab === "tasks") renderTasks(main);
  else if (tab === "patrol") renderPatrol(main);
  else renderMe(main);
}

// --- report ---------------------------------------------------------------------------------------------
/** @param {HTMLElement} main */
function renderReport(main) {
  if (!profile) return;
  let category = "";
  /** @type {Blob[]} */
  let photos = [];
  /** @type {Fix | null} */
  let fix = lastFix;
  const categories = h("div", { class: "chips", role: "radiogroup", "aria-label": t("category") },
    profile.categories.map((c) => h("button", { type: "button", role: "radio", "aria-checked": "false", "data-category": c,
      onclick: (/** @type {Event} */ e) => {
        category = c;
        for (const b of categories.querySelectorAll("button")) b.setAttribute("aria-checked", String(b === e.currentTarget));
      } }, t(`category.${c}`))));
  const description = /** @type {HTMLTextAreaElement} */ (h("textarea", { name: "description", rows: 3, placeholder: t("description_hint"), maxlength: 5000 }));
  const thumbs = h("div", { class: "thumbs" });
  const file = /** @type {HTMLInputElement} */ (h("input", { type: "file", accept: "image/*", capture: "environment", multiple: true, name: "photos",
    onchange: async () => {
      for (const f of Array.from(file.files || [])) photos.push(await downscale(f));
      file.value = "";
      fill(thumbs, photos.map((p) => h("img", { src: URL.createObjectURL(p), alt: "" })));
    } }));
  const voice = voiceControl();
  const where = h("p", { class: "where", "data-testid": "position" }, t("locating"));
  const showFix = () => fill(where, fix ? `${fix.lat.toFixed(5)}, ${fix.lon.toFixed(5)} (${t("accuracy")} ${Math.round(fix.accuracy)} ${t("meters")})` : t("no_position"));
  locate().then((f) => { fix = f || fix; showFix(); });
  const note = h("p", { class: "error", role: "alert" });
  const submit = h("button", { type: "submit", class: "primary big" }, t("submit_report"));
  const form = h("form", { class: "report", onsubmit: async (/** @type {Event} */ e) => {
    e.preventDefault();
    if (!category) { fill(note, t("need_category")); return; }
    fill(note);
    fix = (await locate()) || fix;
    const id = newId();
    await put({ id, kind: "report", url: "/api/field/reports", created: Date.now(), label: t(`category.${category}`),
      fields: { client_id: id, category, description: description.value, ...fixFields(fix),
        taken_at: new Date().toISOString() }, photos, voice: voice.take() || undefined });
    toast(t("queued"));
    category = ""; photos = []; description.value = ""; fill(thumbs);
    for (const b of categories.querySelectorAll("button")) b.setAttribute("aria-checked", "false");
    await flush();
  } },
  h("h2", {}, t("category")), categories,
  h("label", {}, t("description"), description),
  h("label", { class: "camera" }, t("take_photo"), file), thumbs,
  h("h2", {}, t("voice_note")), voice.element,
  h("h2", {}, t("position")), where,
  submit, note);
  fill(main, form, h("section", { id: "outbox" }));
  renderOutbox();
}

async function renderOutbox() {
  const box = document.getElementById("outbox");
  if (!box) return;
  const all = await entries();
  const recent = JSON.parse(localStorage.getItem("field-recent") || "[]");
  fill(box,
    h("h2", {}, t("outbox")),
    all.length ? h("ul", { class: "outbox" }, all.map((e) => h("li", { "data-entry": e.id },
      h("span", {}, e.label),
      e.error ? h("span", { class: "error" }, ` ${t("failed")} ${e.error}`) : h("span", { class: "muted" }, ` ${t("outbox")}`),
      e.error && h("button", { onclick: async () => { await remove(e.id); await renderOutbox(); showStatus(); } }, t("delete"))))) :
      h("p", { class: "muted" }, t("outbox_empty")),
    recent.length > 0 && h("h2", {}, t("recent")),
    recent.length > 0 && h("ul", { class: "recent" }, recent.map((/** @type {{case_id: string, label: string}} */ r) =>
      h("li", {}, h("strong", { "data-case": r.case_id }, r.case_id), ` ${r.label}`))));
}

// --- tasks ----------------------------------------------------------------------------------------------
// The latest task view asked for: a list or a task whose answer comes after a later request's is dropped, so a task
// opened from a notification is not replaced by the task list the shell started loading first.
let taskView = 0;

/** @param {HTMLElement} main */
async function renderTasks(main, done = false) {
  const seq = ++taskView;
  fill(main, h("p", { class: "muted" }, "…"));
  const res = await call(`/api/field/tasks?done=${done}`).catch(() => null);
  if (seq !== taskView) return; // a later view (a task opened from a notification, the other list) was asked for
  if (!res || !res.ok) { fill(main, h("p", { class: "error" }, res ? await reason(res) : t("need_online"))); return; }
  /** @type {Case[]} */
  const list = await res.json();
  fill(main,
    h("div", { class: "segmented" },
      h("button", { class: done ? "" : "active", onclick: () => renderTasks(main, false) }, t("open_tasks")),
      h("button", { class: done ? "active" : "", onclick: () => renderTasks(main, true) }, t("done_tasks"))),
    list.length ? h("ul", { class: "tasks" }, list.map((c) => h("li", { "data-case": c.id, class: `light-${c.light || "none"}`,
      onclick: () => renderTask(main, c.id) },
      h("strong", {}, c.title),
      h("span", { class: "muted" }, `${t(`stage.${c.stage}`)} · ${t(`category.${c.category}`)}`),
      c.due_at && h("span", { class: "muted" }, `${t("due")} ${new Date(c.due_at).toLocaleString()}`)))) :
      h("p", { class: "muted" }, t("no_tasks")));
}

/**
 * @param {HTMLElement} main
 * @param {string} caseId
 */
async function renderTask(main, caseId) {
  const seq = ++taskView;
  const res = await call(`/api/field/tasks/${encodeURIComponent(caseId)}`).catch(() => null);
  if (seq !== taskView) return;
  if (!res || !res.ok) { fill(main, h("p", { class: "error" }, res ? await reason(res) : t("need_online"))); return; }
  /** @type {Task} */
  const task = await res.json();
  const c = task.case;
  const note = h("p", { class: "error", role: "alert" });
  const claim = task.actions.includes("claim") && h("button", { class: "primary big", "data-action": "claim", onclick: async () => {
    const fix = await locate();
    await enqueue({ id: newId(), kind: "claim", url: `/api/field/tasks/${encodeURIComponent(c.id)}/claim`, created: Date.now(),
      label: `${t("claim")} ${c.id}`, json: fix ? { lat: fix.lat, lon: fix.lon } : {} });
    await renderTask(main, c.id);
  } }, t("claim"));
  fill(main,
    h("button", { class: "link", onclick: () => renderTasks(main) }, `‹ ${t("back")}`),
    h("h2", {}, c.title),
    h("p", {}, `${c.id} · ${t(`stage.${c.stage}`)} · ${t(`category.${c.category}`)}`),
    c.due_at && h("p", { class: `light-${c.light || "none"}` }, `${t("due")} ${new Date(c.due_at).toLocaleString()}`),
    c.description && h("p", {}, c.description),
    h("div", { class: "thumbs" }, task.photos.map((p) => {
      const src = `/api/field/tasks/${encodeURIComponent(c.id)}/photos/${encodeURIComponent(p.id)}`;
      return p.media_type.startsWith("audio/") ? h("audio", { controls: true, preload: "none", src }) : h("img", { alt: "", loading: "lazy", src });
    })),
    claim || null,
    (task.actions.includes("feedback") || task.actions.includes("assist_feedback")) &&
      feedbackForm(main, c, task.actions.includes("assist_feedback")),
    note,
    h("h3", {}, t("history")),
    h("ol", { class: "history" }, task.history.map((e) => h("li", {}, `${new Date(e.at).toLocaleString()} ${t(`action.${e.action}`)} ${e.note}`))));
}

/**
 * The feedback of the lead department (反馈), or of a co-handling one (协办反馈: the same form, the hub tells them
 * apart by the caller's department).
 * @param {HTMLElement} main
 * @param {Case} c
 * @param {boolean} assist
 * @returns {HTMLElement}
 */
function feedbackForm(main, c, assist) {
  /** @type {Blob[]} */
  let photos = [];
  const text = /** @type {HTMLTextAreaElement} */ (h("textarea", { name: "note", rows: 3, placeholder: t("feedback_hint"), maxlength: 2000 }));
  const thumbs = h("div", { class: "thumbs" });
  const file = /** @type {HTMLInputElement} */ (h("input", { type: "file", accept: "image/*", capture: "environment", multiple: true, name: "photos",
    onchange: async () => {
      for (const f of Array.from(file.files || [])) photos.push(await downscale(f));
      file.value = "";
      fill(thumbs, photos.map((p) => h("img", { src: URL.createObjectURL(p), alt: "" })));
    } }));
  const note = h("p", { class: "error", role: "alert" });
  return h("form", { class: "feedback", onsubmit: async (/** @type {Event} */ e) => {
    e.preventDefault();
    if (!text.value.trim()) { fill(note, t("need_note")); return; }
    const fix = await locate();
    const id = newId();
    await enqueue({ id, kind: "feedback", url: `/api/field/tasks/${encodeURIComponent(c.id)}/feedback`, created: Date.now(),
      label: `${t("feedback")} ${c.id}`, fields: { client_id: id, note: text.value, ...fixFields(fix) }, photos });
    photos = [];
    await renderTask(main, c.id);
  } },
  h("h3", {}, assist ? t("action.assist_feedback") : t("feedback")),
  h("label", {}, t("feedback_note"), text),
  h("label", { class: "camera" }, t("take_photo"), file), thumbs,
  h("button", { type: "submit", class: "primary big" }, t("submit_feedback")), note);
}

// --- patrol ---------------------------------------------------------------------------------------------
/** @type {number | null} */
let watch = null;
/** @type {Fix[]} */
let pending = [];
/** @type {ReturnType<typeof setInterval> | null} */
let batchTimer = null;

/** @param {Patrol} patrol */
function showPatrol(patrol) {
  const el = document.getElementById("patrol-stats");
  if (el) fill(el, `${t("points")} ${patrol.points} · ${t("distance")} ${Math.round(patrol.distance_m)} ${t("meters")}`);
}

/** Queue the fixes gathered since the last batch (sent now, or when the network returns). */
async function queuePoints() {
  const patrolId = localStorage.getItem("field-patrol");
  if (!patrolId || pending.length === 0) return;
  const points = pending.map((f) => ({ at: new Date(f.at).toISOString(), lat: f.lat, lon: f.lon, accuracy_m: f.accuracy }));
  pending = [];
  await enqueue({ id: newId(), kind: "points", url: `/api/field/patrols/${patrolId}/points`, created: Date.now(),
    label: `${t("tab_patrol")} ${points.length} ${t("points")}`, json: { points } });
}

function startTracking() {
  if (watch !== null || !navigator.geolocation) return;
  watch = navigator.geolocation.watchPosition(
    (p) => { pending.push({ lat: p.coords.latitude, lon: p.coords.longitude, accuracy: p.coords.accuracy, at: p.timestamp }); },
    () => {},
    { enableHighAccuracy: true, maximumAge: 5000 },
  );
  batchTimer = setInterval(queuePoints, TRACK_BATCH_MS);
}

function stopTracking() {
  if (watch !== null) navigator.geolocation.clearWatch(watch);
  if (batchTimer !== null) clearInterval(batchTimer);
  watch = null;
  batchTimer = null;
}

/** @param {HTMLElement} main */
function renderPatrol(main) {
  const patrolId = localStorage.getItem("field-patrol");
  const note = h("p", { class: "error", role: "alert" });
  if (!patrolId) {
    fill(main, h("button", { class: "primary big", "data-action": "start-patrol", onclick: async () => {
      const res = await call("/api/field/patrols", { method: "POST" }).catch(() => null);
      if (!res || !res.ok) { fill(note, res ? await reason(res) : t("need_online")); return; }
      /** @type {Patrol} */
      const patrol = await res.json();
      localStorage.setItem("field-patrol", patrol.id);
      toast(t("patrol_started"));
      startTracking();
      renderPatrol(main);
    } }, t("start_patrol")), note);
    return;
  }
  startTracking();
  const text = /** @type {HTMLTextAreaElement} */ (h("textarea", { name: "patrol-note", rows: 2, placeholder: t("patrol_note") }));
  fill(main,
    h("p", { class: "patrolling" }, t("patrolling")),
    h("p", { id: "patrol-stats", "data-testid": "patrol-stats" }, "…"),
    text,
    h("button", { class: "primary big", "data-action": "end-patrol", onclick: async () => {
      await queuePoints();
      stopTracking();
      await enqueue({ id: newId(), kind: "end", url: `/api/field/patrols/${patrolId}/end`, created: Date.now(),
        label: t("end_patrol"), json: { note: text.value } });
      localStorage.removeItem("field-patrol");
      toast(t("patrol_ended"));
      renderPatrol(main);
    } }, t("end_patrol")),
    note);
}

// --- me -------------------------------------------------------------------------------------------------
/** @param {HTMLElement} main */
function renderMe(main) {
  if (!profile) return;
  fill(main,
    h("dl", {},
      h("dt", {}, t("user")), h("dd", {}, profile.username),
      h("dt", {}, t("role")), h("dd", {}, t(`role.${profile.role}`)),
      profile.org_unit && h("dt", {}, t("unit")), profile.org_unit && h("dd", {}, profile.org_unit)),
    h("section", { id: "outbox" }),
    may("tasks:act") && pushControl(),
    h("button", { onclick: () => { localStorage.setItem("field-lang", lang() === "zh" ? "en" : "zh"); renderShell(); } }, t("language")),
    h("button", { onclick: async () => {
      await call("/api/auth/logout", { method: "POST" }).catch(() => null);
      signedOut();
    } }, t("sign_out")));
  renderOutbox();
}

/** 任务提醒: this phone's task notifications, on or off; says when the hub sends none or the phone cannot. */
function pushControl() {
  const status = h("p", { class: "muted", "data-testid": "push-status" });
  const button = /** @type {HTMLButtonElement} */ (h("button", { type: "button", "data-testid": "push" }, "…"));
  /** @type {string} */
  let state = "off";
  const show = (/** @type {{ state: string, enabled: boolean }} */ s) => {
    state = s.state;
    fill(button, t(state === "on" ? "push_off" : "push_on"));
    button.disabled = state === "unsupported" || state === "denied";
    fill(status, state === "unsupported" ? t("push_unsupported") : state === "denied" ? t("push_denied")
      : !s.enabled ? t("push_not_sent") : state === "on" ? t("push_is_on") : "");
  };
  button.onclick = async () => {
    try {
      if (state === "on") await disablePush(call); else await enablePush(call);
    } catch (err) {
      fill(status, `${t("push_failed")}: ${err instanceof Error ? err.message : err}`);
      return;
    }
    show(await pushState(call));
  };
  pushState(call).then(show).catch(() => fill(status, t("need_online")));
  return h("section", { class: "push" }, h("h2", {}, t("push_title")), button, status);
}

// --- start ----------------------------------------------------------------------------------------------
async function start() {
  const res = await fetch("/api/field/profile", { credentials: "same-origin" }).catch(() => null);
  if (res && res.status === 401) { renderLogin(); return; }
  if (res && res.status === 403) { renderLogin(t("must_change")); return; }
  if (res && res.ok && (await res.clone().json()).must_change_password) { renderLogin(t("must_change")); return; }
  if (res && res.ok) {
    profile = await res.json();
    localStorage.setItem("field-profile", JSON.stringify(profile));
  } else {
    // offline: the last profile this phone saw (the hub checks the session again when the outbox is sent)
    profile = JSON.parse(localStorage.getItem("field-profile") || "null");
    if (!profile) { renderLogin(t("need_online")); return; }
  }
  if (!["reports:create", "tasks:act", "patrols:write"].some((p) => may(p))) { renderLogin(t("no_field_role")); return; }
  document.documentElement.lang = lang() === "zh" ? "zh-CN" : "en";
  // a task notification's click opens the app on that task (/field/?task=<case id>)
  const wanted = new URLSearchParams(location.search).get("task");
  if (wanted && may("tasks:act")) { tab = "tasks"; renderShell(); await renderTask(/** @type {HTMLElement} */ (document.getElementById("view")), wanted); }
  else renderShell();
  await flush();
}

navigator.serviceWorker?.addEventListener("message", (event) => {
  const data = event.data || {};
  const view = document.getElementById("view");
  if (data.type === "sharpeye.task" && data.task && view && profile) { tab = "tasks"; renderShell(); renderTask(/** @type {HTMLElement} */ (document.getElementById("view")), String(data.task)); }
});

window.addEventListener("online", () => { flush(); });
window.addEventListener("offline", showStatus);
setInterval(() => { if (navigator.onLine) flush(); }, FLUSH_EVERY_MS);
if ("serviceWorker" in navigator) navigator.serviceWorker.register("/field/sw.js", { scope: "/field/" }).catch(() => {});
start();
