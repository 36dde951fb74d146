// @ts-check
// The 12345 hotline import in the cases view. The chosen file is sent as it is (CSV or JSON by its name); a dry
// run shows what would be created and every rejected row with its reason, and only then is the import button
// offered for that same file.
import { api } from "../api.js";
import { html, render } from "../html.js";
import { t } from "../i18n/index.js";
import { placeNames } from "../state.js";
import { $, closest, report } from "../ui.js";
import { openCase, reloadCases } from "./cases.js";

/** @type {{ dryRunOf: File | null }} */
const importState = { dryRunOf: null };

/** @param {File} file */
function formatOf(file) {
  return /\.json$/i.test(file.name) || file.type === "application/json" ? "json" : "csv";
}

/**
 * @typedef {object} ImportResult
 * @property {{ row: number, ticket: string, title: string, category: string, org_unit: string,
 *   department: string, case_id: string | null }[]} created
 * @property {{ row: number, ticket: string | null, reason: string }[]} rejected
 */

/**
 * @param {HTMLElement} form the <details> holding the form and its result
 * @param {boolean} dryRun
 */
async function runImport(form, dryRun) {
  const input = form.querySelector("input[type=file]");
  const out = form.querySelector(".import-result");
  const run = form.querySelector("[data-import=run]");
  if (!(input instanceof HTMLInputElement) || !out || !(run instanceof HTMLButtonElement)) return;
  const file = input.files?.[0];
  if (!file) { render(out, html`<p class="error">${t("ui.import_choose")}</p>`); return; }
  if (!dryRun && importState.dryRunOf !== file) { render(out, html`<p class="error">${t("ui.import_dry_first")}</p>`); return; }
  const format = formatOf(file);
  /** @type {ImportResult} */
  let result;
  try {
    result = await api(`/api/reports/import?format=${format}&dry_run=${dryRun}`, {
      method: "POST", body: file, headers: { "Content-Type": format === "json" ? "application/json" : "text/csv" },
    });
  } catch (err) { render(out, html`<p class="error">${String(err)}</p>`); return; }
  importState.dryRunOf = dryRun ? file : null;
  run.disabled = !dryRun || !result.created.length;
  const names = placeNames();
  const created = result.created.map((p) => html`<tr><td class="num">${p.row}</td><td>${p.ticket}</td>
    <td>${p.title}</td><td>${t(`category.${p.category}`)}</td><td>${names.get(p.org_unit) || p.org_unit}</td>
    <td>${names.get(p.department) || p.department}</td>
    <td>${p.case_id ? html`<a href="#" data-case-link="${p.case_id}">${p.case_id}</a>` : ""}</td></tr>`);
  const rejected = result.rejected.map((r) => html`<tr><td class="num">${r.row}</td><td>${r.ticket ?? ""}</td>
    <td class="reason">${r.reason}</td></tr>`);
  render(out, html`
    <p class="import-summary">${dryRun ? t("ui.import_would") : t("ui.import_done")}: ${result.created.length} ·
      ${t("ui.import_rejected")}: ${result.rejected.length}</p>
    ${created.length ? html`<table class="import-created"><thead><tr><th>${t("ui.row")}</th><th>${t("ui.ticket")}</th>
      <th>${t("ui.title_col")}</th><th>${t("ui.category")}</th><th>${t("ui.grid")}</th><th>${t("ui.department")}</th>
      <th>${t("ui.case_no")}</th></tr></thead><tbody>${created}</tbody></table>` : ""}
    ${rejected.length ? html`<h4>${t("ui.import_rejected")}</h4><table class="import-rejected"><thead><tr><th>${t("ui.row")}</th>
      <th>${t("ui.ticket")}</th><th>${t("ui.reason")}</th></tr></thead><tbody>${rejected}</tbody></table>` : ""}`);
  if (!dryRun) await reloadCases();
}

/** @param {HTMLElement} form */
function resetImport(form) {
  importState.dryRunOf = null;
  const run = form.querySelector("[data-import=run]");
  if (run instanceof HTMLButtonElement) run.disabled = true;
  const out = form.querySelector(".import-result");
  if (out) render(out, html``);
}

$("import-form").addEventListener("click", (ev) => {
  const b = closest(ev, "[data-import]");
  if (b) runImport($("hotline-import"), b.dataset.import === "dry").catch(report);
});
$("import-form").addEventListener("change", () => resetImport($("hotline-import")));
$("hotline-import").addEventListener("click", (ev) => {
  const link = closest(ev, "[data-case-link]");
  if (link) { ev.preventDefault(); openCase(link.dataset.caseLink || "").catch(report); }
});
