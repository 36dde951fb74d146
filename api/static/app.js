// SharpEye operator console: plain JavaScript modules, no build step.
import { alarmStream, api, changePassword, login, logout, session } from "./api.js";
import { esc, fmtDuration, fmtTime, lang, setLang, setZone, t } from "./i18n.js";
import { LivePlayer } from "./player.js";
import { renderStats } from "./stats.js";
import { can, mergeInto, renderMergeProposals, renderUplinks, replay, resetImport, runImport } from "./governance.js";
import { alarmTone, muted, setMuted, unlock } from "./sound.js";

const $ = (id) => document.getElementById(id);
const LOUD = new Set(["critical", "major"]);
const SEVERITY_ORDER = { critical: 0, major: 1, minor: 2, warning: 3 };

const state = {
  view: "alarms",
  alarms: new Map(),        // id -> alarm
  selected: null,           // alarm id shown in the detail pane
  detailPlayers: [],
  site: null,               // /api/site
  devices: new Map(),       // id -> device health
  names: new Map(),         // device id -> display name
  departments: new Map(),
  cases: [],
  wall: JSON.parse(localStorage.getItem("sharpeye.wall") || "null") || { layout: 4, cameras: [] },
  wallPlayers: [],
  wallAlarm: new Map(),     // tile index -> alarm title that popped it
  stopStream: null,
  tones: 0,                 // alarm tones played (read by the browser tests)
};
window.sharpeye = state;    // for the browser tests and for support staff in the console

// ---- views -------------------------------------------------------------------------------------------------
function show(name) {
  state.view = name;
  document.querySelectorAll(".view").forEach((v) => { v.hidden = v.id !== name; });
  document.querySelectorAll("#nav button").forEach((b) => b.classList.toggle("active", b.dataset.view === name));
  refresh().catch(report);
}

async function refresh() {
  if (!session.signedIn) return;
  if (state.view === "alarms") await loadAlarms();
  else if (state.view === "map") await renderMap();
  else if (state.view === "cases") await loadCases();
  else if (state.view === "devices") await loadDevices();
  else if (state.view === "wall") renderWall();
  else if (state.view === "stats") await renderStats($("stats-body"), placeNames());
  else if (state.view === "uplinks") await renderUplinks($("uplinks-body"));
}

// Parts of the console a role cannot use are hidden (the hub refuses them anyway).
function applyPermissions() {
  document.querySelectorAll("[data-permission]").forEach((el) => { el.hidden = !can(el.dataset.permission); });
}

// Department and org-unit display names, for the statistics tables.
function placeNames() {
  const names = new Map();
  const walk = (u) => { names.set(u.id, u.name); (u.children || []).forEach(walk); };
  if (state.site) { walk(state.site.org); state.site.departments.forEach((d) => names.set(d.id, d.name)); }
  return names;
}

function report(err) { if (String(err).includes("unauthorised")) return; console.error(err); toast(String(err)); }

function toast(text, cls = "") {
  const el = $("toast"); el.textContent = text; el.className = `toast ${cls}`; el.hidden = false;
  clearTimeout(toast.timer); toast.timer = setTimeout(() => { el.hidden = true; }, 5000);
}

// ---- alarms ------------------------------------------------------------------------------------------------
async function loadAlarms() {
  const page = await api("/api/alarms?limit=500");
  state.alarms = new Map(page.items.map((a) => [a.id, a]));
  renderAlarms();
}

function visibleAlarms() {
  const mode = $("filter-state").value; const sev = $("filter-severity").value;
  return [...state.alarms.values()]
    .filter((a) => mode === "all" || (mode === "open" ? !a.state.startsWith("cleared") || a.state === "cleared_unack" : a.state.endsWith("unack")))
    .filter((a) => !sev || a.severity === sev)
    .sort((a, b) => (b.first_seen.localeCompare(a.first_seen)));
}

