// @ts-check
// The alarm list, its filters, the detail pane (linked cameras live, evidence, history) and what happens when the
// hub says an alarm changed: the tone, the toast, the pop-up beside the list and on the wall.
import { api } from "../api.js";
import { html, render } from "../html.js";
import { fmtTime, t } from "../i18n/index.js";
import { open, register, show } from "../nav.js";
import { LivePlayer } from "../player.js";
import { isGbChannel, ptzFor } from "../ptz.js";
import { alarmTone, muted } from "../sound.js";
import { deviceName, loadAlarms, loadDeviceHealth, state } from "../state.js";
import { $, closest, control, report, toast } from "../ui.js";
import { markAlarms } from "./map.js";
import { lookBack } from "./playback.js";
import { popToWall } from "./wall.js";

/** @typedef {import("../types.js").Alarm} Alarm */
/** @typedef {import("../types.js").AlarmDetail} AlarmDetail */
/** @typedef {import("../html.js").Html} Html */
/**
 * @typedef {object} ProcedureView
 * @property {{ title: string, steps: string[], contacts: { name: string, phone: string }[] } | null} procedure
 * @property {Record<string, { actor: string, at: string }>} done
 */

/**
 * The alarm's procedure (处置预案): each step with a box the operator ticks, once; the phone numbers to call.
 * @param {ProcedureView} view
 * @param {Alarm} a
 */
function procedureBox(view, a) {
  const p = view.procedure;
  if (!p) return html``;
  return html`<h3>${t("ui.procedure")}: ${p.title}</h3><ol class="procedure">${p.steps.map((step, i) => {
    const done = view.done[String(i + 1)];
    return html`<li><label><input type="checkbox" data-step="${String(i + 1)}" data-id="${a.id}"${done ? html` checked disabled` : html``}>
      ${step}</label>${done ? html` <span class="muted">${done.actor.replace(/^user:/, "")} ${fmtTime(done.at)}</span>` : html``}</li>`;
  })}</ol>${p.contacts.length ? html`<p class="contacts">${p.contacts.map((c) => html`<span>${c.name} <a href="tel:${c.phone}">${c.phone}</a></span> `)}</p>` : html``}`;
}

/**
 * @param {string} id
 * @param {string} step
 */
async function tick(id, step) {
  const note = prompt(t("ui.step_prompt"), "");
  if (note === null) { if (selected === id) await selectAlarm(id, false); return; }
  const alarm = await api(`/api/alarms/${encodeURIComponent(id)}/procedure/${step}`, { method: "POST", json: { note } });
  state.alarms.set(id, alarm);
  if (selected === id) await selectAlarm(id, false);
}

const LOUD = new Set(["critical", "major"]);

/** @type {string | null} alarm id shown in the detail pane */
let selected = null;
/** @type {LivePlayer[]} */
let detailPlayers = [];

async function refresh() {
  await loadAlarms();
  renderAlarms();
}

function visibleAlarms() {
  const mode = control("filter-state").value; const sev = control("filter-severity").value;
  return [...state.alarms.values()]
    .filter((a) => mode === "all" || (mode === "open" ? !a.state.startsWith("cleared") || a.state === "cleared_unack" : a.state.endsWith("unack")))
    .filter((a) => !sev || a.severity === sev)
    .sort((a, b) => (b.first_seen.localeCompare(a.first_seen)));
}

// Evidence references from the video pipeline are paths like "cam-1/20260105/120000-motion-ab12.jpg", served by
// the hub at /api/evidence/<ref> behind the session cookie: fetched here and shown from blob URLs.
const IMAGE = /\.(jpe?g|png|webp)(\?|$)/i;
const CLIP = /\.(mp4|webm)(\?|$)/i;
/** @type {Map<string, Promise<string | null>>} */
const blobs = new Map();
/** @param {string} ref */
const evidenceUrl = (ref) => (/^(https?:|\/)/.test(ref) ? ref : `/api/evidence/${ref.split("/").map(encodeURIComponent).join("/")}`);

