// @ts-check
// SharpEye operator console: ES modules, no build step. This module signs in and out, switches language and view,
// and feeds the live alarm stream to the alarms view; each view is its own module under views/.
import { alarmStream, api, changePassword, login, logout, session } from "./api.js";
import { fmtTime, lang, setLang, t } from "./i18n/index.js";
import { open, refresh, resetAll, show } from "./nav.js";
import { closeAllPlayers, relabelPlayers } from "./player.js";
import { disablePush, enablePush, onOpen, pushState } from "./push.js";
import { muted, setMuted, unlock } from "./sound.js";
import { forget, loadLabels, loadSite, state } from "./state.js";
import { $, closest, report } from "./ui.js";
import { onAlarmChange, relabel } from "./views/alarms.js";
import { can, tick as tickCases } from "./views/cases.js";
import "./views/devices.js";
import "./views/hotline.js";
import "./views/map.js";
import "./views/playback.js";
import "./views/screen.js";
import "./views/stats.js";
import "./views/uplinks.js";
import "./views/wall.js";

/** @type {(() => void) | null} */
let stopStream = null;
const CHROME = ["nav", "link", "mute", "push", "who", "logout"];
/** @type {string} */
let push = "off";

// Parts of the console a role cannot use are hidden (the hub refuses them anyway).
function applyPermissions() {
  document.querySelectorAll("[data-permission]").forEach((el) => {
    if (el instanceof HTMLElement) el.hidden = !can(el.dataset.permission || "");
  });
}

/** @param {string} view */
function viewPermission(view) {
  const button = document.querySelector(`#nav button[data-view="${view}"]`);
  return button instanceof HTMLElement ? button.dataset.permission || "" : "";
}

function firstView() {
  const button = [...document.querySelectorAll("#nav button[data-view]")].find((b) => b instanceof HTMLElement && !b.hidden);
  return button instanceof HTMLElement ? button.dataset.view || "cases" : "cases";
}

function tick() {
  $("clock").textContent = fmtTime(new Date().toISOString());
  tickCases();
}

function renderMute() {
  $("mute").textContent = muted ? t("ui.unsilence") : t("ui.silence"); $("mute").classList.toggle("active", muted);
}

/** @param {string} [problem] */
function renderPush(problem) {
  const b = $("push");
  b.hidden = push === "unsupported" || !can("cases:read");
  b.textContent = t(push === "on" ? "ui.push_on" : push === "denied" ? "ui.push_denied"
    : push === "unavailable" ? "ui.push_unavailable" : "ui.push_off");
  b.classList.toggle("active", push === "on"); b.dataset.state = push;
  if (b instanceof HTMLButtonElement) b.disabled = push === "unavailable"; // no webpush channel names this user
  b.title = problem ? `${t("ui.push_failed")}: ${problem}` : push === "unavailable" ? t("ui.push_unavailable_hint") : "";
}

async function start() {
  $("login").hidden = true;
  for (const id of CHROME) $(id).hidden = false;
  session.user = await api("/api/auth/me");
  $("who").textContent = session.user ? `${session.user.username} (${session.user.role})` : "";
  applyPermissions();
  await Promise.all([loadSite(), loadLabels()]);
  renderMute();
  pushState().then((s) => { push = s; renderPush(); }).catch(report);
  // a role opens on the first view it may use (a department handler: 案件), and hears alarms only if it may read them
  if (!can(viewPermission(state.view))) state.view = firstView();
  $("mute").hidden = $("link").hidden = !can("alarms:read");
  if (can("alarms:read")) stopStream = alarmStream((msg) => { onAlarmChange(msg).catch(report); }, (up) => {
    $("link").className = `link ${up ? "up" : "down"}`; $("link").dataset.up = up ? "1" : "0";
    // changes made while the stream was down (or before it first came up) were not heard: read the view again
    if (up) refresh().catch(report);
  });
  show(state.view);
  if (!following) { following = true; onOpen((view, id) => { open(view, id).catch(report); }); }
}
let following = false;

session.onLogout = () => {
  if (stopStream) stopStream();
  stopStream = null;
  resetAll(); forget();
  $("login").hidden = false; $("password-change").hidden = true;
  for (const id of CHROME) $(id).hidden = true;
  document.querySelectorAll(".view").forEach((v) => { if (v instanceof HTMLElement) v.hidden = true; });
};

/** @param {FormData} form @param {string} name */
const field = (form, name) => String(form.get(name) ?? "");

/** @type {string | null} */
let pendingPassword = null;
$("login").addEventListener("submit", async (ev) => {
  ev.preventDefault(); unlock();
  if (!(ev.target instanceof HTMLFormElement)) return;
  const form = new FormData(ev.target);
  const result = await login(field(form, "username"), field(form, "password"));
  if (!result.ok) { $("login-error").textContent = t(result.throttled ? "ui.too_many" : "ui.bad_login"); return; }
  $("login-error").textContent = "";
  if (result.mustChange) {
    pendingPassword = field(form, "password");
    $("login").hidden = true; $("password-change").hidden = false;
    return;
  }
  start().catch(report);
});
$("password-change").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  if (!(ev.target instanceof HTMLFormElement)) return;
  const form = new FormData(ev.target);
  if (field(form, "new_password") !== field(form, "confirm_password")) { $("password-error").textContent = t("ui.pw_mismatch"); return; }
  const problem = await changePassword(pendingPassword || "", field(form, "new_password"));
  if (problem) { $("password-error").textContent = problem; return; }
  pendingPassword = null; $("password-error").textContent = ""; $("password-change").hidden = true;
  start().catch(report);
});
// the live views end while the session still holds, so the hub frees their feeds at once
$("logout").addEventListener("click", () => { closeAllPlayers().then(logout).catch(report); });
$("lang").addEventListener("click", () => {
  setLang(lang === "zh" ? "en" : "zh"); renderMute(); renderPush(); refresh().catch(report);
  relabel();
  relabelPlayers();
});
$("mute").addEventListener("click", () => { setMuted(!muted); renderMute(); });
$("push").addEventListener("click", () => {
  (push === "on" ? disablePush() : enablePush())
    .then((s) => { push = s; renderPush(); })
    .catch((e) => { push = "off"; renderPush(String(e && e.message || e)); });
});
$("nav").addEventListener("click", (ev) => { const b = closest(ev, "button"); if (b?.dataset.view) show(b.dataset.view); });
document.addEventListener("click", unlock, { once: true });

setLang(lang);
setInterval(tick, 1000); tick();
if (session.signedIn) start().catch(report);