// Evidence references from the video pipeline are paths like "cam-1/20260105/120000-motion-ab12.jpg", served by
// the hub at /api/evidence/<ref> behind the session cookie: fetched here and shown from blob URLs.
const IMAGE = /\.(jpe?g|png|webp)(\?|$)/i;
const CLIP = /\.(mp4|webm)(\?|$)/i;
const blobs = new Map();
const evidenceUrl = (ref) => (/^(https?:|\/)/.test(ref) ? ref : `/api/evidence/${ref.split("/").map(encodeURIComponent).join("/")}`);

async function loadEvidence(root) {
  for (const el of root.querySelectorAll("[data-evidence]")) {
    const url = evidenceUrl(el.dataset.evidence);
    if (!blobs.has(url)) {
      blobs.set(url, fetch(url, { credentials: "same-origin" })
        .then((r) => (r.ok ? r.blob() : Promise.reject(new Error(`${r.status}`))))
        .then((b) => URL.createObjectURL(b)).catch(() => null));
    }
    const src = await blobs.get(url);
    if (src) { el.src = src; if (el.parentElement.tagName === "A") el.parentElement.href = src; } else el.classList.add("missing");
  }
}

function thumb(a) {
  const image = (a.evidence || []).find((e) => IMAGE.test(e));
  return image ? `<a target="_blank"><img class="thumb" data-evidence="${esc(image)}" alt=""></a>`
    : (a.cameras.length ? `<span class="cam-icon" title="${esc(a.cameras.join(", "))}">▶</span>` : "");
}

function renderAlarms() {
  const rows = visibleAlarms();
  $("alarm-rows").innerHTML = rows.map((a) => `
    <tr class="sevrow-${a.severity} state-${a.state}${a.id === state.selected ? " selected" : ""}" data-alarm="${esc(a.id)}">
      <td><span class="sev sev-${a.severity}">${t(a.severity)}</span></td><td>${thumb(a)}</td>
      <td>${esc(a.title)}</td><td>${esc(state.names.get(a.device_id) || a.device_id)}</td><td>${esc(a.place)}</td>
      <td>${t(a.state)}</td><td class="num">${a.count}</td><td>${fmtTime(a.last_seen)}</td>
      <td class="actions">${actionButtons(a)}</td>
    </tr>`).join("");
  const unack = [...state.alarms.values()].filter((a) => a.state.endsWith("unack")).length;
  $("alarm-count").textContent = `${t("total")} ${rows.length} ${t("items")} · ${t("active_unack")} ${unack}`;
  const badge = $("alarm-badge"); badge.hidden = !unack; badge.textContent = unack;
  loadEvidence($("alarm-rows")).catch(report);
}

function actionButtons(a) {
  const out = [];
  if (a.state.endsWith("unack")) out.push(`<button data-act="acknowledge" data-id="${esc(a.id)}">${t("ack")}</button>`);
  if (!a.state.startsWith("cleared")) out.push(`<button data-act="clear" data-id="${esc(a.id)}">${t("clear")}</button>`);
  out.push(`<button data-act="comment" data-id="${esc(a.id)}">${t("comment")}</button>`);
  if (!a.state.startsWith("cleared")) out.push(`<button data-act="shelve" data-id="${esc(a.id)}">${t("shelve")}</button>`);
  out.push(`<button data-act="case" data-id="${esc(a.id)}">${t("open_case")}</button>`);
  if (a.cameras.length) out.push(`<button data-act="wall" data-id="${esc(a.id)}">${t("to_wall")}</button>`);
  return out.join(" ");
}

async function act(action, id) {
  const alarm = state.alarms.get(id);
  if (action === "case") return openCaseOf(id);
  if (action === "wall") { popToWall(alarm); return show("wall"); }
  if (action === "shelve") return shelve(alarm);
  let json;
  if (action === "comment") {
    const note = prompt(t("comment_prompt"));
    if (!note || !note.trim()) return;
    json = { note };
  }
  const result = await api(`/api/alarms/${encodeURIComponent(id)}/${action}`, { method: "POST", json });
  state.alarms.set(id, result.alarm);
  renderAlarms();
  if (state.selected === id) await selectAlarm(id, false);
}

