// @ts-check
// Devices: health of each, the live video feeds with their viewers, and the dead letters (rejected input).
// Control (devices:control): a GB/T 28181 device can be rebooted, made to record or stop, guarded (布防) or unguarded
// (撤防) and its clock checked; a GB/T 28181 channel can record and be guarded; a fence controller armed or disarmed.
// The hub checks role and unit again and audits every command.
// The upper platforms SharpEye serves (级联): registration, keepalives, their subscriptions, channels shared, alarms
// forwarded and errors, read again every few seconds while the view is on screen.
import { api } from "../api.js";
import { html, render } from "../html.js";
import { fmtTime, t } from "../i18n/index.js";
import { register } from "../nav.js";
import { isGbChannel } from "../ptz.js";
import { deviceName, loadDeviceHealth, state } from "../state.js";
import { $, closest, report, toast } from "../ui.js";
import { can } from "./cases.js";

const GB_DEVICE = ["teleboot", "record_start", "record_stop", "guard", "unguard"];
const GB_CHANNEL = ["record_start", "record_stop", "guard", "unguard"];
const FENCE = ["arm", "disarm"];

/**
 * The control buttons of a device row (none when the user may not control devices).
 * @param {{ id: string, kind: string }} d
 */
function controls(d) {
  /** @type {string[]} */
  let commands = [];
  if (can("devices:control")) {
    if (d.kind === "gb28181") commands = GB_DEVICE;
    else if (d.kind === "fence") commands = FENCE;
    else if (isGbChannel(d.id)) commands = GB_CHANNEL;
  }
  const time = d.kind === "gb28181" && can("devices:read");
  return html`${commands.map((c) => html`<button type="button" data-control="${c}">
    ${t(`device_control.${c}`)}</button>`)}${time ? html`<button type="button" data-control="time">
    ${t("device_control.time")}</button>` : ""}`;
}

/**
 * Carry out one control command on a device (the button's row).
 * @param {string} deviceId
 * @param {string} command
 * @param {HTMLElement} button
 */
