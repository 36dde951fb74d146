// @ts-check
// 大屏: the command screen. The map of the site (一张图, when the map library is installed and the site is placed on
// the earth: views/map.js draws it), live counts, the open cases' lights, the trend of the last 30 days (every day shown,
// so one day of data is still a line), top categories, departments' close rates, false alarms, the cameras online
// and cases by grid, drawn with ECharts; redrawn every 30 s and soon after any alarm change (its own alarm stream).
// ECharts is not part of the console: `sharpeye assets install` puts the pinned npm release into the data dir and
// the hub serves it under /assets/ (no CDN); without it the screen says how to install it. The figures are those of
// the monthly report (GET /api/reports/monthly?format=json), so the screen, the report and the statistics page
// agree. Days are the site's (site.timezone), whatever the browser's.
import { alarmStream, api, session } from "../api.js";
import { echarts as loadECharts, installHint } from "../charts.js";
import { html, render } from "../html.js";
import { fmtTime, t } from "../i18n/index.js";
import { GeoMap, libraryState, loadLeaflet } from "../geomap.js";
import { open, register } from "../nav.js";
import { loadSite, state } from "../state.js";
import { $, report } from "../ui.js";
import { fillGeo } from "./map.js";

/** @typedef {import("../charts.js").Chart} Chart */
/** @typedef {import("../charts.js").ECharts} ECharts */
/** @typedef {Record<string, any>} Row a grouped row of the report: key, name and the indicators */
/**
 * @typedef {object} Figures  GET /api/reports/monthly?format=json
 * @property {string} site
 * @property {{ from: string, to: string, label: string }} period
 * @property {string} scope
 * @property {Row} total
 * @property {number | null} false_alarms
 * @property {number | null} false_alarm_rate
 * @property {number | null} cameras
 * @property {number | null} cameras_online
 * @property {number | null} camera_online_rate
 * @property {Row[]} by_department
 * @property {Row[]} by_category
 * @property {Row[]} by_org_unit
 * @property {Row[]} by_day
 * @property {{ key: string, count: number }[]} false_by_reason
 */

const DAYS = 30;
const REFRESH_MS = 30_000;
const TEXT = "#cfe3ff";
const AXIS = "#35557d";
const COLOURS = ["#3aa0ff", "#36d399", "#fbbd23", "#f87272", "#a78bfa", "#22d3ee", "#fb923c", "#94a3b8"];

/** @type {Map<string, Chart>} */
const charts = new Map();
/** The screen's map: its box outlives the redraws of the panels (moved into each new frame), so Leaflet keeps it. */
const mapBox = document.createElement("div");
mapBox.className = "screen-map";
mapBox.id = "screen-map";
/** @type {GeoMap | null} */
let geo = null;
let geoLang = "";
/** @type {ReturnType<typeof setInterval> | null} */
let timer = null;
/** @type {(() => void) | null} stops the screen's own alarm stream */
let stream = null;
let soon = false;
const ALARM_DELAY_MS = 2000; // a burst of alarm changes redraws once

/** While the screen is up, an alarm raised, acknowledged or cleared redraws it within ALARM_DELAY_MS. */
function follow() {
  if (stream) return;
  stream = alarmStream(() => {
    if (soon) return;
    soon = true;
    setTimeout(() => {
      soon = false;
      if (state.view === "screen") renderScreen().catch(report); else stop();
    }, ALARM_DELAY_MS);
  }, () => {});
}