// Silence this alarm's condition (same rule, device and zone) for an hour, with a reason every operator sees.
async function shelve(alarm) {
  const reason = prompt(t("shelve_prompt"));
  if (!reason || !reason.trim()) return;
  const matchers = { rule_id: alarm.rule_id, device_id: alarm.device_id };
  if (alarm.channel) matchers.channel = alarm.channel;
  const now = new Date();
  await api("/api/silences", { method: "POST", json: {
    matchers, reason, starts_at: now.toISOString(), ends_at: new Date(now.getTime() + 3600e3).toISOString() } });
  toast(`${t("shelved")}: ${alarm.title} · ${alarm.place}`);
}

async function selectAlarm(id, resetPlayers = true) {
  state.selected = id;
  document.querySelectorAll("#alarm-rows tr").forEach((r) => r.classList.toggle("selected", r.dataset.alarm === id));
  const detail = await api(`/api/alarms/${encodeURIComponent(id)}`);
  const a = detail.alarm; state.alarms.set(a.id, a);
  const pane = $("alarm-detail");
  const keep = !resetPlayers && pane.dataset.alarm === id;
  const evidence = (a.evidence || []).map((e) => IMAGE.test(e)
    ? `<a target="_blank"><img class="snapshot" data-evidence="${esc(e)}" alt=""></a>`
    : CLIP.test(e) ? `<video class="clip" controls preload="metadata" data-evidence="${esc(e)}"></video>`
    : `<span>${esc(e)}</span>`).join("") || `<p class="muted">${t("no_evidence")}</p>`;
  const info = `
    <h2><span class="sev sev-${a.severity}">${t(a.severity)}</span> ${esc(a.title)}</h2>
    <dl class="facts">
      <dt>${t("device")}</dt><dd>${esc(state.names.get(a.device_id) || a.device_id)}</dd>
      <dt>${t("place")}</dt><dd>${esc(a.place)}</dd>
      <dt>${t("state")}</dt><dd class="alarm-state">${t(a.state)}</dd>
      <dt>${t("count")}</dt><dd>${a.count}</dd>
      <dt>${t("first_seen")}</dt><dd>${fmtTime(a.first_seen)}</dd>
      <dt>${t("last_seen")}</dt><dd>${fmtTime(a.last_seen)}</dd>
      <dt>${t("case")}</dt><dd>${detail.case_id ? `<a href="#" data-case="${esc(detail.case_id)}">${esc(detail.case_id)}</a>` : t("no_case")}</dd>
    </dl>
    <p class="actions">${actionButtons(a)}</p>
    <h3>${t("evidence")}</h3><div class="evidence">${evidence}</div>
    <h3>${t("history")}</h3>
    <table class="history"><thead><tr><th>${t("at")}</th><th>${t("action")}</th><th>${t("actor")}</th><th>${t("note")}</th></tr></thead>
    <tbody>${detail.history.map((h) => `<tr><td>${fmtTime(h.at)}</td><td>${t(h.action === "cleared" ? "cleared_action" : h.action)}</td>
      <td>${esc(h.actor)}</td><td>${esc(h.note)}</td></tr>`).join("")}</tbody></table>`;
  if (keep) { pane.querySelector(".detail-info").innerHTML = info; loadEvidence(pane).catch(report); return; }
  state.detailPlayers.forEach((p) => p.close()); state.detailPlayers = [];
  pane.dataset.alarm = id;
  pane.innerHTML = `<h3 data-i18n="cameras">${t("cameras")}</h3><div class="detail-cameras"></div><div class="detail-info">${info}</div>`;
  loadEvidence(pane).catch(report);
  const box = pane.querySelector(".detail-cameras");
  if (!a.cameras.length) box.innerHTML = `<p class="muted">${t("no_cameras")}</p>`;
  for (const cam of a.cameras.slice(0, 4)) {
    const p = new LivePlayer(cam, box); p.setLabel(state.names.get(cam) || cam); state.detailPlayers.push(p);
  }
}