async function runControl(deviceId, command, button) {
  if (command === "teleboot" && !window.confirm(t("device_control.confirm_teleboot"))) return;
  const id = encodeURIComponent(deviceId);
  button.setAttribute("disabled", "");
  try {
    if (command === "time") {
      /** @type {{ offset_s: number }} */
      const clock = await api(`/api/gb28181/devices/${id}/time`);
      const sign = clock.offset_s > 0 ? "+" : "";
      toast(`${deviceName(deviceId)}: ${t("device_control.offset")} ${sign}${clock.offset_s} ${t("device_control.seconds")}`);
    } else if (command === "arm" || command === "disarm") {
      await api(`/api/devices/${id}/arming`, { method: "POST", json: { command } });
      toast(`${deviceName(deviceId)}: ${t(`device_control.${command}`)} ${t("device_control.sent")}`);
    } else {
      await api(`/api/gb28181/devices/${id}/control`, { method: "POST", json: { command } });
      toast(`${deviceName(deviceId)}: ${t(`device_control.${command}`)} ${t("device_control.done")}`);
    }
  } catch (err) {
    report(`${t("device_control.failed")}: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    button.removeAttribute("disabled");
  }
}

/** @typedef {{ camera: string, viewers: number, source: string, packets: number, failures: number, last_error: string | null }} Feed */
/** @typedef {{ received: string, device: string, reason: string, detail: string, source: string, origin: string }} Letter */
/** @typedef {{ id: string, started_at: string, last_seen: string, weight: number, load: number, devices: string[] }} HubNode */

/** @typedef {{ event: string, target: string, since: string | null, expires_in_s: number, sent: number, failures: number }} CascadeSub */
/**
 * @typedef {{ id: string, upper_id: string, address: string, registered: boolean, registered_since: string | null,
 *   last_keepalive: string | null, subscriptions: Record<string, number>, subscription_list: CascadeSub[],
 *   channels: number, streams: number, alarms_forwarded: number, errors: number, last_error: string,
 *   last_error_at: string | null }} Cascade
 */

const CASCADE_POLL_MS = 5000;

/** The upper platforms' table (hidden when none is configured). */
async function loadCascades() {
  /** @type {{ running: boolean, node: string, platforms: Cascade[] }} */
  const view = await api("/api/gb28181/cascades").catch(() => ({ running: false, node: "", platforms: [] }));
  $("cascades").hidden = view.platforms.length === 0;
  $("cascade-note").textContent = view.running ? ""
    : view.node ? t("cascade.elsewhere").replace("{node}", view.node) : t("cascade.not_running");
  render($("cascade-rows"), html`${view.platforms.map((p) => html`
    <tr data-cascade="${p.id}"><td>${p.id}${p.id !== p.upper_id ? html`<br><small>${p.upper_id}</small>` : ""}</td>
    <td>${p.address}</td>
    <td data-registered="${p.registered ? "1" : "0"}"><i class="dot state-${p.registered ? "online" : "offline"}"></i>
      ${t(p.registered ? "cascade.registered" : "cascade.unregistered")}
      ${p.registered_since ? html`<br><small>${t("cascade.since")} ${fmtTime(p.registered_since)}</small>` : ""}</td>
    <td>${fmtTime(p.last_keepalive)}</td>
    <td class="cascade-subs">${Object.keys(p.subscriptions).length === 0 ? t("cascade.none")
      : Object.entries(p.subscriptions).map(([event, n]) => html`<span class="tag" data-event="${event}"
        title="${p.subscription_list.filter((s) => s.event === event).map((s) => s.target).join(", ")}">${t(`cascade.${event}`)}${n > 1 ? ` ×${n}` : ""}</span> `)}</td>
    <td class="num">${p.channels}</td><td class="num">${p.streams}</td>
    <td class="num" data-alarms>${p.alarms_forwarded}</td><td class="num">${p.errors}</td>
    <td>${p.last_error}${p.last_error_at ? html`<br><small>${fmtTime(p.last_error_at)}</small>` : ""}</td></tr>`)}`);
}

let polling = false;
setInterval(() => {
  if (state.view !== "devices" || polling || document.hidden || $("cascades").hidden) return;
  polling = true;
  loadCascades().catch(report).finally(() => { polling = false; });
}, CASCADE_POLL_MS);

async function loadDevices() {
  const devices = await loadDeviceHealth();
  render($("device-rows"), html`${devices.map((d) => html`
    <tr data-device="${d.id}"><td>${d.id}</td><td>${d.name}</td><td>${t(`kind.${d.kind}`)}</td><td>${d.grid}</td>
    <td><i class="dot state-${d.state}"></i> ${t(`device_state.${d.state}`)}</td><td>${fmtTime(d.last_seen)}</td>
    <td class="num">${d.messages}</td><td class="num">${d.errors}</td><td>${d.last_error}</td>
    <td class="device-control">${controls(d)}</td></tr>`)}`);
  /** @type {{ feeds: Feed[] }} */
  const live = await api("/api/cameras/live").catch(() => ({ feeds: [] }));
  render($("live-rows"), html`${live.feeds.map((f) => html`
    <tr><td>${deviceName(f.camera)}</td><td class="num">${f.viewers}</td><td>${f.source}</td>
    <td class="num">${f.packets}</td><td class="num">${f.failures}</td><td>${f.last_error}</td></tr>`)}`);
  await loadCascades();
  /** @type {{ node: string, nodes: HubNode[] }} */
  const cluster = await api("/api/cluster").catch(() => ({ node: "", nodes: [] }));
  render($("node-rows"), html`${cluster.nodes.map((n) => html`
    <tr data-node="${n.id}"><td>${n.id}${n.id === cluster.node ? " ●" : ""}</td><td>${fmtTime(n.started_at)}</td>
    <td>${fmtTime(n.last_seen)}</td><td class="num">${n.weight}</td><td class="num">${n.load}</td>
    <td>${n.devices.map((d) => deviceName(d)).join("、")}</td></tr>`)}`);
  /** @type {Letter[]} */
  let letters = [];
  try { letters = await api("/api/deadletters?limit=50"); } catch { /* roles without dead-letter access */ }
  render($("deadletter-rows"), html`${letters.map((l) => html`
    <tr><td>${fmtTime(l.received)}</td><td>${l.device}</td><td>${l.reason}</td><td>${l.detail}</td>
    <td>${l.source} ${l.origin}</td></tr>`)}`);
}

$("device-rows").addEventListener("click", (ev) => {
  const button = closest(ev, "button[data-control]");
  const row = closest(ev, "tr[data-device]");
  if (button && row) void runControl(row.dataset.device ?? "", button.dataset.control ?? "", button);
});

register("devices", { refresh: loadDevices });
