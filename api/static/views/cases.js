// @ts-check
// Cases: the list with its traffic lights and deadlines, the detail with its history, the actions the caller's
// role may take at this stage (each posts {"action", "note"} to /api/cases/<id>/actions) and the merge proposals
// (并单). Stage, action and history labels are the hub's (governance), served by GET /api/labels.
// Hubs above hubs (GET /api/hierarchy): a hub with an upper hub offers 上报上级 on an open case and shows how the
// escalation stands; a hub with lower hubs lists the cases they escalated (下级上报) above its case list.
import { api, session } from "../api.js";
import { html, render } from "../html.js";
import { fmtDuration, fmtTime, t } from "../i18n/index.js";
import { open, register } from "../nav.js";
import { loadSite, state } from "../state.js";
import { $, closest, report, toast } from "../ui.js";

/** @typedef {import("../types.js").Case} Case */
/** @typedef {import("../types.js").CaseDetail} CaseDetail */

/** @param {string} permission */
export const can = (permission) => Boolean(session.user?.permissions?.includes(permission));

/**
 * @typedef {object} Escalated a case of this hub sent to the upper hub
 * @property {string} case_id
 * @property {string} at
 * @property {string} by
 * @property {string} reason
 * @property {boolean} sent its first message is queued for the upper hub
 * @property {string | null} upper_case the upper hub's case, once the upper hub has acted on it
 * @property {string | null} upper_stage
 * @property {boolean} closed
 */
/**
 * @typedef {object} Hierarchy
 * @property {string | null} upper
 * @property {string[]} lowers
 * @property {Escalated[]} escalated
 * @property {{ case_id: string, site: string, lower_case: string }[]} linked cases opened here for lower hubs
 */

/** @type {Case[]} */
let cases = [];
const ENDED = ["closed", "cancelled", "merged", "parked"];
/** @type {Hierarchy | null} */
let hierarchy = null; // null: not read (or not readable); a hub without hubs above or below has no upper, no lowers

async function loadHierarchy() {
  if (!can("cases:read")) { hierarchy = null; return; }
  try { hierarchy = await api("/api/hierarchy"); }
  catch (err) { hierarchy = null; report(err); }
}

async function loadCases() {
  await loadSite();
  const [page] = await Promise.all([api("/api/cases?limit=200"), loadHierarchy()]);
  cases = page.items;
  renderCases();
  renderInbox();
}

/** The upper hub's inbox: the cases lower hubs escalated here, newest case number first. */
function renderInbox() {
  let box = document.getElementById("hub-inbox");
  const linked = hierarchy?.lowers.length ? hierarchy.linked : [];
  if (!box) {
    if (!linked.length) return;
    box = document.createElement("div");
    box.id = "hub-inbox";
    $("case-rows").closest(".split")?.before(box);
  }
  const stageOf = (/** @type {string} */ id) => cases.find((c) => c.id === id)?.stage;
  const rows = [...linked].reverse().map((l) => {
    const stage = stageOf(l.case_id);
    return html`<tr data-inbox-case="${l.case_id}"><td><a href="#" data-case-link="${l.case_id}">${l.case_id}</a></td>
      <td>${l.site}</td><td>${l.lower_case}</td><td>${stage ? t(`stage.${stage}`) : ""}</td></tr>`;
  });
  render(box, linked.length ? html`<details open><summary>${t("ui.hub_inbox")} (${linked.length})</summary>
    <table class="hub-inbox"><thead><tr><th>${t("ui.case_no")}</th><th>${t("ui.lower_hub")}</th>
      <th>${t("ui.lower_case")}</th><th>${t("ui.stage")}</th></tr></thead><tbody>${rows}</tbody></table></details>` : html``);
}

/**
 * How a case escalated from here stands: sent, taken by the upper hub (its case and stage), closed.
 * @param {Escalated} e
 */
function escalationState(e) {
  if (e.closed) return { key: "closed", text: t("ui.escalation_closed") };
  if (e.upper_case) {
    const stage = e.upper_stage ? t(`stage.${e.upper_stage}`) : "";
    return { key: "acknowledged", text: `${t("ui.escalation_acknowledged")}: ${e.upper_case}${stage ? ` (${stage})` : ""}` };
  }
  return e.sent ? { key: "sent", text: t("ui.escalation_sent") } : { key: "sending", text: t("ui.escalation_sending") };
}

/** @param {string | null} id */
const departmentName = (id) => (id ? state.departments.get(id) || id : "");