async function onAlarmChange(msg) {
  let detail;
  try { detail = await api(`/api/alarms/${encodeURIComponent(msg.alarm)}`); } catch (err) { return report(err); }
  const a = detail.alarm;
  state.alarms.set(a.id, a);
  if (state.view === "alarms") renderAlarms();
  if (msg.type === "raised") {
    if (LOUD.has(a.severity) && !muted) { alarmTone(a.severity); state.tones += 1; }
    toast(`${t("new_alarm")}: ${t(a.severity)} ${a.title} · ${a.place}`, `sev-${a.severity}`);
    if (a.cameras.length) popToWall(a);
    // the newest alarm pops up with its cameras beside it, unless the operator is typing
    if (state.view === "alarms" && document.activeElement?.tagName !== "INPUT") await selectAlarm(a.id);
  } else if (state.selected === a.id && state.view === "alarms") {
    await selectAlarm(a.id, false);
  }
  if (state.view === "map") markAlarms();
}

// ---- video wall --------------------------------------------------------------------------------------------
function cameraIds() {
  return (state.site?.devices || []).filter((d) => d.kind === "camera").map((d) => d.id);
}

function saveWall() { localStorage.setItem("sharpeye.wall", JSON.stringify(state.wall)); }

function renderWall() {
  const { layout } = state.wall;
  const grid = $("wall-grid");
  grid.style.setProperty("--cols", Math.sqrt(layout));
  document.querySelectorAll("[data-layout]").forEach((b) => b.classList.toggle("active", Number(b.dataset.layout) === layout));
  const cams = cameraIds();
  if (!state.wall.cameras.length) state.wall.cameras = cams.slice(0, layout);
  const wanted = Array.from({ length: layout }, (_, i) => state.wall.cameras[i] || "");
  // keep players whose tile still shows the same camera
  const tiles = [...grid.children];
  wanted.forEach((cam, i) => {
    let tile = tiles[i];
    if (!tile) {
      tile = document.createElement("div"); tile.className = "tile"; tile.dataset.index = i; grid.append(tile);
      tile.innerHTML = `<select class="tile-camera"></select><div class="tile-video"></div><span class="tile-alarm"></span>`;
    }
    const select = tile.querySelector("select");
    select.innerHTML = `<option value="">${t("choose_camera")}</option>` +
      cams.map((c) => `<option value="${esc(c)}"${c === cam ? " selected" : ""}>${esc(state.names.get(c) || c)}</option>`).join("");
    tile.querySelector(".tile-alarm").textContent = state.wallAlarm.get(i) || "";
    tile.classList.toggle("popped", state.wallAlarm.has(i));
    const current = state.wallPlayers[i];
    if (current && current.cameraId !== cam) { current.close(); state.wallPlayers[i] = null; }
    if (cam && !state.wallPlayers[i]) {
      const p = new LivePlayer(cam, tile.querySelector(".tile-video")); p.setLabel(state.names.get(cam) || cam);
      state.wallPlayers[i] = p;
    }
    if (!cam) tile.querySelector(".tile-video").dataset.empty = t("empty_tile");
  });
  tiles.slice(layout).forEach((tile, j) => {
    const p = state.wallPlayers[layout + j]; if (p) p.close(); tile.remove();
  });
  state.wallPlayers.length = layout;
}

function popToWall(alarm) {
  const cams = alarm.cameras.slice(0, state.wall.layout);
  const base = state.wall.cameras.some(Boolean) ? state.wall.cameras : cameraIds();
  const rest = base.filter((c) => c && !cams.includes(c));
  state.wall.cameras = [...cams, ...rest].slice(0, state.wall.layout);
  state.wallAlarm.clear();
  cams.forEach((_, i) => state.wallAlarm.set(i, `${t(alarm.severity)} ${alarm.title}`));
  saveWall();
  // players are only started while the wall has been opened once or is on screen
  if (state.view === "wall" || $("wall-grid").children.length) renderWall();
}