/** @param {Element} root */
async function loadEvidence(root) {
  for (const el of root.querySelectorAll("[data-evidence]")) {
    if (!(el instanceof HTMLImageElement || el instanceof HTMLVideoElement) || !el.dataset.evidence) continue;
    const url = evidenceUrl(el.dataset.evidence);
    let blob = blobs.get(url);
    if (!blob) {
      blob = fetch(url, { credentials: "same-origin" })
        .then((r) => (r.ok ? r.blob() : Promise.reject(new Error(`${r.status}`))))
        .then((b) => URL.createObjectURL(b)).catch(() => null);
      blobs.set(url, blob);
    }
    const src = await blob;
    const link = el.parentElement;
    if (src) { el.src = src; if (link instanceof HTMLAnchorElement) link.href = src; } else el.classList.add("missing");
  }
}

/** @param {Alarm} a */
function thumb(a) {
  const image = (a.evidence || []).find((e) => IMAGE.test(e));
  if (image) return html`<a target="_blank"><img class="thumb" data-evidence="${image}" alt=""></a>`;
  return a.cameras.length ? html`<span class="cam-icon" title="${a.cameras.join(", ")}">▶</span>` : html``;
}

function renderAlarms() {
  const rows = visibleAlarms();
  render($("alarm-rows"), html`${rows.map((a) => html`
    <tr class="sevrow-${a.severity} state-${a.state}${a.id === selected ? " selected" : ""}" data-alarm="${a.id}">
      <td><span class="sev sev-${a.severity}">${t(`severity.${a.severity}`)}</span></td><td>${thumb(a)}</td>
      <td>${a.title}</td><td>${deviceName(a.device_id)}</td><td>${a.place}</td>
      <td>${t(`alarm_state.${a.state}`)}${verdictTag(a)}</td><td class="num">${a.count}</td><td>${fmtTime(a.last_seen)}</td>
      <td class="actions">${actionButtons(a)}</td>
    </tr>`)}`);
  const unack = [...state.alarms.values()].filter((a) => a.state.endsWith("unack")).length;
  $("alarm-count").textContent = `${t("ui.total")} ${rows.length} ${t("ui.items")} · ${t("alarm_state.active_unack")} ${unack}`;
  const badge = $("alarm-badge"); badge.hidden = !unack; badge.textContent = String(unack);
  loadEvidence($("alarm-rows")).catch(report);
}

const AWAITING = new Set(["pending", "escalated", "review"]);

/** @param {Alarm} a */
function verdictTag(a) {
  return a.verdict ? html` <span class="verdict verdict-${a.verdict}">${t(`verdict.${a.verdict}`)}</span>` : html``;
}

/**
 * @param {Alarm} a
 * @returns {Html[]}
 */
function actionButtons(a) {
  /** @type {[string, string][]} */
  const out = [];
  if (a.verdict && AWAITING.has(a.verdict)) {
    out.push(["confirm", "confirm_alarm"], ["false_alarm", "false_alarm"]);
    if (a.verdict === "pending") out.push(["review", "review"]);
  }
  if (a.state.endsWith("unack")) out.push(["acknowledge", "ack"]);
  if (!a.state.startsWith("cleared")) out.push(["clear", "clear"]);
  out.push(["comment", "comment"]);
  if (!a.state.startsWith("cleared")) out.push(["shelve", "shelve"]);
  out.push(["case", "open_case"]);
  if (a.cameras.length) out.push(["wall", "to_wall"]);
  return out.map(([act, label], i) => html`${i ? " " : ""}<button data-act="${act}" data-id="${a.id}">${t(`ui.${label}`)}</button>`);
}

/**
 * @param {string} action
 * @param {string} id
 */
