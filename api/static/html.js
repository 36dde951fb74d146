// @ts-check
// Markup from templates that escape by default: every value put into ``html`...``` is escaped unless it is
// itself the result of ``html`` (or an array of such results). ``render`` is the one place the console writes
// innerHTML (eslint forbids it elsewhere), so no data reaches the page unescaped.

/** Markup that is safe to insert: built by ``html`` from literal template text and escaped values. */
export class Html {
  /** @param {string} text */
  constructor(text) { this.text = text; }
  toString() { return this.text; }
}

/** @type {Record<string, string>} */
const ENTITIES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/**
 * @param {unknown} value
 * @returns {string}
 */
function piece(value) {
  if (value instanceof Html) return value.text;
  if (Array.isArray(value)) return value.map(piece).join("");
  if (value === null || value === undefined || value === false) return "";
  return String(value).replace(/[&<>"']/g, (c) => ENTITIES[c]);
}

/**
 * The tag: ``html`<td>${name}</td>``` escapes ``name``; nested ``html`` results and arrays of them pass as they are.
 * ``null``, ``undefined`` and ``false`` give nothing, so ``${cond && html`...`}`` works.
 * @param {TemplateStringsArray} strings
 * @param {...unknown} values
 * @returns {Html}
 */
export function html(strings, ...values) {
  let out = strings[0];
  values.forEach((value, i) => { out += piece(value) + strings[i + 1]; });
  return new Html(out);
}

/**
 * Replace an element's content with escaped markup.
 * @param {Element} el
 * @param {Html} markup
 */
export function render(el, markup) {
  el.innerHTML = markup.text;
}