// ---- site map ----------------------------------------------------------------------------------------------
async function renderMap() {
  await Promise.all([loadSite(), loadDeviceHealth(), state.alarms.size ? null : loadAlarms()]);
  const plan = state.site.plan;
  const img = $("map-plan");
  if (plan && !img.dataset.loaded) {
    const res = await fetch(plan.url, { credentials: "same-origin" });
    if (res.ok) { img.src = URL.createObjectURL(await res.blob()); img.dataset.loaded = "1"; }
  }
  $("map-marks").innerHTML = state.site.devices.filter((d) => d.x !== null).map((d) => {
    const h = state.devices.get(d.id);
    return `<button class="mark kind-${esc(d.kind)} state-${esc(h?.state || "unknown")}" data-device="${esc(d.id)}"
      style="left:${d.x * 100}%;top:${d.y * 100}%" title="${esc(d.name)}"><span>${esc(d.name)}</span></button>`;
  }).join("");
  markAlarms();
}

function markAlarms() {
  const hot = new Set();
  for (const a of state.alarms.values()) {
    if (a.state.startsWith("cleared")) continue;
    hot.add(a.device_id); a.cameras.forEach((c) => hot.add(c));
  }
  document.querySelectorAll("#map-marks .mark").forEach((m) => m.classList.toggle("alarm", hot.has(m.dataset.device)));
}

let mapPlayer = null;
function showDeviceOnMap(id) {
  const d = state.site.devices.find((x) => x.id === id); const h = state.devices.get(id) || {};
  if (mapPlayer) { mapPlayer.close(); mapPlayer = null; }
  const box = $("map-device");
  box.innerHTML = `<h3>${esc(d.name)}</h3><dl class="facts">
    <dt>ID</dt><dd>${esc(d.id)}</dd><dt>${t("kind")}</dt><dd>${t(d.kind)}</dd>
    <dt>${t("state")}</dt><dd>${t(h.state || "unknown")}</dd><dt>${t("last_seen")}</dt><dd>${fmtTime(h.last_seen)}</dd>
    <dt>${t("errors")}</dt><dd>${h.errors ?? ""}</dd></dl>
    ${d.zones.length ? `<ul>${d.zones.map((z) => `<li>${esc(z.name)}</li>`).join("")}</ul>` : ""}
    <div class="map-camera"></div>`;
  const cam = d.kind === "camera" ? d.id : d.cameras[0];
  if (cam) { mapPlayer = new LivePlayer(cam, box.querySelector(".map-camera")); mapPlayer.setLabel(state.names.get(cam) || cam); }
}

// ---- cases -------------------------------------------------------------------------------------------------
async function loadCases() {
  await loadSite();
  const page = await api("/api/cases?limit=200");
  state.cases = page.items;
  renderCases();
}

function renderCases() {
  const now = Date.now();
  $("case-rows").innerHTML = state.cases.map((c) => `
    <tr data-case="${esc(c.id)}"><td><i class="light light-${esc(c.light || "none")}" title="${t(c.light || "")}"></i></td>
      <td>${esc(c.id)}</td><td>${esc(c.title)}</td><td>${t(c.stage)}</td>
      <td>${esc(state.departments.get(c.department) || c.department || "")}</td>
      <td class="${c.due_at && Date.parse(c.due_at) < now ? "overdue" : ""}">${c.due_at ? fmtDuration(Date.parse(c.due_at) - now) : ""}</td>
      <td>${fmtTime(c.created_at)}</td></tr>`).join("");
}