async function act(action, id) {
  const alarm = state.alarms.get(id);
  if (!alarm) return;
  if (action === "case") return openCaseOf(id);
  if (action === "wall") { popToWall(alarm); show("wall"); return; }
  if (action === "shelve") return shelve(alarm);
  if (action === "confirm" || action === "false_alarm" || action === "review") return judge(alarm, action);
  if (action === "take" || action === "hand") {
    /** @type {{ to: string | null, note: string } | undefined} */
    let body;
    if (action === "hand") {
      const to = prompt(t("ui.hand_prompt"), "");
      if (to === null) return;
      const note = prompt(t("ui.hand_note_prompt"), "") || "";
      body = { to: to.trim() || null, note };
    }
    const updated = await api(`/api/alarms/${encodeURIComponent(id)}/${action}`, { method: "POST", json: body });
    state.alarms.set(id, updated);
    renderAlarms();
    if (selected === id) await selectAlarm(id, false);
    return;
  }
  let json;
  if (action === "comment") {
    const note = prompt(t("ui.comment_prompt"));
    if (!note || !note.trim()) return;
    json = { note };
  }
  const result = await api(`/api/alarms/${encodeURIComponent(id)}/${action}`, { method: "POST", json });
  state.alarms.set(id, result.alarm);
  renderAlarms();
  if (selected === id) await selectAlarm(id, false);
}

/** @type {string[] | null} the site's false-alarm reasons, read once */
let reasons = null;

/** @type {Set<string>} alarms this console confirmed whose case the hub is still opening (case_opened opens it) */
const casePending = new Set();

/**
 * 研判: confirm (the case opens), false alarm (with one of the site's reasons) or hand to a supervisor.
 * @param {Alarm} alarm
 * @param {"confirm" | "false_alarm" | "review"} verdict
 */
async function judge(alarm, verdict) {
  /** @type {{ verdict: string, reason?: string, note?: string }} */
  const json = { verdict };
  if (verdict === "false_alarm") {
    reasons ??= /** @type {string[]} */ ((await api("/api/stats/false-alarms")).reasons);
    const list = reasons;
    const picked = prompt(`${t("ui.false_reason_prompt")}: ${list.map((r, i) => `${i + 1} ${r}`).join("  ")}`, "1");
    if (!picked) return;
    json.reason = list[Number(picked) - 1] || picked.trim();
  } else {
    const note = prompt(t(verdict === "confirm" ? "ui.confirm_prompt" : "ui.review_prompt"), "");
    if (note === null) return;
    json.note = note;
  }
  const result = await api(`/api/alarms/${encodeURIComponent(alarm.id)}/verdict`, { method: "POST", json });
  // 确认: the hub opens the case just after this answer and says so on the live stream (case_opened)
  if (result.case_pending) casePending.add(alarm.id);
  toast(`${t(`ui.${verdict === "confirm" ? "confirm_alarm" : verdict}`)}: ${alarm.title}`);
  /** @type {AlarmDetail} */
  const fresh = await api(`/api/alarms/${encodeURIComponent(alarm.id)}`);
  state.alarms.set(alarm.id, fresh.alarm);
  renderAlarms();
  if (selected === alarm.id) await selectAlarm(alarm.id, false);
  if (fresh.case_id && casePending.delete(alarm.id)) await open("cases", fresh.case_id);
  else if (result.case_pending) toast(t("ui.case_opening"));
}

/**
 * Silence this alarm's condition (same rule, device and zone) for an hour, with a reason every operator sees.
 * @param {Alarm} alarm
 */
async function shelve(alarm) {
  const reason = prompt(t("ui.shelve_prompt"));
  if (!reason || !reason.trim()) return;
  /** @type {Record<string, string>} */
  const matchers = { rule_id: alarm.rule_id, device_id: alarm.device_id };
  if (alarm.channel) matchers.channel = alarm.channel;
  const now = new Date();
  await api("/api/silences", { method: "POST", json: {
    matchers, reason, starts_at: now.toISOString(), ends_at: new Date(now.getTime() + 3600e3).toISOString() } });
  toast(`${t("ui.shelved")}: ${alarm.title} · ${alarm.place}`);
}

/** @param {string} alarmId */
async function openCaseOf(alarmId) {
  /** @type {AlarmDetail} */
  const detail = await api(`/api/alarms/${encodeURIComponent(alarmId)}`);
  if (!detail.case_id) { toast(t("ui.no_case")); return; }
  await open("cases", detail.case_id);
}

/**
 * @param {string} id
 * @param {boolean} [resetPlayers]
 */
