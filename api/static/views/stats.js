// @ts-check
// Statistics: the centre's indicators (DOMAIN.md definitions, computed by the hub), trends, class-case clusters,
// CSV export, and the monthly report (导出月报: XLSX or PDF). Charts by ECharts when the hub has it installed
// (`sharpeye assets install`), else plain SVG.
import { api } from "../api.js";
import { echarts } from "../charts.js";
import { html, render } from "../html.js";
import { fmtTime, t } from "../i18n/index.js";
import { register } from "../nav.js";
import { deviceName, loadSite, placeNames, state } from "../state.js";
import { $, closest, report } from "../ui.js";

/** @typedef {Record<string, any>} Row one line of /api/stats: the grouping key and the indicators */

const COLUMNS = ["opened", "due", "closed", "closed_on_time", "close_rate", "on_time_rate", "avg_handling_h",
  "returns", "extensions", "reworks", "parked", "open_green", "open_yellow", "open_red"];

/**
 * @param {Row[]} rows
 * @param {string} key
 * @param {Map<string, string>} names
 */
function table(rows, key, names) {
  /** @param {string} v */
  const label = (v) => (key === "category" ? t(`category.${v}`) : names.get(v) || v);
  return html`<table class="stats"><thead><tr><th>${t(`stat.${key}`)}</th>${COLUMNS.map((c) => html`<th>${t(`stat.${c}`)}</th>`)}</tr></thead>
    <tbody>${rows.map((r) => html`<tr><td>${label(r[key])}</td>${COLUMNS.map((c) =>
    html`<td class="num">${r[c] ?? ""}${c.endsWith("rate") && r[c] != null ? "%" : ""}</td>`)}</tr>`)}</tbody></table>`;
}

/**
 * @param {Row[]} rows
 * @param {string} key
 * @param {string} value
 * @param {Map<string, string>} names
 */
function bars(rows, key, value, names) {
  const width = 520; const rowH = 24; const max = Math.max(1, ...rows.map((r) => r[value] || 0));
  const items = rows.map((r, i) => {
    const w = Math.round(((r[value] || 0) / max) * (width - 190));
    return html`<text x="0" y="${i * rowH + 16}" class="bar-label">${names.get(r[key]) || r[key]}</text>
      <rect x="170" y="${i * rowH + 4}" width="${w}" height="16" class="bar"></rect>
      <text x="${176 + w}" y="${i * rowH + 16}" class="bar-value">${r[value] ?? 0}${value.endsWith("rate") ? "%" : ""}</text>`;
  });
  return html`<svg class="chart" viewBox="0 0 ${width} ${rows.length * rowH + 8}" role="img">${items}</svg>`;
}

/** @param {Row[]} rows */
function trend(rows) {
  if (!rows.length) return html`<p class="muted">${t("stat.none")}</p>`;
  const w = 520; const h = 140; const max = Math.max(1, ...rows.map((r) => r.opened || 0));
  const step = rows.length > 1 ? (w - 40) / (rows.length - 1) : 0;
  /** @param {string} field */
  const pts = (field) => rows.map((r, i) => `${20 + i * step},${h - 20 - ((r[field] || 0) / max) * (h - 40)}`).join(" ");
  return html`<svg class="chart" viewBox="0 0 ${w} ${h}" role="img">
    <polyline points="${pts("opened")}" class="line-opened"></polyline>
    <polyline points="${pts("closed")}" class="line-closed"></polyline>
    <text x="20" y="12" class="legend-opened">${t("stat.opened")}</text><text x="90" y="12" class="legend-closed">${t("stat.closed")}</text>
    <text x="20" y="${h - 4}" class="bar-label">${rows[0].period}</text>
    <text x="${w - 20}" y="${h - 4}" text-anchor="end" class="bar-label">${rows[rows.length - 1].period}</text></svg>`;
}

/** @type {import("../charts.js").Chart[]} */
let drawn = [];