// Case work: the detail may list ``actions`` (what the caller's role may do at this stage); each posts
// {"action", "note"} to /api/cases/<id>/actions. Without that list the pane explains where the work is done.
async function openCase(id) {
  const { case: c, history, actions } = await api(`/api/cases/${encodeURIComponent(id)}`);
  // merging needs a target: it is offered beside each merge proposal below, not as a bare button
  const buttons = (actions || []).filter((a) => a !== "merge")
    .map((a) => `<button data-case-act="${esc(a)}">${esc(t("act_" + a))}</button>`).join(" ");
  document.querySelectorAll("#case-rows tr").forEach((r) => r.classList.toggle("selected", r.dataset.case === id));
  $("case-detail").dataset.case = id;
  $("case-detail").innerHTML = `
    <h2><i class="light light-${esc(c.light || "none")}"></i> ${esc(c.id)}</h2>
    <dl class="facts"><dt>${t("title_col")}</dt><dd>${esc(c.title)}</dd>
      <dt>${t("category")}</dt><dd>${esc(t(c.category))}</dd>
      <dt>${t("stage")}</dt><dd class="case-stage">${t(c.stage)}</dd>
      <dt>${t("department")}</dt><dd>${esc(state.departments.get(c.department) || c.department || "")}</dd>
      <dt>${t("deadline")}</dt><dd>${c.due_at ? `${fmtTime(c.due_at)} (${fmtDuration(Date.parse(c.due_at) - Date.now())})` : ""}</dd>
      <dt>${t("alarms")}</dt><dd>${c.alarm_ids.map((a) => `<a href="#" data-alarm-link="${esc(a)}">${esc(a)}</a>`).join(", ")}</dd></dl>
    ${buttons ? `<p class="actions">${buttons}</p>` : `<p class="muted">${t("case_actions_note")}</p>`}
    <div class="merge-box"></div>
    <h3>${t("case_history")}</h3>
    <table class="history"><thead><tr><th>${t("at")}</th><th>${t("action")}</th><th>${t("actor")}</th><th>${t("stage")}</th><th>${t("note")}</th></tr></thead>
    <tbody>${history.map((h) => `<tr><td>${fmtTime(h.at)}</td><td>${t(h.action)}</td><td>${esc(h.actor)}</td>
      <td>${h.from_stage ? t(h.from_stage) + " → " : ""}${t(h.to_stage)}</td><td>${esc(h.note)}</td></tr>`).join("")}</tbody></table>`;
  if (!c.stage || ["closed", "cancelled", "merged", "parked"].includes(c.stage)) return;
  await renderMergeProposals($("case-detail").querySelector(".merge-box"), id, (actions || []).includes("merge"));
}

async function openCaseOf(alarmId) {
  const detail = await api(`/api/alarms/${encodeURIComponent(alarmId)}`);
  if (!detail.case_id) { toast(t("no_case")); return; }
  show("cases");
  await loadCases();
  await openCase(detail.case_id);
}

// ---- devices -----------------------------------------------------------------------------------------------
async function loadDeviceHealth() {
  const devices = await api("/api/devices");
  state.devices = new Map(devices.map((d) => [d.id, d]));
  return devices;
}

async function loadDevices() {
  const devices = await loadDeviceHealth();
  $("device-rows").innerHTML = devices.map((d) => `
    <tr data-device="${esc(d.id)}"><td>${esc(d.id)}</td><td>${esc(d.name)}</td><td>${t(d.kind)}</td><td>${esc(d.grid)}</td>
    <td><i class="dot state-${esc(d.state)}"></i> ${t(d.state)}</td><td>${fmtTime(d.last_seen)}</td>
    <td class="num">${d.messages}</td><td class="num">${d.errors}</td><td>${esc(d.last_error)}</td></tr>`).join("");
  const live = await api("/api/cameras/live").catch(() => ({ feeds: [] }));
  $("live-rows").innerHTML = live.feeds.map((f) => `
    <tr><td>${esc(state.names.get(f.camera) || f.camera)}</td><td class="num">${f.viewers}</td><td>${esc(f.source)}</td>
    <td class="num">${f.packets}</td><td class="num">${f.failures}</td><td>${esc(f.last_error)}</td></tr>`).join("");
  const cluster = await api("/api/cluster").catch(() => ({ node: "", nodes: [] }));
  $("node-rows").innerHTML = cluster.nodes.map((n) => `
    <tr data-node="${esc(n.id)}"><td>${esc(n.id)}${n.id === cluster.node ? " ●" : ""}</td><td>${fmtTime(n.started_at)}</td>
    <td>${fmtTime(n.last_seen)}</td><td class="num">${n.weight}</td><td class="num">${n.load}</td>
    <td>${n.devices.map((d) => esc(state.names.get(d) || d)).join("、")}</td></tr>`).join("");
  let letters = [];
  try { letters = await api("/api/deadletters?limit=50"); } catch { /* roles without dead-letter access */ }
  $("deadletter-rows").innerHTML = letters.map((l) => `
    <tr><td>${fmtTime(l.received)}</td><td>${esc(l.device)}</td><td>${esc(l.reason)}</td><td>${esc(l.detail)}</td>
    <td>${esc(l.source)} ${esc(l.origin)}</td></tr>`).join("");
}

