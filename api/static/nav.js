// @ts-check
// The views: each registers how it refreshes (and how it opens one item, for links from another view); ``show``
// switches between them. Views reach each other only through here, so no view imports another's module in a circle.
import { state } from "./state.js";
import { report } from "./ui.js";

/**
 * @typedef {object} View
 * @property {() => Promise<void> | void} refresh  reload and draw (the view is on screen)
 * @property {(id: string) => Promise<void>} [open]  show one item (an alarm, a case)
 * @property {() => void} [reset]  sign-out: close players, forget what was shown
 */

/** @type {Map<string, View>} */
const views = new Map();

/**
 * @param {string} name  the id of its <section class="view"> and its nav button's data-view
 * @param {View} view
 */
export function register(name, view) { views.set(name, view); }

/** @param {string} name */
export function show(name) {
  select(name);
  refresh().catch(report);
}

/** @param {string} name */
function select(name) {
  state.view = name;
  document.querySelectorAll(".view").forEach((v) => { if (v instanceof HTMLElement) v.hidden = v.id !== name; });
  document.querySelectorAll("#nav button").forEach((b) => {
    if (b instanceof HTMLElement) b.classList.toggle("active", b.dataset.view === name);
  });
}

export async function refresh() {
  await views.get(state.view)?.refresh();
}

/**
 * Switch to a view and show one of its items.
 * @param {string} name
 * @param {string} id
 */
export async function open(name, id) {
  select(name);
  await refresh();
  await views.get(name)?.open?.(id);
}

export function resetAll() { views.forEach((v) => v.reset?.()); }
