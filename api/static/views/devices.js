// @ts-check
// Devices: health of each, the live video feeds with their viewers, and the dead letters (rejected input).
import { api } from "../api.js";
import { html, render } from "../html.js";
import { fmtTime, t } from "../i18n/index.js";
import { register } from "../nav.js";
import { deviceName, loadDeviceHealth } from "../state.js";
import { $ } from "../ui.js";

/** @typedef {{ camera: string, viewers: number, source: string, packets: number, failures: number, last_error: string | null }} Feed */
/** @typedef {{ received: string, device: string, reason: string, detail: string, source: string, origin: string }} Letter */
/** @typedef {{ id: string, started_at: string, last_seen: string, weight: number, load: number, devices: string[] }} HubNode */

async function loadDevices() {
  const devices = await loadDeviceHealth();
  render($("device-rows"), html`${devices.map((d) => html`
    <tr data-device="${d.id}"><td>${d.id}</td><td>${d.name}</td><td>${t(`kind.${d.kind}`)}</td><td>${d.grid}</td>
    <td><i class="dot state-${d.state}"></i> ${t(`device_state.${d.state}`)}</td><td>${fmtTime(d.last_seen)}</td>
    <td class="num">${d.messages}</td><td class="num">${d.errors}</td><td>${d.last_error}</td></tr>`)}`);
  /** @type {{ feeds: Feed[] }} */
  const live = await api("/api/cameras/live").catch(() => ({ feeds: [] }));
  render($("live-rows"), html`${live.feeds.map((f) => html`
    <tr><td>${deviceName(f.camera)}</td><td class="num">${f.viewers}</td><td>${f.source}</td>
    <td class="num">${f.packets}</td><td class="num">${f.failures}</td><td>${f.last_error}</td></tr>`)}`);
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

register("devices", { refresh: loadDevices });
