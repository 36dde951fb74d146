// @ts-check
// What several views share: the site (devices, names, departments), the alarms, device health, and the
// session-wide counters the browser tests read (``window.sharpeye``).
import { api } from "./api.js";
import { setLabels, setZone } from "./i18n/index.js";

/** @typedef {import("./types.js").Alarm} Alarm */
/** @typedef {import("./types.js").DeviceHealth} DeviceHealth */
/** @typedef {import("./types.js").OrgUnit} OrgUnit */
/** @typedef {import("./types.js").Site} Site */

export const state = {
  view: "alarms",
  /** @type {Map<string, Alarm>} id -> alarm */
  alarms: new Map(),
  /** @type {Site | null} /api/site */
  site: null,
  /** @type {Map<string, DeviceHealth>} id -> device health */
  devices: new Map(),
  /** @type {Map<string, string>} device id -> display name */
  names: new Map(),
  /** @type {Map<string, string>} department id -> name */
  departments: new Map(),
  tones: 0, // alarm tones played (read by the browser tests)
};
// for the browser tests and for support staff in the console
/** @type {any} */ (window).sharpeye = state;

/** @returns {Promise<Site>} */
export async function loadSite() {
  if (state.site) return state.site;
  /** @type {Site} */
  const site = await api("/api/site");
  state.site = site;
  setZone(site.timezone);
  state.names = new Map(site.devices.map((d) => [d.id, d.name]));
  state.departments = new Map(site.departments.map((d) => [d.id, d.name]));
  return site;
}

/** Kind, reading, stage and action labels as the hub defines them (without them the raw keys show). */
export async function loadLabels() {
  try { setLabels(await api("/api/labels")); } catch (err) { console.warn("labels", err); }
}

/** @param {string} id */
export const deviceName = (id) => state.names.get(id) || id;

/** Department and org-unit display names, for the statistics tables. */
export function placeNames() {
  /** @type {Map<string, string>} */
  const names = new Map();
  /** @param {OrgUnit} u */
  const walk = (u) => { names.set(u.id, u.name); (u.children || []).forEach(walk); };
  if (state.site) { walk(state.site.org); state.site.departments.forEach((d) => names.set(d.id, d.name)); }
  return names;
}

export async function loadAlarms() {
  const page = await api("/api/alarms?limit=500");
  state.alarms = new Map(page.items.map((/** @type {Alarm} */ a) => [a.id, a]));
}

/** @returns {Promise<DeviceHealth[]>} */
export async function loadDeviceHealth() {
  /** @type {DeviceHealth[]} */
  const devices = await api("/api/devices");
  state.devices = new Map(devices.map((d) => [d.id, d]));
  return devices;
}

/** On sign-out: what the next user must load again. */
export function forget() {
  state.alarms = new Map(); state.devices = new Map();
}
