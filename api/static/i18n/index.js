// @ts-check
// Chinese first, English by a switch. Times are shown in the site's zone (Asia/Shanghai by default).
// Keys are namespaced: ``ui.*`` for the console's own words, then one namespace per enumeration of the hub
// (``severity.*``, ``alarm_state.*``...). Labels defined by the hub (``kind.*``, ``reading.*``, ``stage.*``,
// ``action.*``, ``case_event.*``) come from GET /api/labels through ``setLabels``.
import { en } from "./en.js";
import { zh } from "./zh.js";

/** @typedef {"zh" | "en"} Lang */
/** @typedef {{ zh: string, en: string }} Label */
/** @typedef {Record<string, Record<string, Label>>} ServerLabels  namespace -> key -> label */

/** @type {Record<Lang, Record<string, Record<string, string>>>} */
const DICT = { zh, en };

/** @type {ServerLabels} */
let served = {};

/** @type {Lang} */
export let lang = localStorage.getItem("sharpeye.lang") === "en" ? "en" : "zh";
export let zone = "Asia/Shanghai";

/**
 * The text of a namespaced key ("ui.title", "severity.major", "kind.fence"): the current language, else Chinese,
 * else the key's last part (the raw value, as the hub sent it).
 * @param {string} key
 * @returns {string}
 */
export function t(key) {
  const dot = key.indexOf(".");
  if (dot < 0) return key;
  const ns = key.slice(0, dot); const name = key.slice(dot + 1);
  const label = served[ns]?.[name];
  if (label) return label[lang] || label.zh;
  return DICT[lang][ns]?.[name] ?? DICT.zh[ns]?.[name] ?? name;
}

/** @param {ServerLabels} labels */
export function setLabels(labels) { served = labels; }

/** @param {Lang} next */
export function setLang(next) {
  lang = next;
  localStorage.setItem("sharpeye.lang", next);
  document.documentElement.lang = next === "zh" ? "zh-CN" : "en";
  document.querySelectorAll("[data-i18n]").forEach((el) => {
    if (el instanceof HTMLElement && el.dataset.i18n) el.textContent = t(el.dataset.i18n);
  });
}

/** @param {string | null | undefined} next */
export function setZone(next) { if (next) zone = next; }

/**
 * @param {string | null | undefined} iso
 * @returns {string}
 */
export function fmtTime(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB", {
    timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  });
}

/**
 * Time left (or overdue) in words.
 * @param {number} ms
 * @returns {string}
 */
export function fmtDuration(ms) {
  const neg = ms < 0; let s = Math.floor(Math.abs(ms) / 1000);
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600; const m = Math.floor(s / 60);
  const text = lang === "zh"
    ? `${d ? d + "天" : ""}${h ? h + "小时" : ""}${m}分`
    : `${d ? d + "d " : ""}${h ? h + "h " : ""}${m}m`;
  return neg ? `${t("ui.overdue")} ${text}` : `${t("ui.remaining")} ${text}`;
}