async function selectAlarm(id, resetPlayers = true) {
  const turn = ++selecting;
  selected = id;
  document.querySelectorAll("#alarm-rows tr").forEach((r) => {
    if (r instanceof HTMLElement) r.classList.toggle("selected", r.dataset.alarm === id);
  });
  /** @type {AlarmDetail} */
  const detail = await api(`/api/alarms/${encodeURIComponent(id)}`);
  /** @type {ProcedureView} */
  const procedure = await api(`/api/alarms/${encodeURIComponent(id)}/procedure`);
  const a = detail.alarm; state.alarms.set(a.id, a);
  // a later selection (a click, the pop-up of a new alarm, a refresh) started while this one waited owns the pane:
  // drawing this older one now would replace what the operator already works in
  if (turn !== selecting) return;
  const pane = $("alarm-detail");
  const keep = !resetPlayers && pane.dataset.alarm === id;
  const evidence = (a.evidence || []).map((e) => (IMAGE.test(e)
    ? html`<a target="_blank"><img class="snapshot" data-evidence="${e}" alt=""></a>`
    : CLIP.test(e) ? html`<video class="clip" controls preload="metadata" data-evidence="${e}"></video>`
      : html`<span>${e}</span>`));
  const info = html`
    <h2><span class="sev sev-${a.severity}">${t(`severity.${a.severity}`)}</span> ${a.title}</h2>
    <dl class="facts">
      <dt>${t("ui.device")}</dt><dd>${deviceName(a.device_id)}</dd>
      <dt>${t("ui.place")}</dt><dd>${a.place}</dd>
      <dt>${t("ui.state")}</dt><dd class="alarm-state">${t(`alarm_state.${a.state}`)}</dd>
      <dt>${t("ui.count")}</dt><dd>${a.count}</dd>
      <dt>${t("ui.first_seen")}</dt><dd>${fmtTime(a.first_seen)}</dd>
      <dt>${t("ui.last_seen")}</dt><dd>${fmtTime(a.last_seen)}</dd>
      <dt>${t("ui.case")}</dt><dd>${detail.case_id ? html`<a href="#" data-case="${detail.case_id}">${detail.case_id}</a>` : t("ui.no_case")}</dd>
      <dt>${t("ui.owner")}</dt><dd class="alarm-owner">${a.owner ? a.owner.replace(/^user:/, "") : t("ui.no_owner")}</dd>
    </dl>
    <p class="actions">${actionButtons(a)} <button data-act="take" data-id="${a.id}">${t("ui.take")}</button>
      <button data-act="hand" data-id="${a.id}">${t("ui.hand")}</button></p>
    ${procedureBox(procedure, a)}
    <h3>${t("ui.evidence")}</h3><div class="evidence">${evidence.length ? evidence : html`<p class="muted">${t("ui.no_evidence")}</p>`}</div>
    <h3>${t("ui.history")}</h3>
    <table class="history"><thead><tr><th>${t("ui.at")}</th><th>${t("ui.action")}</th><th>${t("ui.actor")}</th><th>${t("ui.note")}</th></tr></thead>
    <tbody>${detail.history.map((h) => html`<tr><td>${fmtTime(h.at)}</td><td>${t(`alarm_event.${h.action}`)}</td>
      <td>${h.actor}</td><td>${h.note}</td></tr>`)}</tbody></table>`;
  const infoBox = pane.querySelector(".detail-info");
  if (keep && infoBox) { render(infoBox, info); loadEvidence(pane).catch(report); return; }
  closePlayers();
  pane.dataset.alarm = id;
  render(pane, html`<h3 data-i18n="ui.cameras">${t("ui.cameras")}</h3><div class="detail-cameras"></div><div class="detail-info">${info}</div>`);
  loadEvidence(pane).catch(report);
  const box = pane.querySelector(".detail-cameras");
  if (!box) return;
  if (!a.cameras.length) render(box, html`<p class="muted">${t("ui.no_cameras")}</p>`);
  for (const cam of a.cameras.slice(0, 4)) {
    const p = new LivePlayer(cam, box); p.setLabel(deviceName(cam)); detailPlayers.push(p);
  }
  // the first GB/T 28181 camera of the alarm can be turned from here (云台)
  const attach = () => {
    const cam = a.cameras.slice(0, 4).find((c) => isGbChannel(c));
    if (cam && pane.dataset.alarm === id && box.isConnected && !detailPtz) detailPtz = ptzFor(cam, box);
  };
  if (state.devices.size) attach(); else loadDeviceHealth().then(attach).catch(report);
  // Look back: each linked camera (and GB/T 28181 channel) from 10 s before the alarm, on the playback timeline.
  if (a.cameras.length) {
    const links = document.createElement("p"); links.className = "lookback";
    render(links, html`${a.cameras.slice(0, 4).map((cam) => html`<button type="button" data-lookback="${cam}"
      data-at="${a.first_seen}">${t("ui.look_back")} · ${deviceName(cam)}</button> `)}`);
    box.append(links);
  }
}