/**
 * Every day from the first to the last of ``rows`` (at least a week, ending on the last), zero where none: a single
 * day of cases is then a peak against the days before it, not a lone dot.
 * @param {Row[]} rows  by=period&period=day, keys YYYY-MM-DD
 * @returns {{ day: string, opened: number, closed: number }[]}
 */
function everyDay(rows) {
  if (!rows.length) return [];
  const found = new Map(rows.map((r) => [r.period, r]));
  const [first, last] = [rows[0].period, rows[rows.length - 1].period].map((d) => Date.parse(`${d}T00:00:00Z`));
  const start = Math.min(first, last - 6 * 86_400_000);
  const out = [];
  for (let at = start; at <= last; at += 86_400_000) {
    const day = new Date(at).toISOString().slice(0, 10);
    out.push({ day, opened: found.get(day)?.opened ?? 0, closed: found.get(day)?.closed ?? 0 });
  }
  return out;
}

/**
 * The trend and the departments' close rates drawn by ECharts in place of the SVG ones, when it is installed.
 * @param {Row[]} byDay
 * @param {Row[]} byDept
 * @param {Map<string, string>} names
 */
async function drawCharts(byDay, byDept, names) {
  const lib = await echarts().catch(() => null);
  const trendEl = document.getElementById("stats-trend"); const deptEl = document.getElementById("stats-dept");
  if (!lib || !trendEl || !deptEl) return;
  const css = getComputedStyle(document.documentElement);
  const text = css.getPropertyValue("--text").trim(); const muted = css.getPropertyValue("--muted").trim();
  const axis = { axisLine: { lineStyle: { color: muted } }, axisLabel: { color: text },
    splitLine: { lineStyle: { color: muted, opacity: 0.3 } } };
  const days = everyDay(byDay);
  if (days.length) {
    trendEl.replaceChildren(); trendEl.style.height = "220px";
    const chart = lib.init(trendEl);
    chart.setOption({
      animation: false, textStyle: { color: text }, tooltip: { trigger: "axis" },
      legend: { top: 0, textStyle: { color: text } }, grid: { left: 40, right: 16, top: 30, bottom: 28 },
      xAxis: { type: "category", data: days.map((d) => d.day), ...axis },
      yAxis: { type: "value", minInterval: 1, ...axis },
      series: [{ name: t("stat.opened"), type: "line", showAllSymbol: true, data: days.map((d) => d.opened) },
        { name: t("stat.closed"), type: "line", showAllSymbol: true, data: days.map((d) => d.closed) }],
    });
    drawn.push(chart);
  }
  if (byDept.length) {
    deptEl.replaceChildren(); deptEl.style.height = `${Math.max(120, byDept.length * 32 + 40)}px`;
    const chart = lib.init(deptEl);
    chart.setOption({
      animation: false, textStyle: { color: text }, tooltip: {}, grid: { left: 130, right: 50, top: 10, bottom: 24 },
      xAxis: { type: "value", max: 100, ...axis },
      yAxis: { type: "category", data: byDept.map((r) => names.get(r.department) || r.department), ...axis },
      series: [{ name: t("stat.close_rate"), type: "bar", data: byDept.map((r) => r.close_rate ?? 0),
        label: { show: true, position: "right", color: text, formatter: "{c}%" } }],
    });
    drawn.push(chart);
  }
}

/**
 * @param {string} query
 * @param {string} name
 */
async function download(query, name) {
  const res = await fetch(`/api/stats?${query}&format=csv`, { credentials: "same-origin" });
  const url = URL.createObjectURL(await res.blob());
  const a = document.createElement("a"); a.href = url; a.download = name; a.click(); URL.revokeObjectURL(url);
}

/** The current month as YYYY-MM of the site's calendar (site.timezone, whatever the browser's). */
function thisMonth() {
  const zone = state.site?.timezone;
  return new Intl.DateTimeFormat("en-CA", { timeZone: zone, year: "numeric", month: "2-digit" }).format(new Date());
}

