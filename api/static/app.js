// SharpEye console: a small module with no build step. Chinese first; English by a switch.
const I18N = {
  zh: { title: "SharpEye 综治指挥台", alarms: "报警", cases: "案件", devices: "设备", login: "登录", username: "用户名",
        password: "密码", signin: "登录", severity: "级别", alarm: "报警", place: "位置", state: "状态", count: "次数",
        last_seen: "最近", case_no: "编号", title_col: "标题", stage: "阶段", department: "部门", created: "创建",
        name: "名称", kind: "类型", messages: "消息", errors: "错误", ack: "确认", bad_login: "用户名或密码错误",
        active_unack: "未确认", active_ack: "已确认", cleared_unack: "已恢复未确认", cleared: "已恢复",
        critical: "一级", major: "二级", minor: "三级", warning: "四级",
        reported: "上报", accepted: "立案", dispatched: "派遣", handling: "处置", feedback: "反馈", verifying: "核查",
        closed: "结案", cancelled: "注销", parked: "挂账", online: "在线", offline: "离线", unknown: "未知", lang: "English" },
  en: { title: "SharpEye command console", alarms: "Alarms", cases: "Cases", devices: "Devices", login: "Sign in",
        username: "Username", password: "Password", signin: "Sign in", severity: "Severity", alarm: "Alarm",
        place: "Place", state: "State", count: "Count", last_seen: "Last seen", case_no: "Case", title_col: "Title",
        stage: "Stage", department: "Department", created: "Created", name: "Name", kind: "Kind", messages: "Messages",
        errors: "Errors", ack: "Acknowledge", bad_login: "Wrong username or password",
        active_unack: "active, unacknowledged", active_ack: "active, acknowledged", cleared_unack: "cleared, unacknowledged",
        cleared: "cleared", critical: "critical", major: "major", minor: "minor", warning: "warning",
        reported: "reported", accepted: "accepted", dispatched: "dispatched", handling: "handling", feedback: "feedback",
        verifying: "verifying", closed: "closed", cancelled: "cancelled", parked: "parked", online: "online",
        offline: "offline", unknown: "unknown", lang: "中文" },
};
let lang = localStorage.getItem("sharpeye.lang") || "zh";
let token = sessionStorage.getItem("sharpeye.token");
let view = "alarms";
const t = (key) => I18N[lang][key] ?? key;
const fmt = (iso) => iso ? new Date(iso).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB", { timeZone: "Asia/Shanghai" }) : "";
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

function applyLang() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  document.getElementById("lang").textContent = t("lang");
}

async function api(path, options = {}) {
  const res = await fetch(path, { ...options, headers: { ...(options.headers || {}), Authorization: `Bearer ${token}` } });
  if (res.status === 401) { logout(); throw new Error("unauthorised"); }
  if (!res.ok) throw new Error(`${res.status} ${await res.text()}`);
  return res.status === 204 ? null : res.json();
}

function logout() {
  token = null; sessionStorage.removeItem("sharpeye.token");
  document.getElementById("login").hidden = false; document.getElementById("nav").hidden = true;
  document.querySelectorAll(".view").forEach((v) => { v.hidden = true; });
}

function show(name) {
  view = name;
  document.querySelectorAll(".view").forEach((v) => { v.hidden = v.id !== name; });
  document.querySelectorAll("nav button").forEach((b) => b.classList.toggle("active", b.dataset.view === name));
  refresh();
}

async function refresh() {
  if (!token) return;
  if (view === "alarms") {
    const page = await api("/api/alarms?limit=200");
    document.getElementById("alarm-rows").innerHTML = page.items.map((a) => `
      <tr class="state-${a.state}" data-alarm="${esc(a.id)}">
        <td><span class="sev sev-${a.severity}">${t(a.severity)}</span></td><td>${esc(a.title)}</td>
        <td>${esc(a.place)}</td><td>${t(a.state)}</td><td>${a.count}</td><td>${fmt(a.last_seen)}</td>
        <td>${a.state.endsWith("unack") ? `<button data-ack="${esc(a.id)}">${t("ack")}</button>` : ""}</td>
      </tr>`).join("");
  } else if (view === "cases") {
    const page = await api("/api/cases?limit=200");
    document.getElementById("case-rows").innerHTML = page.items.map((c) => `
      <tr><td>${esc(c.id)}</td><td>${esc(c.title)}</td><td>${t(c.stage)}</td><td>${esc(c.department)}</td>
      <td>${fmt(c.created_at)}</td></tr>`).join("");
  } else if (view === "devices") {
    const devices = await api("/api/devices");
    document.getElementById("device-rows").innerHTML = devices.map((d) => `
      <tr><td>${esc(d.id)}</td><td>${esc(d.name)}</td><td>${esc(d.kind)}</td><td>${t(d.state)}</td>
      <td>${fmt(d.last_seen)}</td><td>${d.messages}</td><td>${d.errors}</td></tr>`).join("");
  }
}

document.getElementById("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const body = new URLSearchParams(new FormData(ev.target));
  const res = await fetch("/api/auth/token", { method: "POST", body });
  if (!res.ok) { document.getElementById("login-error").textContent = t("bad_login"); return; }
  token = (await res.json()).access_token; sessionStorage.setItem("sharpeye.token", token);
  start();
});
document.getElementById("lang").addEventListener("click", () => {
  lang = lang === "zh" ? "en" : "zh"; localStorage.setItem("sharpeye.lang", lang); applyLang(); refresh();
});
document.getElementById("nav").addEventListener("click", (ev) => { if (ev.target.dataset.view) show(ev.target.dataset.view); });
document.getElementById("alarm-rows").addEventListener("click", async (ev) => {
  const id = ev.target.dataset.ack;
  if (id) { await api(`/api/alarms/${encodeURIComponent(id)}/acknowledge`, { method: "POST" }); refresh(); }
});

function start() {
  document.getElementById("login").hidden = true; document.getElementById("nav").hidden = false; show(view);
}
applyLang();
if (token) start();
setInterval(() => { refresh().catch(() => {}); }, 2000);