/** @type {import("../ptz.js").PtzPanel | null} */
let detailPtz = null;
/** the latest selectAlarm call: only it may draw the detail */
let selecting = 0;

function closePlayers() {
  detailPlayers.forEach((p) => p.close()); detailPlayers = [];
  if (detailPtz) { detailPtz.close(); detailPtz = null; }
}

/**
 * The hub says an alarm changed (raised, acknowledged, cleared...).
 * @param {import("../types.js").AlarmChange} msg
 */
export async function onAlarmChange(msg) {
  if (msg.type === "case_opened" && msg.case && casePending.delete(msg.alarm)) {
    await open("cases", msg.case); // the case of the alarm this console just confirmed
    return;
  }
  /** @type {AlarmDetail} */
  let detail;
  try { detail = await api(`/api/alarms/${encodeURIComponent(msg.alarm)}`); } catch (err) { report(err); return; }
  const a = detail.alarm;
  state.alarms.set(a.id, a);
  if (state.view === "alarms") renderAlarms();
  if (msg.type === "raised") {
    if (LOUD.has(a.severity) && !muted) { alarmTone(a.severity); state.tones += 1; }
    toast(`${t("ui.new_alarm")}: ${t(`severity.${a.severity}`)} ${a.title} · ${a.place}`, `sev-${a.severity}`);
    if (a.cameras.length) popToWall(a);
    // the newest alarm pops up with its cameras beside it, unless the operator is typing or working in the open
    // alarm's detail (turning its camera, ticking its procedure): that pane is not pulled from under them
    const focus = document.activeElement;
    const busy = focus instanceof HTMLElement && (focus.tagName === "INPUT" || focus.closest("#alarm-detail") !== null);
    if (state.view === "alarms" && !busy) await selectAlarm(a.id);
  } else if (selected === a.id && state.view === "alarms") {
    await selectAlarm(a.id, false);
  }
  if (state.view === "map") markAlarms();
}

/** After a language switch: the open detail in the new language, its players kept. */
export function relabel() {
  if (selected) selectAlarm(selected, false).catch(report);
}

control("filter-state").addEventListener("change", renderAlarms);
control("filter-severity").addEventListener("change", renderAlarms);
$("alarms").addEventListener("click", (ev) => {
  const button = closest(ev, "button[data-act]");
  if (button) { ev.stopPropagation(); act(button.dataset.act || "", button.dataset.id || "").catch(report); return; }
  const box = closest(ev, "input[data-step]");
  if (box) { ev.stopPropagation(); tick(box.dataset.id || "", box.dataset.step || "").catch(report); return; }
  const back = closest(ev, "button[data-lookback]");
  if (back) { ev.stopPropagation(); lookBack(back.dataset.lookback || "", back.dataset.at || ""); return; }
  const caseLink = closest(ev, "[data-case]");
  if (caseLink) { ev.preventDefault(); open("cases", caseLink.dataset.case || "").catch(report); return; }
  const row = closest(ev, "tr[data-alarm]");
  // the open alarm's own row refreshes its detail: its cameras, its PTZ panel (a preset number being typed) stay
  if (row) selectAlarm(row.dataset.alarm || "", false).catch(report);
});

register("alarms", {
  refresh,
  open: (id) => selectAlarm(id),
  reset: () => { closePlayers(); selected = null; delete $("alarm-detail").dataset.alarm; },
});