/** The last DAYS days of the site's calendar (site.timezone, whatever the browser's), oldest first. */
function lastDays() {
  const zone = state.site?.timezone;
  const today = new Intl.DateTimeFormat("en-CA", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit" })
    .format(new Date());
  const [y, m, d] = today.split("-").map(Number);
  const out = [];
  for (let i = DAYS - 1; i >= 0; i -= 1) out.push(new Date(Date.UTC(y, m - 1, d - i)).toISOString().slice(0, 10));
  return out;
}

/** @param {string} permission */
const may = (permission) => Boolean(session.user?.permissions?.includes(permission));

/** @param {number | null | undefined} value */
const pct = (value) => (value == null ? "–" : `${value}%`);

/**
 * A chart in the panel ``id``, made once and given new options on each refresh.
 * @param {ECharts} echarts
 * @param {string} id
 * @param {object} option
 */
function draw(echarts, id, option) {
  const el = document.getElementById(id);
  if (!el) return;
  let chart = charts.get(id);
  if (!chart) { chart = echarts.init(el, null, { renderer: "canvas" }); charts.set(id, chart); }
  chart.setOption({ color: COLOURS, textStyle: { color: TEXT }, animation: false, ...option }, true);
}

const axisStyle = { axisLine: { lineStyle: { color: AXIS } }, axisLabel: { color: TEXT }, splitLine: { lineStyle: { color: AXIS, opacity: 0.4 } } };

/**
 * @param {ECharts} echarts
 * @param {Figures} f
 */
function drawAll(echarts, f) {
  const days = lastDays();
  const byDay = new Map(f.by_day.map((r) => [r.key, r]));
  draw(echarts, "screen-trend", {
    tooltip: { trigger: "axis" },
    legend: { data: [t("stat.opened"), t("stat.closed")], textStyle: { color: TEXT }, top: 0, right: 16 },
    grid: { left: 40, right: 16, top: 36, bottom: 28 },
    xAxis: { type: "category", data: days.map((d) => d.slice(5)), ...axisStyle },
    yAxis: { type: "value", minInterval: 1, ...axisStyle },
    series: [
      { name: t("stat.opened"), type: "line", smooth: true, showAllSymbol: true, areaStyle: { opacity: 0.15 },
        data: days.map((d) => byDay.get(d)?.opened ?? 0) },
      { name: t("stat.closed"), type: "line", smooth: true, showAllSymbol: true,
        data: days.map((d) => byDay.get(d)?.closed ?? 0) },
    ],
  });
  const total = f.total;
  draw(echarts, "screen-lights", {
    tooltip: { trigger: "item" },
    series: [{ type: "pie", radius: ["45%", "72%"], label: { color: TEXT, formatter: "{b}\n{c}" },
      data: [
        { name: t("light.green"), value: total.open_green ?? 0, itemStyle: { color: "#36d399" } },
        { name: t("light.yellow"), value: total.open_yellow ?? 0, itemStyle: { color: "#fbbd23" } },
        { name: t("light.red"), value: total.open_red ?? 0, itemStyle: { color: "#f87272" } },
      ] }],
  });
  const top = [...f.by_category].sort((a, b) => b.opened - a.opened).slice(0, 8).reverse();
  draw(echarts, "screen-categories", {
    tooltip: {}, grid: { left: 90, right: 30, top: 10, bottom: 24 },
    xAxis: { type: "value", minInterval: 1, ...axisStyle },
    yAxis: { type: "category", data: top.map((r) => t(`category.${r.key}`)), ...axisStyle },
    series: [{ type: "bar", data: top.map((r) => r.opened), label: { show: true, position: "right", color: TEXT } }],
  });
  const depts = f.by_department.filter((r) => r.key !== "-");
  draw(echarts, "screen-departments", {
    tooltip: {}, grid: { left: 40, right: 16, top: 16, bottom: 60 },
    xAxis: { type: "category", data: depts.map((r) => r.name), ...axisStyle, axisLabel: { color: TEXT, rotate: 30 } },
    yAxis: { type: "value", max: 100, ...axisStyle },
    series: [{ type: "bar", name: t("stat.close_rate"), data: depts.map((r) => r.close_rate ?? 0),
      label: { show: true, position: "top", color: TEXT, formatter: "{c}%" } }],
  });
  const grids = [...f.by_org_unit].sort((a, b) => b.opened - a.opened).slice(0, 10).reverse();
  draw(echarts, "screen-grids", {
    tooltip: {}, grid: { left: 100, right: 30, top: 10, bottom: 24 },
    xAxis: { type: "value", minInterval: 1, ...axisStyle },
    yAxis: { type: "category", data: grids.map((r) => r.name), ...axisStyle },
    series: [{ type: "bar", data: grids.map((r) => r.opened), itemStyle: { color: "#22d3ee" },
      label: { show: true, position: "right", color: TEXT } }],
  });
  draw(echarts, "screen-cameras", {
    series: [{ type: "gauge", min: 0, max: 100, progress: { show: true, width: 12 },
      axisLine: { lineStyle: { width: 12, color: [[1, AXIS]] } }, axisLabel: { color: TEXT, distance: 18 },
      splitLine: { length: 8 }, pointer: { show: false }, title: { color: TEXT, offsetCenter: [0, "70%"] },
      detail: { color: TEXT, formatter: "{value}%", offsetCenter: [0, "10%"] },
      data: [{ value: f.camera_online_rate ?? 0, name: t("screen.camera_online_rate") }] }],
  });
  draw(echarts, "screen-false", {
    tooltip: { trigger: "item" },
    series: [{ type: "pie", radius: "65%", label: { color: TEXT, formatter: "{b} {c}" },
      data: f.false_by_reason.length ? f.false_by_reason.map((r) => ({ name: r.key, value: r.count }))
        : [{ name: t("stat.none"), value: 0, itemStyle: { color: AXIS } }] }],
  });
}

/**
 * @param {Figures} f
 * @param {number | null} liveAlarms  null: the user may not see alarms
 */
function frame(f, liveAlarms) {
  const total = f.total;
  const open = (total.open_green ?? 0) + (total.open_yellow ?? 0) + (total.open_red ?? 0);
  /** @type {[string, string, string][]} */
  const kpis = [
    ["live", t("screen.live_alarms"), liveAlarms === null ? "–" : String(liveAlarms)],
    ["opened", t("screen.opened"), String(total.opened ?? 0)],
    ["open", t("screen.open"), String(open)],
    ["red", t("stat.open_red"), String(total.open_red ?? 0)],
    ["close_rate", t("stat.close_rate"), pct(total.close_rate)],
    ["on_time_rate", t("stat.on_time_rate"), pct(total.on_time_rate)],
    ["satisfaction_rate", t("screen.satisfaction_rate"), pct(total.satisfaction_rate)],
    ["false_alarm_rate", t("screen.false_alarm_rate"), pct(f.false_alarm_rate)],
    ["camera_online_rate", t("screen.camera_online_rate"), pct(f.camera_online_rate)],
  ];
  return html`<div class="screen-head"><h2>${f.site} · ${t("screen.title")}</h2>
      <span>${t("screen.period")} ${f.period.from} – ${f.period.to} · ${f.scope} · ${fmtTime(new Date().toISOString())}</span></div>
    <div class="screen-kpis">${kpis.map(([key, label, value]) => html`<div class="screen-kpi" data-kpi="${key}">
      <span>${label}</span><strong>${value}</strong></div>`)}</div>
    <div class="screen-grid">
      <section class="screen-panel wide"><h3>${t("stat.trend")}</h3><div class="screen-chart" id="screen-trend"></div></section>
      <section class="screen-panel"><h3>${t("screen.lights")}</h3><div class="screen-chart" id="screen-lights"></div></section>
      <section class="screen-panel"><h3>${t("screen.top_categories")}</h3><div class="screen-chart" id="screen-categories"></div></section>
      <section class="screen-panel"><h3>${t("screen.departments")}</h3><div class="screen-chart" id="screen-departments"></div></section>
      <section class="screen-panel"><h3>${t("screen.camera_online_rate")} (${f.cameras_online ?? "–"}/${f.cameras ?? "–"})</h3>
        <div class="screen-chart" id="screen-cameras"></div></section>
      <section class="screen-panel"><h3>${t("screen.false_alarms")} (${f.false_alarms ?? "–"})</h3>
        <div class="screen-chart" id="screen-false"></div></section>
      <section class="screen-panel"><h3>${t("screen.grids")}</h3><div class="screen-chart" id="screen-grids"></div></section>
      <section class="screen-panel wide" id="screen-map-panel" hidden><h3>${t("screen.map")}</h3><div class="screen-map-slot"></div></section>
    </div>`;
}

/** The site on the map, in its panel (none when the library is missing or nothing is placed on the earth). */
async function drawMap() {
  const site = state.site;
  const panel = document.getElementById("screen-map-panel");
  if (!site || !panel) return;
  const geographic = Boolean(site.map?.tiles || site.plan?.bounds || site.devices.some((d) => d.lat != null));
  if (!geographic || !(await libraryState().catch(() => ({ ok: false }))).ok) return;
  panel.hidden = false;
  panel.querySelector(".screen-map-slot")?.append(mapBox);
  const L = await loadLeaflet();
  if (geo && geoLang !== document.documentElement.lang) { geo.remove(); geo = null; }
  if (!geo) {
    geo = new GeoMap(L, mapBox, site.map || { tiles: null, center: null, zoom: 15 },
      { device: (id) => { open("map", id).catch(report); }, case: (id) => { open("cases", id).catch(report); } });
    geoLang = document.documentElement.lang;
  }
  geo.resize();
  await fillGeo(geo, site);
}

function stop() {
  if (timer) clearInterval(timer);
  timer = null;
  if (stream) stream();
  stream = null;
  charts.forEach((c) => c.dispose());
  charts.clear();
}

async function renderScreen() {
  const echarts = await loadECharts();
  if (!echarts) {
    stop();
    render($("screen-body"), html`<p class="screen-missing">${t("screen.no_echarts")} ${installHint()}</p>`);
    return;
  }
  await loadSite().catch(() => null); // the days fall back to the browser's calendar without it
  const days = lastDays();
  const [figures, alarms] = await Promise.all([
    /** @type {Promise<Figures>} */ (api(`/api/reports/monthly?format=json&from=${days[0]}&to=${days[days.length - 1]}`)),
    /** @type {Promise<{ total: number } | null>} */ (may("alarms:read")
      ? api("/api/alarms?state=active_unack&state=active_ack&limit=1") : Promise.resolve(null)),
  ]);
  charts.forEach((c) => c.dispose());
  charts.clear();
  render($("screen-body"), frame(figures, alarms?.total ?? null));
  drawAll(echarts, figures);
  drawMap().catch(report); // the map's layers load on their own: the charts and the alarm stream do not wait
  if (may("alarms:read")) follow();
  if (!timer) {
    timer = setInterval(() => {
      if (state.view !== "screen") { stop(); return; }
      renderScreen().catch(report);
    }, REFRESH_MS);
  }
}

window.addEventListener("resize", () => charts.forEach((c) => c.resize()));

register("screen", { refresh: renderScreen, reset: stop });
