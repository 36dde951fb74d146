// @ts-check
// The field app builds its DOM with createElement and text nodes only: no markup strings, nothing to escape.

/** @typedef {Node | string | number | null | undefined | false} Child */

/**
 * An element with attributes (``on*`` functions become listeners) and children (strings become text).
 * @param {string} tag
 * @param {Record<string, string | number | boolean | ((e: Event) => void) | undefined>} [attrs]
 * @param {...(Child | Child[])} children
 * @returns {HTMLElement}
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (value === true) el.setAttribute(name, "");
    else if (value !== false && value !== undefined) el.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) el.append(typeof child === "number" ? String(child) : child);
  }
  return el;
}

/**
 * Replace an element's children.
 * @param {Element} el
 * @param {...(Child | Child[])} children
 */
export function fill(el, ...children) {
  el.replaceChildren();
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) el.append(typeof child === "number" ? String(child) : child);
  }
}