async function loadSite() {
  if (state.site) return;
  state.site = await api("/api/site");
  setZone(state.site.timezone);
  state.names = new Map(state.site.devices.map((d) => [d.id, d.name]));
  state.departments = new Map(state.site.departments.map((d) => [d.id, d.name]));
}

// ---- wiring ------------------------------------------------------------------------------------------------
function tick() {
  $("clock").textContent = fmtTime(new Date().toISOString());
  if (state.view === "cases" && state.cases.length) renderCases();
}

function renderMute() { $("mute").textContent = muted ? t("unsilence") : t("silence"); $("mute").classList.toggle("active", muted); }

async function start() {
  $("login").hidden = true;
  for (const id of ["nav", "link", "mute", "who", "logout"]) $(id).hidden = false;
  session.user = await api("/api/auth/me");
  $("who").textContent = `${session.user.username} (${session.user.role})`;
  applyPermissions();
  await loadSite();
  renderMute();
  state.stopStream = alarmStream((msg) => onAlarmChange(msg), (up) => {
    $("link").className = `link ${up ? "up" : "down"}`; $("link").dataset.up = up ? "1" : "0";
  });
  show(state.view);
}

session.onLogout = () => {
  if (state.stopStream) state.stopStream();
  state.detailPlayers.forEach((p) => p.close()); state.wallPlayers.forEach((p) => p && p.close());
  state.detailPlayers = []; state.wallPlayers = [];
  $("login").hidden = false; $("password-change").hidden = true;
  for (const id of ["nav", "link", "mute", "who", "logout"]) $(id).hidden = true;
  document.querySelectorAll(".view").forEach((v) => { v.hidden = true; });
};