// 批量立案/派遣: cases ticked in the list (kept across the list's redraws), acted on by POST /api/cases/bulk
const BULK_STAGES = ["reported", "accepted"];
/** @type {Set<string>} */
const chosen = new Set();
/** @param {Case} c */
const bulkable = (c) => can("cases:act") && BULK_STAGES.includes(c.stage);

function renderBulk() {
  for (const id of [...chosen]) if (!cases.some((c) => c.id === id && bulkable(c))) chosen.delete(id);
  const bar = $("case-bulk");
  bar.hidden = chosen.size === 0;
  render(/** @type {HTMLElement} */ (bar.querySelector(".bulk-count")), html`${t("ui.bulk_chosen")} ${chosen.size}`);
  const all = /** @type {HTMLInputElement} */ ($("case-select-all"));
  const candidates = cases.filter(bulkable);
  all.disabled = candidates.length === 0;
  all.checked = candidates.length > 0 && candidates.every((c) => chosen.has(c.id));
  all.title = t("ui.bulk_select_all");
}

/** @param {"accept" | "dispatch"} action */
async function bulk(action) {
  const ids = [...chosen];
  if (!ids.length || !confirm(`${t(action === "accept" ? "ui.bulk_accept" : "ui.bulk_dispatch")}: ${ids.length}`)) return;
  /** @type {{ id: string, ok: boolean, stage: string | null, department: string | null, reason: string }[]} */
  const outcomes = await api("/api/cases/bulk", { method: "POST", json: { action, ids, note: "" } });
  const refused = outcomes.filter((o) => !o.ok);
  chosen.clear();
  toast(`${t(action === "accept" ? "ui.bulk_accept" : "ui.bulk_dispatch")}: ${outcomes.length - refused.length} ${t("ui.bulk_done")}` +
    (refused.length ? `, ${refused.length} ${t("ui.bulk_refused")}` : ""));
  render($("case-bulk-result"), refused.length ? html`<p>${t("ui.bulk_refused")}:</p><ul class="bulk-refused">${refused.map((o) =>
    html`<li data-refused="${o.id}"><a href="#" data-case-link="${o.id}">${o.id}</a>: <span class="reason">${o.reason}</span></li>`)}</ul>` : html``);
  await loadCases();
}

function renderCases() {
  const now = Date.now();
  render($("case-rows"), html`${cases.map((c) => html`
    <tr data-case="${c.id}"><td>${bulkable(c) ? html`<input type="checkbox" data-choose="${c.id}" ${chosen.has(c.id) ? "checked" : ""}>` : ""}</td>
      <td><i class="light light-${c.light || "none"}" title="${c.light ? t(`light.${c.light}`) : ""}"></i></td>
      <td>${c.id}</td><td>${c.title}</td><td>${t(`stage.${c.stage}`)}</td>
      <td>${departmentName(c.department)}</td>
      <td class="${c.due_at && Date.parse(c.due_at) < now ? "overdue" : ""}">${c.due_at ? fmtDuration(Date.parse(c.due_at) - now) : ""}</td>
      <td>${fmtTime(c.created_at)}</td></tr>`)}`);
  renderBulk();
}

/** Redraw the deadlines every second (they count down). */
export function tick() {
  if (state.view === "cases" && cases.length) renderCases();
}

