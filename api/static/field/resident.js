// @ts-check
// The residents' report page (群众随手拍, no account): prove the phone number with a one-time code (SMS) or a
// captcha, report with photos and position, keep the receipt number, follow the case and rate it once closed.
import { h, fill } from "./dom.js";
import { t } from "./i18n.js";
import { downscale } from "./photo.js";

/**
 * @typedef {{ sms: boolean, categories: string[], units: { id: string, name: string }[],
 *   photo_max_bytes: number, photos_per_request: number }} PublicConfig
 * @typedef {{ id: string, kind: string, image: string | null, expires_in_s: number }} Challenge
 * @typedef {{ case_id: string, title: string, category: string, stage: string, stage_label: string,
 *   created_at: string, closed_at: string | null, satisfaction: string | null, may_rate: boolean,
 *   progress: { at: string, action: string, label: string }[] }} PublicCase
 */

const root = /** @type {HTMLElement} */ (document.getElementById("app"));

/** @type {Record<string, string>} */
const WORDS = {
  title: "群众随手拍", intro: "发现问题随手拍，人人都是网格员。无需注册，凭手机号上报。",
  phone: "手机号", get_code: "获取验证码", sms_sent: "验证码已发送到您的手机", code: "验证码",
  captcha: "请输入图中字符", new_captcha: "换一张", grid: "所在网格", choose_grid: "请选择",
  describe: "问题描述", describe_hint: "请描述问题和具体地点", use_position: "附上当前位置", submit: "提交上报",
  receipt: "回执号", keep_receipt: "请保存回执号，用于查询办理进度和评价。", follow: "查询办理进度",
  lookup: "查询", progress: "办理进度", rate: "评价办理结果", satisfied: "满意", basic: "基本满意",
  unsatisfied: "不满意", comment: "意见（选填）", rated: "感谢您的评价", need_phone: "请填写正确的手机号",
  need_challenge: "请先获取验证码", need_fields: "请选择类别、网格并填写描述", retry_in: "秒后可重试",
};

/**
 * @param {Response} res
 * @returns {Promise<string>}
 */
async function reason(res) {
  const body = await res.json().catch(() => null);
  const detail = body && body.detail;
  let text = typeof detail === "string" ? detail
    : Array.isArray(detail) ? detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ") : `HTTP ${res.status}`;
  const wait = res.headers.get("Retry-After");
  if (res.status === 429 && wait) text += ` (${wait} ${WORDS.retry_in})`;
  return text;
}

/** @returns {Promise<{ lat: number, lon: number } | null>} */
function locate() {
  return new Promise((resolve) => {
    if (!navigator.geolocation) { resolve(null); return; }
    navigator.geolocation.getCurrentPosition((p) => resolve({ lat: p.coords.latitude, lon: p.coords.longitude }),
      () => resolve(null), { enableHighAccuracy: true, timeout: 10000, maximumAge: 60000 });
  });
}