let pendingPassword = null;
$("login").addEventListener("submit", async (ev) => {
  ev.preventDefault(); unlock();
  const form = new FormData(ev.target);
  const result = await login(form.get("username"), form.get("password"));
  if (!result.ok) { $("login-error").textContent = t(result.throttled ? "too_many" : "bad_login"); return; }
  $("login-error").textContent = "";
  if (result.mustChange) {
    pendingPassword = form.get("password");
    $("login").hidden = true; $("password-change").hidden = false;
    return;
  }
  start().catch(report);
});
$("password-change").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = new FormData(ev.target);
  if (form.get("new_password") !== form.get("confirm_password")) { $("password-error").textContent = t("pw_mismatch"); return; }
  const problem = await changePassword(pendingPassword, form.get("new_password"));
  if (problem) { $("password-error").textContent = problem; return; }
  pendingPassword = null; $("password-error").textContent = ""; $("password-change").hidden = true;
  start().catch(report);
});
$("logout").addEventListener("click", () => logout());
$("lang").addEventListener("click", () => {
  setLang(lang === "zh" ? "en" : "zh"); renderMute(); refresh().catch(report);
  if (state.selected) selectAlarm(state.selected, false).catch(report);
  [...state.detailPlayers, ...state.wallPlayers, mapPlayer].forEach((p) => p && p.setStatus(p.el.dataset.state));
});
$("mute").addEventListener("click", () => { setMuted(!muted); renderMute(); });
$("nav").addEventListener("click", (ev) => { const b = ev.target.closest("button"); if (b?.dataset.view) show(b.dataset.view); });
$("filter-state").addEventListener("change", renderAlarms);
$("filter-severity").addEventListener("change", renderAlarms);
document.addEventListener("click", unlock, { once: true });
$("alarms").addEventListener("click", (ev) => {
  const button = ev.target.closest("button[data-act]");
  if (button) { ev.stopPropagation(); act(button.dataset.act, button.dataset.id).catch(report); return; }
  const caseLink = ev.target.closest("[data-case]");
  if (caseLink) { ev.preventDefault(); show("cases"); loadCases().then(() => openCase(caseLink.dataset.case)).catch(report); return; }
  const row = ev.target.closest("tr[data-alarm]");
  if (row) selectAlarm(row.dataset.alarm).catch(report);
});
$("case-rows").addEventListener("click", (ev) => { const r = ev.target.closest("tr[data-case]"); if (r) openCase(r.dataset.case).catch(report); });
$("case-detail").addEventListener("click", async (ev) => {
  const b = ev.target.closest("[data-case-act]");
  if (b) {
    const id = $("case-detail").dataset.case; const note = prompt(t("case_note")) ?? "";
    try { await api(`/api/cases/${encodeURIComponent(id)}/actions`, { method: "POST", json: { action: b.dataset.caseAct, note } }); }
    catch (err) { report(err); }
    await loadCases(); await openCase(id); return;
  }
  const merge = ev.target.closest("[data-merge-into]");
  if (merge) {
    const id = $("case-detail").dataset.case;
    try { if (await mergeInto(id, merge.dataset.mergeInto)) toast(`${t("merged_toast")}: ${id} → ${merge.dataset.mergeInto}`); }
    catch (err) { report(err); }
    await loadCases(); await openCase(id); return;
  }
  const caseLink = ev.target.closest("[data-case-link]");
  if (caseLink) { ev.preventDefault(); openCase(caseLink.dataset.caseLink).catch(report); return; }
  const link = ev.target.closest("[data-alarm-link]");
  if (link) { ev.preventDefault(); show("alarms"); selectAlarm(link.dataset.alarmLink).catch(report); }
});
$("import-form").addEventListener("click", (ev) => {
  const b = ev.target.closest("[data-import]");
  if (!b) return;
  const dry = b.dataset.import === "dry";
  runImport($("hotline-import"), dry, placeNames()).then(() => (dry ? null : loadCases())).catch(report);
});
$("import-form").addEventListener("change", () => resetImport($("hotline-import")));
$("hotline-import").addEventListener("click", (ev) => {
  const link = ev.target.closest("[data-case-link]");
  if (link) { ev.preventDefault(); openCase(link.dataset.caseLink).catch(report); }
});
$("uplinks-body").addEventListener("click", async (ev) => {
  const one = ev.target.closest("[data-replay]"); const all = ev.target.closest("[data-replay-all]");
  if (!one && !all) return;
  const uplink = ev.target.closest("[data-uplink]").dataset.uplink;
  try {
    const n = await replay(uplink, one ? [one.dataset.replay] : null);
    toast(`${t("replayed")}: ${n}`);
  } catch (err) { report(err); }
  await renderUplinks($("uplinks-body")).catch(report);
});
$("wall").addEventListener("click", (ev) => {
  const b = ev.target.closest("[data-layout]");
  if (b) { state.wall.layout = Number(b.dataset.layout); state.wallAlarm.clear(); saveWall(); renderWall(); }
});
$("wall-grid").addEventListener("change", (ev) => {
  const tile = ev.target.closest(".tile");
  if (tile) { state.wall.cameras[Number(tile.dataset.index)] = ev.target.value; state.wallAlarm.delete(Number(tile.dataset.index)); saveWall(); renderWall(); }
});
$("map-marks").addEventListener("click", (ev) => { const m = ev.target.closest("[data-device]"); if (m) showDeviceOnMap(m.dataset.device); });

setLang(lang);
setInterval(tick, 1000); tick();
if (session.signedIn) start().catch(report);
