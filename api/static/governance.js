// Governance panels of the console: merge proposals (并单) in the case detail, the uplinks with their dead letters
// and replay, and the 12345 hotline import (dry run first, then import). Each part is shown only to roles whose
// permissions (from /api/auth/me) let them use it; the hub checks the same permissions on every request.
import { api, session } from "./api.js";
import { esc, fmtTime, t } from "./i18n.js";

export const can = (permission) => Boolean(session.user?.permissions?.includes(permission));

// ---- merge proposals ----------------------------------------------------------------------------------------
// ``mayMerge``: the case detail lists "merge" among the actions the caller may take at this stage.
export async function renderMergeProposals(box, caseId, mayMerge) {
  const proposals = await api(`/api/cases/${encodeURIComponent(caseId)}/merge-proposals`);
  if (!proposals.length) { box.innerHTML = ""; return; }
  const rows = proposals.map((p) => `
    <tr data-proposal="${esc(p.target)}"><td><a href="#" data-case-link="${esc(p.target)}">${esc(p.target)}</a></td>
      <td>${esc(p.title)}</td><td>${t(p.stage)}</td>
      <td class="num">${p.distance_m == null ? t("same_grid") : `${Math.round(p.distance_m)} m`}</td>
      <td class="num">${p.gap_hours}</td>
      <td class="actions">${mayMerge ? `<button data-merge-into="${esc(p.target)}">${t("merge_into")}</button>` : ""}</td></tr>`);
  box.innerHTML = `<h3>${t("merge_proposals")}</h3>
    <table class="merge-proposals"><thead><tr><th>${t("case_no")}</th><th>${t("title_col")}</th><th>${t("stage")}</th>
      <th>${t("distance")}</th><th>${t("gap_hours")}</th><th></th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

export async function mergeInto(caseId, target) {
  if (!confirm(`${t("merge_confirm")} ${caseId} → ${target}`)) return false;
  await api(`/api/cases/${encodeURIComponent(caseId)}/merge`, { method: "POST", json: { target, note: "" } });
  return true;
}

// ---- uplinks --------------------------------------------------------------------------------------------------
export async function renderUplinks(box) {
  const uplinks = await api("/api/uplinks");
  if (!uplinks.length) { box.innerHTML = `<p class="muted">${t("no_uplinks")}</p>`; return; }
  const mayReplay = can("devices:write");
  const parts = await Promise.all(uplinks.map(async (u) => {
    const letters = await api(`/api/uplinks/${encodeURIComponent(u.id)}/dead-letters?limit=200`);
    const rows = letters.map((d) => `
      <tr data-letter="${esc(d.id)}"><td>${fmtTime(d.dead_at)}</td><td>${esc(d.body?.type ?? "")}</td>
        <td><code>${esc(d.id)}</code></td><td class="num">${d.attempts}</td><td>${esc(d.error)}</td>
        <td class="actions">${mayReplay ? `<button data-replay="${esc(d.id)}">${t("replay")}</button>` : ""}</td></tr>`);
    return `<section class="uplink" data-uplink="${esc(u.id)}">
      <h3>${esc(u.id)} <span class="muted">${esc(u.url)}</span></h3>
      <dl class="facts"><dt>${t("uplink_events")}</dt><dd>${u.events.map((e) => t("uplink_" + e)).join(", ")}</dd>
        <dt>${t("uplink_pending")}</dt><dd class="uplink-pending">${u.pending}</dd>
        <dt>${t("uplink_dead")}</dt><dd class="uplink-dead">${u.dead}</dd>
        <dt>${t("uplink_delivered")}</dt><dd>${u.delivered_recently}</dd></dl>
      ${mayReplay && letters.length ? `<p class="actions"><button data-replay-all>${t("replay_all")}</button></p>` : ""}
      ${letters.length ? `<table class="dead-letters"><thead><tr><th>${t("dead_at")}</th><th>${t("kind")}</th>
        <th>${t("delivery")}</th><th>${t("attempts")}</th><th>${t("last_error")}</th><th></th></tr></thead>
        <tbody>${rows.join("")}</tbody></table>` : `<p class="muted">${t("no_dead_letters")}</p>`}
    </section>`;
  }));
  box.innerHTML = parts.join("");
}

export async function replay(uplinkId, ids) {
  const done = await api(`/api/uplinks/${encodeURIComponent(uplinkId)}/dead-letters/replay`,
    { method: "POST", json: { ids } });
  return done.replayed;
}

// ---- 12345 hotline import ---------------------------------------------------------------------------------------
// The chosen file is sent as it is (CSV or JSON by its name); a dry run shows what would be created and every
// rejected row with its reason, and only then is the import button offered for that same file.
const importState = { file: null, dryRunOf: null };

function formatOf(file) {
  return /\.json$/i.test(file.name) || file.type === "application/json" ? "json" : "csv";
}

export async function runImport(form, dryRun, names = new Map()) {
  const file = form.querySelector("input[type=file]").files[0];
  const out = form.querySelector(".import-result");
  if (!file) { out.innerHTML = `<p class="error">${t("import_choose")}</p>`; return; }
  if (!dryRun && importState.dryRunOf !== file) { out.innerHTML = `<p class="error">${t("import_dry_first")}</p>`; return; }
  const format = formatOf(file);
  const result = await api(`/api/reports/import?format=${format}&dry_run=${dryRun}`, {
    method: "POST", body: file, headers: { "Content-Type": format === "json" ? "application/json" : "text/csv" },
  }).catch((err) => ({ error: String(err) }));
  if (result.error) { out.innerHTML = `<p class="error">${esc(result.error)}</p>`; return; }
  importState.dryRunOf = dryRun ? file : null;
  form.querySelector("[data-import=run]").disabled = !dryRun || !result.created.length;
  const created = result.created.map((p) => `<tr><td class="num">${p.row}</td><td>${esc(p.ticket)}</td>
    <td>${esc(p.title)}</td><td>${esc(t(p.category))}</td><td>${esc(names.get(p.org_unit) || p.org_unit)}</td>
    <td>${esc(names.get(p.department) || p.department)}</td>
    <td>${p.case_id ? `<a href="#" data-case-link="${esc(p.case_id)}">${esc(p.case_id)}</a>` : ""}</td></tr>`);
  const rejected = result.rejected.map((r) => `<tr><td class="num">${r.row}</td><td>${esc(r.ticket ?? "")}</td>
    <td class="reason">${esc(r.reason)}</td></tr>`);
  out.innerHTML = `
    <p class="import-summary">${dryRun ? t("import_would") : t("import_done")}: ${result.created.length} ·
      ${t("import_rejected")}: ${result.rejected.length}</p>
    ${created.length ? `<table class="import-created"><thead><tr><th>${t("row")}</th><th>${t("ticket")}</th>
      <th>${t("title_col")}</th><th>${t("category")}</th><th>${t("grid")}</th><th>${t("department")}</th>
      <th>${t("case_no")}</th></tr></thead><tbody>${created.join("")}</tbody></table>` : ""}
    ${rejected.length ? `<h4>${t("import_rejected")}</h4><table class="import-rejected"><thead><tr><th>${t("row")}</th>
      <th>${t("ticket")}</th><th>${t("reason")}</th></tr></thead><tbody>${rejected.join("")}</tbody></table>` : ""}`;
}

export function resetImport(form) {
  importState.dryRunOf = null;
  form.querySelector("[data-import=run]").disabled = true;
  form.querySelector(".import-result").innerHTML = "";
}