/** @param {string} id */
async function openCase(id) {
  /** @type {CaseDetail} */
  const { case: c, history, actions } = await api(`/api/cases/${encodeURIComponent(id)}`);
  // merging needs a target: it is offered beside each merge proposal below, not as a bare button
  const buttons = (actions || []).filter((a) => a !== "merge")
    .map((a, i) => html`${i ? " " : ""}<button data-case-act="${a}">${t(`action.${a}`)}</button>`);
  document.querySelectorAll("#case-rows tr").forEach((r) => {
    if (r instanceof HTMLElement) r.classList.toggle("selected", r.dataset.case === id);
  });
  const escalated = hierarchy?.escalated.find((e) => e.case_id === id);
  const linked = hierarchy?.linked.find((l) => l.case_id === id);
  const mayEscalate = Boolean(hierarchy?.upper) && !escalated && can("cases:act") && !ENDED.includes(c.stage);
  const standing = escalated ? escalationState(escalated) : null;
  const pane = $("case-detail");
  pane.dataset.case = id;
  render(pane, html`
    <h2><i class="light light-${c.light || "none"}"></i> ${c.id}</h2>
    <dl class="facts"><dt>${t("ui.title_col")}</dt><dd>${c.title}</dd>
      <dt>${t("ui.category")}</dt><dd>${t(`category.${c.category}`)}</dd>
      <dt>${t("ui.stage")}</dt><dd class="case-stage">${t(`stage.${c.stage}`)}</dd>
      <dt>${t("ui.department")}</dt><dd>${departmentName(c.department)}</dd>
      ${(c.assists || []).length ? html`<dt>${t("action.assist")}</dt><dd>${(c.assists || []).map((a) =>
        html`<span class="assist">${departmentName(a.department)}${a.done_at ? html`：${a.note}` : ` (${t("ui.assist_pending")})`}</span> `)}</dd>` : ""}
      <dt>${t("ui.deadline")}</dt><dd>${c.due_at ? `${fmtTime(c.due_at)} (${fmtDuration(Date.parse(c.due_at) - Date.now())})` : ""}</dd>
      <dt>${t("ui.alarms")}</dt><dd>${c.alarm_ids.map((a, i) => html`${i ? ", " : ""}<a href="#" data-alarm-link="${a}">${a}</a>`)}</dd>
      ${linked ? html`<dt>${t("ui.lower_hub")}</dt><dd class="escalated-from">${linked.site} ${linked.lower_case}</dd>` : ""}</dl>
    ${buttons.length ? html`<p class="actions">${buttons}</p>` : html`<p class="muted">${t("ui.case_actions_note")}</p>`}
    ${mayEscalate ? html`<p class="actions"><button data-escalate-up>${t("ui.escalate_up")}</button></p>` : ""}
    <div class="attachments"></div>
    <div class="merge-box"></div>
    <h3>${t("ui.case_history")}</h3>
    ${escalated && standing ? html`<p class="escalation" data-escalation="${standing.key}">${t("ui.escalate_up")}: ${standing.text}
      <span class="muted">${fmtTime(escalated.at)} ${escalated.by}</span></p>` : ""}
    <table class="history"><thead><tr><th>${t("ui.at")}</th><th>${t("ui.action")}</th><th>${t("ui.actor")}</th><th>${t("ui.stage")}</th><th>${t("ui.note")}</th></tr></thead>
    <tbody>${history.map((h) => html`<tr class="${h.actor.startsWith("hub:") ? "from-hub" : ""}"><td>${fmtTime(h.at)}</td><td>${t(`case_event.${h.action}`)}</td><td>${h.actor}</td>
      <td>${h.from_stage ? `${t(`stage.${h.from_stage}`)} → ` : ""}${t(`stage.${h.to_stage}`)}</td><td>${h.note}</td></tr>`)}</tbody></table>`);
  const files = pane.querySelector(".attachments");
  if (files) await renderAttachments(files, id);
  const box = pane.querySelector(".merge-box");
  if (!c.stage || ENDED.includes(c.stage) || !box) return;
  await renderMergeProposals(box, id, (actions || []).includes("merge"));
}

/**
 * The case's photos and voice notes (reports from the field and residents), each fetched only when looked at or
 * played (every download is audited).
 * @param {Element} box
 * @param {string} caseId
 */
async function renderAttachments(box, caseId) {
  /** @type {{ id: string, media_type: string, filename: string }[]} */
  const files = await api(`/api/cases/${encodeURIComponent(caseId)}/photos`);
  if (!files.length) { render(box, html``); return; }
  const url = (/** @type {string} */ id) => `/api/cases/${encodeURIComponent(caseId)}/photos/${encodeURIComponent(id)}`;
  render(box, html`<h3>${t("ui.attachments")}</h3><div class="case-files">${files.map((f) => f.media_type.startsWith("audio/")
    ? html`<figure class="voice-note"><audio controls preload="none" src="${url(f.id)}"></audio><figcaption>${t("ui.voice_note")}</figcaption></figure>`
    : html`<a href="${url(f.id)}" target="_blank" rel="noopener"><img loading="lazy" alt="${f.filename}" src="${url(f.id)}"></a>`)}</div>`);
}

/**
 * Open cases of the same matter nearby, each with a button to merge into it when ``mayMerge`` (the detail lists
 * "merge" among the actions the caller may take at this stage).
 * @param {Element} box
 * @param {string} caseId
 * @param {boolean} mayMerge
 */
async function renderMergeProposals(box, caseId, mayMerge) {
  /** @type {{ target: string, title: string, stage: string, distance_m: number | null, gap_hours: number }[]} */
  const proposals = await api(`/api/cases/${encodeURIComponent(caseId)}/merge-proposals`);
  if (!proposals.length) { render(box, html``); return; }
  const rows = proposals.map((p) => html`
    <tr data-proposal="${p.target}"><td><a href="#" data-case-link="${p.target}">${p.target}</a></td>
      <td>${p.title}</td><td>${t(`stage.${p.stage}`)}</td>
      <td class="num">${p.distance_m == null ? t("ui.same_grid") : `${Math.round(p.distance_m)} m`}</td>
      <td class="num">${p.gap_hours}</td>
      <td class="actions">${mayMerge ? html`<button data-merge-into="${p.target}">${t("ui.merge_into")}</button>` : ""}</td></tr>`);
  render(box, html`<h3>${t("ui.merge_proposals")}</h3>
    <table class="merge-proposals"><thead><tr><th>${t("ui.case_no")}</th><th>${t("ui.title_col")}</th><th>${t("ui.stage")}</th>
      <th>${t("ui.distance")}</th><th>${t("ui.gap_hours")}</th><th></th></tr></thead><tbody>${rows}</tbody></table>`);
}