/**
 * 导出月报: the month's report (XLSX or PDF) from the hub, saved as a file; a refusal is shown with its reason.
 * @param {string} month YYYY-MM
 * @param {string} format xlsx or pdf
 */
async function downloadReport(month, format) {
  const res = await fetch(`/api/reports/monthly?month=${encodeURIComponent(month)}&format=${format}`,
    { credentials: "same-origin" });
  if (!res.ok) {
    /** @type {{ detail?: unknown }} */
    const body = await res.json().catch(() => ({}));
    throw new Error(`${t("stat.report_failed")}: ${typeof body.detail === "string" ? body.detail : res.status}`);
  }
  const url = URL.createObjectURL(await res.blob());
  const a = document.createElement("a"); a.href = url; a.download = `月报-${month}.${format}`; a.click();
  URL.revokeObjectURL(url);
}

/** @typedef {{ category: string, members: string[], org_units: string[], first: string, last: string }} Cluster */
/** @typedef {{ total: number, items: { key: string, count: number }[] }} FalseAlarms */

/**
 * False alarms (误报, judged in 研判) counted one way: which camera, rule, zone or hour to fix.
 * @param {FalseAlarms} stats
 * @param {(key: string) => string} label
 */
function falseTable(stats, label) {
  if (!stats.items.length) return html`<p class="muted">${t("stat.none")}</p>`;
  return html`<table class="stats"><tbody>${stats.items.slice(0, 10).map((i) => html`<tr><td>${label(i.key)}</td>
    <td class="num">${i.count}</td></tr>`)}</tbody></table>`;
}

/** @typedef {{ key: string, confirmed: number, false_alarms: number, precision: number }} Precision */

/**
 * The operators' verdicts per camera (研判 accuracy, #18): confirmed, false, precision; least precise first. Its own
 * block, appended below the rest of the view.
 */
async function renderPrecision() {
  /** @type {{ precision: number | null, items: Precision[] }} */
  const stats = await api("/api/stats/precision?by=camera");
  /** @param {number | null} p */
  const pct = (p) => (p == null ? "–" : `${Math.round(p * 1000) / 10}%`);
  const box = document.createElement("section");
  box.className = "precision";
  render(box, html`<h3>${t("stat.precision")} ${pct(stats.precision)}</h3>
    ${stats.items.length ? html`<table class="stats"><thead><tr><th>${t("stat.by_camera")}</th>
      <th>${t("stat.verdict_confirmed")}</th><th>${t("stat.verdict_false")}</th><th>${t("stat.precision_rate")}</th></tr>
      </thead><tbody>${stats.items.slice(0, 20).map((i) => html`<tr><td>${deviceName(i.key)}</td>
      <td class="num">${i.confirmed}</td><td class="num">${i.false_alarms}</td>
      <td class="num">${pct(i.precision)}</td></tr>`)}</tbody></table>` : html`<p class="muted">${t("stat.none")}</p>`}`);
  $("stats-body").querySelector("section.precision")?.remove(); // a refresh that overlapped this one
  $("stats-body").append(box);
}

