// @ts-check
// Small helpers every view uses: elements by id, the toast, and error reporting.
/**
 * The element with this id (the page's static markup has it; a missing one is a bug worth an exception).
 * @param {string} id
 * @returns {HTMLElement}
 */
export function $(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`no element #${id}`);
  return el;
}

/**
 * A form control by id.
 * @param {string} id
 * @returns {HTMLInputElement | HTMLSelectElement}
 */
export function control(id) {
  const el = $(id);
  if (!(el instanceof HTMLInputElement || el instanceof HTMLSelectElement)) throw new Error(`#${id} is not a control`);
  return el;
}

/**
 * The closest element matching ``selector`` from an event's target, as an HTMLElement.
 * @param {Event} ev
 * @param {string} selector
 * @returns {HTMLElement | null}
 */
export function closest(ev, selector) {
  const target = ev.target instanceof Element ? ev.target.closest(selector) : null;
  return target instanceof HTMLElement ? target : null;
}

/** @type {ReturnType<typeof setTimeout> | undefined} */
let toastTimer;

/**
 * @param {string} text
 * @param {string} [cls]
 */
export function toast(text, cls = "") {
  const el = $("toast"); el.textContent = text; el.className = `toast ${cls}`; el.hidden = false;
  clearTimeout(toastTimer); toastTimer = setTimeout(() => { el.hidden = true; }, 5000);
}

/** @param {unknown} err */
export function report(err) {
  if (String(err).includes("unauthorised")) return;
  console.error(err); toast(String(err));
}
