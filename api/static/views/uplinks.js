// @ts-check
// The uplinks (webhooks to other systems): pending deliveries, dead letters, and replay for roles that may.
import { api } from "../api.js";
import { html, render } from "../html.js";
import { fmtTime, t } from "../i18n/index.js";
import { register } from "../nav.js";
import { $, closest, report, toast } from "../ui.js";
import { can } from "./cases.js";

/**
 * @typedef {object} Uplink
 * @property {string} id
 * @property {string} url
 * @property {string[]} events
 * @property {number} pending
 * @property {number} dead
 * @property {number} delivered_recently
 */
/** @typedef {{ id: string, dead_at: string, body?: { type?: string }, attempts: number, error: string }} DeadLetter */

async function renderUplinks() {
  const box = $("uplinks-body");
  /** @type {Uplink[]} */
  const uplinks = await api("/api/uplinks");
  if (!uplinks.length) { render(box, html`<p class="muted">${t("ui.no_uplinks")}</p>`); return; }
  const mayReplay = can("devices:write");
  const parts = await Promise.all(uplinks.map(async (u) => {
    /** @type {DeadLetter[]} */
    const letters = await api(`/api/uplinks/${encodeURIComponent(u.id)}/dead-letters?limit=200`);
    const rows = letters.map((d) => html`
      <tr data-letter="${d.id}"><td>${fmtTime(d.dead_at)}</td><td>${d.body?.type ?? ""}</td>
        <td><code>${d.id}</code></td><td class="num">${d.attempts}</td><td>${d.error}</td>
        <td class="actions">${mayReplay ? html`<button data-replay="${d.id}">${t("ui.replay")}</button>` : ""}</td></tr>`);
    return html`<section class="uplink" data-uplink="${u.id}">
      <h3>${u.id} <span class="muted">${u.url}</span></h3>
      <dl class="facts"><dt>${t("ui.uplink_events")}</dt><dd>${u.events.map((e) => t(`uplink_event.${e}`)).join(", ")}</dd>
        <dt>${t("ui.uplink_pending")}</dt><dd class="uplink-pending">${u.pending}</dd>
        <dt>${t("ui.uplink_dead")}</dt><dd class="uplink-dead">${u.dead}</dd>
        <dt>${t("ui.uplink_delivered")}</dt><dd>${u.delivered_recently}</dd></dl>
      ${mayReplay && letters.length ? html`<p class="actions"><button data-replay-all>${t("ui.replay_all")}</button></p>` : ""}
      ${letters.length ? html`<table class="dead-letters"><thead><tr><th>${t("ui.dead_at")}</th><th>${t("ui.kind")}</th>
        <th>${t("ui.delivery")}</th><th>${t("ui.attempts")}</th><th>${t("ui.last_error")}</th><th></th></tr></thead>
        <tbody>${rows}</tbody></table>` : html`<p class="muted">${t("ui.no_dead_letters")}</p>`}
    </section>`;
  }));
  render(box, html`${parts}`);
}

/**
 * @param {string} uplinkId
 * @param {string[] | null} ids  null: every dead letter
 * @returns {Promise<number>}
 */
async function replay(uplinkId, ids) {
  const done = await api(`/api/uplinks/${encodeURIComponent(uplinkId)}/dead-letters/replay`,
    { method: "POST", json: { ids } });
  return done.replayed;
}

$("uplinks-body").addEventListener("click", async (ev) => {
  const one = closest(ev, "[data-replay]"); const all = closest(ev, "[data-replay-all]");
  const uplink = closest(ev, "[data-uplink]")?.dataset.uplink;
  if ((!one && !all) || !uplink) return;
  try {
    const n = await replay(uplink, one ? [one.dataset.replay || ""] : null);
    toast(`${t("ui.replayed")}: ${n}`);
  } catch (err) { report(err); }
  await renderUplinks().catch(report);
});

register("uplinks", { refresh: renderUplinks });