async function renderStats() {
  await loadSite();
  const names = placeNames();
  /** @type {[Row[], Row[], Row[], Row[], Row[], Cluster[], FalseAlarms, FalseAlarms, FalseAlarms, FalseAlarms]} */
  const [total, byDept, byUnit, byCat, byDay, clusters, falseCam, falseRule, falseHour, falseReason] = await Promise.all([
    api("/api/stats"), api("/api/stats?by=department"), api("/api/stats?by=org_unit"), api("/api/stats?by=category"),
    api("/api/stats?by=period&period=day"), api("/api/stats/clusters?days=90&min_size=2"),
    api("/api/stats/false-alarms?by=camera"), api("/api/stats/false-alarms?by=rule"),
    api("/api/stats/false-alarms?by=hour"), api("/api/stats/false-alarms?by=reason"),
  ]);
  const all = total[0] || {};
  drawn.forEach((c) => c.dispose()); drawn = [];
  const chosen = /** @type {HTMLInputElement | null} */ (document.getElementById("report-month"))?.value || thisMonth();
  render($("stats-body"), html`
    <div class="report-bar"><label>${t("stat.report_month")}
      <input type="month" id="report-month" value="${chosen}" max="${thisMonth()}"></label>
      <button data-report="xlsx">${t("stat.report")} (XLSX)</button>
      <button data-report="pdf">${t("stat.report")} (PDF)</button></div>
    <div class="kpis">
      <div class="kpi"><span>${t("stat.close_rate")}</span><strong>${all.close_rate ?? "–"}%</strong></div>
      <div class="kpi"><span>${t("stat.on_time_rate")}</span><strong>${all.on_time_rate ?? "–"}%</strong></div>
      <div class="kpi"><span>${t("stat.opened")}</span><strong>${all.opened ?? 0}</strong></div>
      <div class="kpi"><span>${t("stat.open_red")}</span><strong class="red">${all.open_red ?? 0}</strong></div>
    </div>
    <h3>${t("stat.trend")}</h3><div class="stat-chart" id="stats-trend">${trend(byDay)}</div>
    <h3>${t("stat.by_department")} <button data-csv="by=department">CSV</button></h3>
    <div class="stat-chart" id="stats-dept">${bars(byDept, "department", "close_rate", names)}</div>${table(byDept, "department", names)}
    <h3>${t("stat.by_org_unit")} <button data-csv="by=org_unit">CSV</button></h3>${table(byUnit, "org_unit", names)}
    <h3>${t("stat.by_category")} <button data-csv="by=category">CSV</button></h3>${table(byCat, "category", names)}
    <h3>${t("stat.clusters")}</h3>
    ${clusters.length ? html`<table class="stats"><thead><tr><th>${t("stat.category")}</th><th>${t("stat.cases")}</th>
      <th>${t("stat.org_unit")}</th><th>${t("stat.first")}</th><th>${t("stat.last")}</th></tr></thead><tbody>
      ${clusters.map((c) => html`<tr><td>${t(`category.${c.category}`)}</td><td class="num">${c.members.length}</td>
        <td>${c.org_units.map((u) => names.get(u) || u).join("、")}</td><td>${fmtTime(c.first)}</td>
        <td>${fmtTime(c.last)}</td></tr>`)}</tbody></table>` : html`<p class="muted">${t("stat.no_clusters")}</p>`}
    <h3 class="false-alarms">${t("stat.false_alarms")} (${falseCam.total})</h3>
    <div class="false-grid">
      <div><h4>${t("stat.by_camera")}</h4>${falseTable(falseCam, deviceName)}</div>
      <div><h4>${t("stat.by_rule")}</h4>${falseTable(falseRule, (k) => k)}</div>
      <div><h4>${t("stat.by_hour")}</h4>${falseTable(falseHour, (k) => `${k}:00`)}</div>
      <div><h4>${t("stat.by_reason")}</h4>${falseTable(falseReason, (k) => k)}</div>
    </div>`);
  await drawCharts(byDay, byDept, names);
  await renderPrecision();
}

$("stats-body").addEventListener("click", (ev) => {
  const format = closest(ev, "[data-report]")?.dataset.report;
  if (format) {
    const month = /** @type {HTMLInputElement} */ ($("report-month")).value || thisMonth();
    downloadReport(month, format).catch(report);
    return;
  }
  const b = closest(ev, "[data-csv]");
  const query = b?.dataset.csv;
  if (query) download(query, `sharpeye-${query.replace("by=", "")}.csv`).catch(report);
});

register("stats", { refresh: renderStats });
