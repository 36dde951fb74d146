// Statistics: the centre's indicators (DOMAIN.md definitions, computed by the hub), trends, class-case clusters,
// CSV export. Plain SVG charts, no library.
import { api } from "./api.js";
import { esc, fmtTime, t } from "./i18n.js";

const COLUMNS = ["opened", "due", "closed", "closed_on_time", "close_rate", "on_time_rate", "avg_handling_h",
  "returns", "extensions", "reworks", "parked", "open_green", "open_yellow", "open_red"];

function table(rows, key, names) {
  const head = `<tr><th>${t("stat_" + key)}</th>${COLUMNS.map((c) => `<th>${t("stat_" + c)}</th>`).join("")}</tr>`;
  const label = (v) => (key === "category" ? t(v) : names.get(v) || v);
  const body = rows.map((r) => `<tr><td>${esc(label(r[key]))}</td>${COLUMNS.map((c) =>
    `<td class="num">${r[c] ?? ""}${c.endsWith("rate") && r[c] != null ? "%" : ""}</td>`).join("")}</tr>`).join("");
  return `<table class="stats"><thead>${head}</thead><tbody>${body}</tbody></table>`;
}

function bars(rows, key, value, names) {
  const width = 520; const rowH = 24; const max = Math.max(1, ...rows.map((r) => r[value] || 0));
  const items = rows.map((r, i) => {
    const w = Math.round(((r[value] || 0) / max) * (width - 190));
    return `<text x="0" y="${i * rowH + 16}" class="bar-label">${esc(names.get(r[key]) || r[key])}</text>
      <rect x="170" y="${i * rowH + 4}" width="${w}" height="16" class="bar"></rect>
      <text x="${176 + w}" y="${i * rowH + 16}" class="bar-value">${r[value] ?? 0}${value.endsWith("rate") ? "%" : ""}</text>`;
  }).join("");
  return `<svg class="chart" viewBox="0 0 ${width} ${rows.length * rowH + 8}" role="img">${items}</svg>`;
}

function trend(rows) {
  if (!rows.length) return `<p class="muted">${t("stat_none")}</p>`;
  const w = 520; const h = 140; const max = Math.max(1, ...rows.map((r) => r.opened || 0));
  const step = rows.length > 1 ? (w - 40) / (rows.length - 1) : 0;
  const pts = (field) => rows.map((r, i) => `${20 + i * step},${h - 20 - ((r[field] || 0) / max) * (h - 40)}`).join(" ");
  return `<svg class="chart" viewBox="0 0 ${w} ${h}" role="img">
    <polyline points="${pts("opened")}" class="line-opened"></polyline>
    <polyline points="${pts("closed")}" class="line-closed"></polyline>
    <text x="20" y="12" class="legend-opened">${t("stat_opened")}</text><text x="90" y="12" class="legend-closed">${t("stat_closed")}</text>
    <text x="20" y="${h - 4}" class="bar-label">${esc(rows[0].period)}</text>
    <text x="${w - 20}" y="${h - 4}" text-anchor="end" class="bar-label">${esc(rows[rows.length - 1].period)}</text></svg>`;
}

async function download(query, name) {
  const res = await fetch(`/api/stats?${query}&format=csv`, { credentials: "same-origin" });
  const url = URL.createObjectURL(await res.blob());
  const a = document.createElement("a"); a.href = url; a.download = name; a.click(); URL.revokeObjectURL(url);
}

export async function renderStats(root, names) {
  const [total, byDept, byUnit, byCat, byDay, clusters] = await Promise.all([
    api("/api/stats"), api("/api/stats?by=department"), api("/api/stats?by=org_unit"), api("/api/stats?by=category"),
    api("/api/stats?by=period&period=day"), api("/api/stats/clusters?days=90&min_size=2"),
  ]);
  const all = total[0] || {};
  root.innerHTML = `
    <div class="kpis">
      <div class="kpi"><span>${t("stat_close_rate")}</span><strong>${all.close_rate ?? "–"}%</strong></div>
      <div class="kpi"><span>${t("stat_on_time_rate")}</span><strong>${all.on_time_rate ?? "–"}%</strong></div>
      <div class="kpi"><span>${t("stat_opened")}</span><strong>${all.opened ?? 0}</strong></div>
      <div class="kpi"><span>${t("stat_open_red")}</span><strong class="red">${all.open_red ?? 0}</strong></div>
    </div>
    <h3>${t("stat_trend")}</h3>${trend(byDay)}
    <h3>${t("stat_by_department")} <button data-csv="by=department">CSV</button></h3>
    ${bars(byDept, "department", "close_rate", names)}${table(byDept, "department", names)}
    <h3>${t("stat_by_org_unit")} <button data-csv="by=org_unit">CSV</button></h3>${table(byUnit, "org_unit", names)}
    <h3>${t("stat_by_category")} <button data-csv="by=category">CSV</button></h3>${table(byCat, "category", names)}
    <h3>${t("stat_clusters")}</h3>
    ${clusters.length ? `<table class="stats"><thead><tr><th>${t("stat_category")}</th><th>${t("stat_cases")}</th>
      <th>${t("stat_org_unit")}</th><th>${t("stat_first")}</th><th>${t("stat_last")}</th></tr></thead><tbody>
      ${clusters.map((c) => `<tr><td>${esc(t(c.category))}</td><td class="num">${c.members.length}</td>
        <td>${c.org_units.map((u) => esc(names.get(u) || u)).join("、")}</td><td>${fmtTime(c.first)}</td>
        <td>${fmtTime(c.last)}</td></tr>`).join("")}</tbody></table>` : `<p class="muted">${t("stat_no_clusters")}</p>`}`;
  root.querySelectorAll("[data-csv]").forEach((b) => b.addEventListener("click", () =>
    download(b.dataset.csv, `sharpeye-${b.dataset.csv.replace("by=", "")}.csv`)));
}