/** @param {PublicConfig} config */
function reportForm(config) {
  /** @type {Challenge | null} */
  let challenge = null;
  let category = "";
  /** @type {Blob[]} */
  let photos = [];
  /** @type {{ lat: number, lon: number } | null} */
  let position = null;
  const error = h("p", { class: "error", role: "alert", "data-testid": "report-error" });
  const phone = /** @type {HTMLInputElement} */ (h("input", { name: "phone", type: "tel", inputmode: "numeric", maxlength: 11, autocomplete: "tel" }));
  const answer = /** @type {HTMLInputElement} */ (h("input", { name: "answer", autocomplete: "one-time-code", maxlength: 8 }));
  const challengeBox = h("div", { class: "challenge" });
  let asked = 0; // the newest request's number: an older answer arriving late changes nothing
  const ask = async () => {
    if (!/^1[3-9]\d{9}$/.test(phone.value)) { fill(error, WORDS.need_phone); return; }
    const mine = ++asked;
    const res = await fetch("/api/public/challenges", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ phone: phone.value }) });
    if (mine !== asked) return;
    if (!res.ok) { fill(error, await reason(res)); return; }
    fill(error);
    challenge = await res.json();
    const c = /** @type {Challenge} */ (challenge);
    fill(challengeBox, c.kind === "sms" ? h("p", { class: "muted", "data-testid": "sms-sent" }, WORDS.sms_sent)
      : h("div", { class: "captcha" }, h("img", { src: c.image || "", alt: WORDS.captcha, "data-testid": "captcha" }),
        h("button", { type: "button", onclick: ask }, WORDS.new_captcha)),
    h("label", {}, c.kind === "sms" ? WORDS.code : WORDS.captcha, answer));
  };
  const chips = h("div", { class: "chips", role: "radiogroup" }, config.categories.map((c) =>
    h("button", { type: "button", role: "radio", "aria-checked": "false", "data-category": c, onclick: (/** @type {Event} */ e) => {
      category = c;
      for (const b of chips.querySelectorAll("button")) b.setAttribute("aria-checked", String(b === e.currentTarget));
    } }, t(`category.${c}`))));
  const grid = /** @type {HTMLSelectElement} */ (h("select", { name: "org_unit" }, h("option", { value: "" }, WORDS.choose_grid),
    config.units.map((u) => h("option", { value: u.id }, u.name))));
  const text = /** @type {HTMLTextAreaElement} */ (h("textarea", { name: "description", rows: 3, maxlength: 2000, placeholder: WORDS.describe_hint }));
  const thumbs = h("div", { class: "thumbs" });
  const file = /** @type {HTMLInputElement} */ (h("input", { type: "file", name: "photos", accept: "image/*", capture: "environment", multiple: true,
    onchange: async () => {
      for (const f of Array.from(file.files || [])) if (photos.length < config.photos_per_request) photos.push(await downscale(f));
      file.value = "";
      fill(thumbs, photos.map((p) => h("img", { src: URL.createObjectURL(p), alt: "" })));
    } }));
  const where = h("p", { class: "where", "data-testid": "position" });
  const useWhere = /** @type {HTMLInputElement} */ (h("input", { type: "checkbox", name: "use_position", onchange: async () => {
    position = useWhere.checked ? await locate() : null;
    fill(where, position ? `${position.lat.toFixed(5)}, ${position.lon.toFixed(5)}` : "");
  } }));
  const result = h("section", { id: "receipt" });
  const form = h("form", { class: "report", onsubmit: async (/** @type {Event} */ e) => {
    e.preventDefault();
    if (!challenge) { fill(error, WORDS.need_challenge); return; }
    if (!category || !grid.value || !text.value.trim()) { fill(error, WORDS.need_fields); return; }
    const body = new FormData();
    const fields = { phone: phone.value, challenge_id: challenge.id, answer: answer.value, category, org_unit: grid.value,
      description: text.value, ...(position ? { lat: position.lat.toFixed(6), lon: position.lon.toFixed(6) } : {}) };
    for (const [k, v] of Object.entries(fields)) body.append(k, v);
    photos.forEach((p, n) => body.append("photos", p, `photo-${n + 1}.jpg`));
    const res = await fetch("/api/public/reports", { method: "POST", body });
    challenge = null; // spent, right or wrong
    fill(challengeBox);
    answer.value = "";
    if (!res.ok) { fill(error, await reason(res)); return; }
    fill(error);
    const made = await res.json();
    photos = []; fill(thumbs); text.value = "";
    fill(result, h("h2", {}, WORDS.receipt), h("p", { class: "receipt", "data-testid": "receipt" }, made.receipt),
      h("p", { class: "muted" }, WORDS.keep_receipt));
    localStorage.setItem("resident-receipt", made.receipt);
    const follow = document.querySelector("input[name=receipt]");
    if (follow instanceof HTMLInputElement) follow.value = made.receipt;
  } },
  h("label", {}, WORDS.phone, phone),
  h("button", { type: "button", "data-action": "challenge", onclick: ask }, WORDS.get_code),
  challengeBox,
  h("h2", {}, t("category")), chips,
  h("label", {}, WORDS.grid, grid),
  h("label", {}, WORDS.describe, text),
  h("label", { class: "camera" }, t("take_photo"), file), thumbs,
  h("label", { class: "inline" }, useWhere, WORDS.use_position), where,
  h("button", { type: "submit", class: "primary big" }, WORDS.submit), error);
  return h("div", {}, form, result);
}

function followForm() {
  const receipt = /** @type {HTMLInputElement} */ (h("input", { name: "receipt", autocomplete: "off", value: localStorage.getItem("resident-receipt") || "" }));
  const out = h("div", { "data-testid": "follow" });
  /** @param {string} path @param {RequestInit} [init] */
  const show = async (path, init) => {
    const res = await fetch(path, init);
    if (!res.ok) { fill(out, h("p", { class: "error", role: "alert" }, await reason(res))); return; }
    /** @type {PublicCase} */
    const c = await res.json();
    const comment = /** @type {HTMLInputElement} */ (h("input", { name: "comment", maxlength: 500 }));
    const rateUrl = `/api/public/receipts/${encodeURIComponent(receipt.value.trim())}/rating`;
    const rate = (/** @type {string} */ value) => show(rateUrl, { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ satisfaction: value, comment: comment.value }) });
    fill(out,
      h("p", {}, h("strong", { "data-testid": "stage" }, c.stage_label), ` · ${c.case_id} · ${c.title}`),
      h("ol", { class: "history" }, c.progress.map((e) => h("li", {}, `${new Date(e.at).toLocaleString()} ${e.label}`))),
      c.satisfaction && h("p", { "data-testid": "rated" }, `${WORDS.rated}：${WORDS[c.satisfaction] || c.satisfaction}`),
      c.may_rate && h("div", { class: "rating" }, h("h3", {}, WORDS.rate),
        h("label", {}, WORDS.comment, comment),
        ["satisfied", "basic", "unsatisfied"].map((v) => h("button", { type: "button", "data-rate": v, onclick: () => rate(v) }, WORDS[v]))));
  };
  return h("section", { class: "follow" }, h("h2", {}, WORDS.follow),
    h("form", { onsubmit: (/** @type {Event} */ e) => { e.preventDefault(); show(`/api/public/receipts/${encodeURIComponent(receipt.value.trim())}`); } },
      h("label", {}, WORDS.receipt, receipt), h("button", { type: "submit", "data-action": "lookup" }, WORDS.lookup)),
    out);
}

async function start() {
  const res = await fetch("/api/public/config").catch(() => null);
  if (!res || !res.ok) { fill(root, h("p", { class: "error" }, res ? await reason(res) : "网络不可用")); return; }
  /** @type {PublicConfig} */
  const config = await res.json();
  fill(root, h("main", {}, h("h1", {}, WORDS.title), h("p", { class: "muted" }, WORDS.intro), reportForm(config), followForm()));
}

start();
