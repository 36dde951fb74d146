// @ts-check
// The field app's words: Chinese first, English when the phone asks for it (or the user picks it).

/** @type {Record<string, Record<string, string>>} */
const WORDS = {
  zh: {
    app: "网格通", sign_in: "登录", username: "账号", password: "密码", wrong_login: "账号或密码错误",
    throttled: "尝试次数过多，请稍后再试", must_change: "首次登录请先设置新密码（至少10位）", new_password_title: "设置新密码", new_password: "新密码",
    confirm_password: "再次输入新密码", save: "保存", password_mismatch: "两次输入的密码不一致", no_field_role: "此账号没有移动端权限",
    tab_report: "上报", tab_tasks: "任务", tab_patrol: "巡查", tab_me: "我的",
    category: "类别", description: "情况描述", description_hint: "简要说明发现的问题", photos: "现场照片",
    push_title: "任务提醒", push_on: "开启任务提醒", push_off: "关闭任务提醒", push_is_on: "新任务会通知到这部手机",
    push_not_sent: "本平台未配置任务提醒（请联系管理员）", push_unsupported: "此浏览器不支持通知", push_denied: "通知已被手机拒绝，请在浏览器设置中允许",
    push_failed: "开启失败",
    take_photo: "拍照 / 选图", voice_note: "语音备注", voice_record: "录音", voice_stop: "停止录音",
    voice_recording: "正在录音…（最长60秒）", voice_failed: "无法录音", voice_unsupported: "此浏览器不支持录音", position: "位置", locating: "正在定位…", no_position: "未获取位置",
    accuracy: "精度", submit_report: "一键上报", queued: "已保存，联网后自动发送", sent: "已上报",
    outbox: "待发送", outbox_empty: "没有待发送的内容", failed: "发送失败", delete: "删除", retry: "重试",
    offline: "当前离线：上报会先保存在手机上", online: "在线", recent: "最近上报", case_no: "案件编号",
    open_tasks: "待办任务", done_tasks: "已办任务", no_tasks: "暂无任务", refresh: "刷新", back: "返回",
    claim: "签收", feedback: "反馈", feedback_note: "处置结果", feedback_hint: "说明处置情况",
    submit_feedback: "提交反馈", due: "期限", history: "处置记录", stage: "阶段",
    start_patrol: "开始巡查", end_patrol: "结束巡查", patrolling: "巡查中", points: "轨迹点",
    distance: "里程", patrol_note: "巡查情况", patrol_started: "巡查已开始", patrol_ended: "巡查已结束",
    need_online: "需要联网", user: "用户", role: "角色", unit: "网格", sign_out: "退出登录", language: "English",
    need_category: "请选择类别", need_note: "请填写处置结果", meters: "米",
    "stage.dispatched": "待签收", "stage.handling": "处置中", "stage.feedback": "已反馈", "stage.verifying": "核查中",
    "stage.closed": "已结案", "light.green": "正常", "light.yellow": "临期", "light.red": "超期",
    "role.grid_worker": "网格员", "role.handler": "处置人员", "role.department_handler": "部门处置员",
    "role.admin": "管理员", "role.operator": "值班员", "role.supervisor": "主管",
    "category.perimeter_intrusion": "周界入侵", "category.illegal_construction": "违法建设",
    "category.city_appearance": "市容环境", "category.public_security": "社会治安", "category.dispute": "矛盾纠纷",
    "category.fire": "火灾隐患", "category.flood": "汛情", "category.device_fault": "设备故障",
    "category.environment": "生态环境",
    "action.report": "上报", "action.accept": "立案", "action.dispatch": "派遣", "action.claim": "签收",
    "action.feedback": "反馈", "action.verify": "核查", "action.pass_check": "核查通过", "action.fail_check": "返工",
    "action.return": "回退", "action.reassign": "改派", "action.assist": "协办", "action.assist_feedback": "协办反馈",
    "action.supervise": "督办", "action.notified": "已通知", "action.request_extension": "申请延期",
    "action.approve_extension": "批准延期", "action.reject_extension": "驳回延期", "action.park": "挂账",
    "action.reopen": "重办", "action.rate": "评价",
  },
  en: {
    app: "Grid field app", sign_in: "Sign in", username: "User name", password: "Password",
    wrong_login: "Wrong user name or password", throttled: "Too many attempts; try again later",
    must_change: "Choose a new password first (10+ characters)", new_password_title: "New password",
    new_password: "New password", confirm_password: "Repeat it", save: "Save", password_mismatch: "The passwords differ", no_field_role: "This account has no field rights",
    tab_report: "Report", tab_tasks: "Tasks", tab_patrol: "Patrol", tab_me: "Me",
    category: "Category", description: "Description", description_hint: "What did you find?", photos: "Photos",
    push_title: "Task notifications", push_on: "Turn on task notifications", push_off: "Turn off task notifications",
    push_is_on: "New tasks are notified on this phone", push_not_sent: "This hub sends no task notifications (ask the admin)",
    push_unsupported: "This browser cannot notify", push_denied: "Notifications are blocked in the browser's settings",
    push_failed: "Could not turn on",
    take_photo: "Take / pick photos", voice_note: "Voice note", voice_record: "Record", voice_stop: "Stop",
    voice_recording: "Recording… (60 s at most)", voice_failed: "Cannot record", voice_unsupported: "This browser cannot record", position: "Position", locating: "Locating…", no_position: "No position",
    accuracy: "accuracy", submit_report: "Report", queued: "Saved; sent when online", sent: "Reported",
    outbox: "Waiting to send", outbox_empty: "Nothing waiting", failed: "Refused", delete: "Delete", retry: "Retry",
    offline: "Offline: reports are kept on the phone", online: "Online", recent: "Recent reports", case_no: "Case",
    open_tasks: "Open tasks", done_tasks: "Done", no_tasks: "No tasks", refresh: "Refresh", back: "Back",
    claim: "Sign for", feedback: "Feedback", feedback_note: "Result", feedback_hint: "What was done",
    submit_feedback: "Send feedback", due: "Due", history: "History", stage: "Stage",
    start_patrol: "Start patrol", end_patrol: "End patrol", patrolling: "On patrol", points: "points",
    distance: "distance", patrol_note: "Notes", patrol_started: "Patrol started", patrol_ended: "Patrol ended",
    need_online: "Needs the network", user: "User", role: "Role", unit: "Grid", sign_out: "Sign out", language: "中文",
    need_category: "Pick a category", need_note: "Write the result", meters: "m",
  },
};

/** @returns {"zh" | "en"} */
export function lang() {
  const chosen = localStorage.getItem("field-lang");
  if (chosen === "zh" || chosen === "en") return chosen;
  return "zh";
}

/**
 * The word for ``key`` in the current language (Chinese, then the key itself, when missing).
 * @param {string} key
 * @returns {string}
 */
export function t(key) {
  return WORDS[lang()][key] || WORDS.zh[key] || key.replace(/^[a-z]+\./, "");
}