/**
 * @param {string} caseId
 * @param {string} target
 */
async function mergeInto(caseId, target) {
  if (!confirm(`${t("ui.merge_confirm")} ${caseId} → ${target}`)) return false;
  await api(`/api/cases/${encodeURIComponent(caseId)}/merge`, { method: "POST", json: { target, note: "" } });
  return true;
}

/** Reload the list and the open case after something changed it. */
export async function reloadCases() {
  await loadCases();
  const id = $("case-detail").dataset.case;
  if (id) await openCase(id);
}

document.getElementById("cases")?.addEventListener("click", (ev) => {
  const link = closest(ev, "#hub-inbox [data-case-link]");
  if (link) { ev.preventDefault(); openCase(link.dataset.caseLink || "").catch(report); }
});
$("case-rows").addEventListener("click", (ev) => {
  const box = closest(ev, "input[data-choose]");
  if (box instanceof HTMLInputElement) {
    if (box.checked) chosen.add(box.dataset.choose || ""); else chosen.delete(box.dataset.choose || "");
    renderBulk(); return;
  }
  const r = closest(ev, "tr[data-case]");
  if (r) openCase(r.dataset.case || "").catch(report);
});
$("case-detail").addEventListener("click", async (ev) => {
  const id = $("case-detail").dataset.case || "";
  const b = closest(ev, "[data-case-act]");
  if (b) {
    const action = b.dataset.caseAct;
    // 协办: the co-handling departments, by id, comma-separated
    const departments = action === "assist" ? (prompt(t("ui.assist_departments")) ?? "").split(/[,，\s]+/).filter(Boolean) : [];
    const note = prompt(t("ui.case_note")) ?? "";
    try { await api(`/api/cases/${encodeURIComponent(id)}/actions`, { method: "POST", json: { action, note, departments } }); }
    catch (err) { report(err); }
    await loadCases(); await openCase(id); return;
  }
  if (closest(ev, "[data-escalate-up]")) {
    const reason = (prompt(t("ui.escalate_reason")) ?? "").trim();
    if (!reason) return; // the upper hub needs to know why; cancelled or empty: nothing sent
    try {
      await api(`/api/cases/${encodeURIComponent(id)}/escalate-up`, { method: "POST", json: { reason } });
      toast(`${t("ui.escalated_toast")}: ${id}`);
    } catch (err) { report(err); }
    await loadCases(); await openCase(id); return;
  }
  const merge = closest(ev, "[data-merge-into]");
  if (merge) {
    const target = merge.dataset.mergeInto || "";
    try { if (await mergeInto(id, target)) toast(`${t("ui.merged_toast")}: ${id} → ${target}`); }
    catch (err) { report(err); }
    await loadCases(); await openCase(id); return;
  }
  const caseLink = closest(ev, "[data-case-link]");
  if (caseLink) { ev.preventDefault(); openCase(caseLink.dataset.caseLink || "").catch(report); return; }
  const link = closest(ev, "[data-alarm-link]");
  if (link) { ev.preventDefault(); open("alarms", link.dataset.alarmLink || "").catch(report); }
});

$("case-select-all").addEventListener("change", (ev) => {
  const on = ev.target instanceof HTMLInputElement && ev.target.checked;
  for (const c of cases.filter(bulkable)) { if (on) chosen.add(c.id); else chosen.delete(c.id); }
  renderCases();
});
$("case-bulk").addEventListener("click", (ev) => {
  const b = closest(ev, "button[data-bulk]");
  if (!b) return;
  if (b.dataset.bulk === "clear") { chosen.clear(); renderCases(); return; }
  bulk(b.dataset.bulk === "accept" ? "accept" : "dispatch").catch(report);
});
$("case-bulk-result").addEventListener("click", (ev) => {
  const link = closest(ev, "[data-case-link]");
  if (link) { ev.preventDefault(); openCase(link.dataset.caseLink || "").catch(report); }
});
register("cases", { refresh: loadCases, open: openCase, reset: () => { hierarchy = null; } });
export { openCase };
