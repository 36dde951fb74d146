// Chinese first, English by a switch. Times are shown in the site's zone (Asia/Shanghai by default).
const DICT = {
  zh: {
    title: "SharpEye 综治指挥台", alarms: "报警", wall: "视频墙", map: "地图", cases: "案件", devices: "设备",
    stats: "统计", login: "登录", username: "用户名", password: "密码", signin: "登录", logout: "退出",
    bad_login: "用户名或密码错误", too_many: "失败次数过多，请稍后再试", change_password: "请修改初始密码",
    new_password: "新密码", confirm_password: "确认新密码", save: "保存", pw_mismatch: "两次输入的密码不一致", severity: "级别", alarm: "报警", device: "设备", place: "位置", state: "状态",
    count: "次数", first_seen: "首次", last_seen: "最近", actions: "操作", ack: "确认", clear: "清除",
    comment: "备注", open_case: "查看案件", to_wall: "上墙", silence: "静音", unsilence: "取消静音",
    filter_all: "全部", filter_open: "未恢复", filter_unack: "未确认", all_severities: "全部级别",
    active_unack: "未确认", active_ack: "已确认", cleared_unack: "已恢复未确认", cleared: "已恢复",
    critical: "一级", major: "二级", minor: "三级", warning: "四级",
    history: "历史", at: "时间", action: "动作", actor: "操作人", note: "说明", evidence: "证据",
    no_evidence: "暂无抓图或录像", cameras: "关联摄像机", no_cameras: "无关联摄像机", case: "案件",
    no_case: "未生成案件", select_alarm: "选择一条报警查看详情", comment_prompt: "请输入备注",
    raised: "产生", repeated: "重复", acknowledged: "确认", cleared_action: "恢复", commented: "备注",
    case_no: "编号", title_col: "标题", category: "类别", stage: "阶段", department: "部门", deadline: "期限",
    light: "灯", created: "创建", overdue: "已超期", remaining: "剩余", case_history: "办理过程",
    case_actions_note: "办理操作（签收、派遣、反馈、核查、结案）由处置部门在案件模块中执行。",
    reported: "上报", accepted: "立案", dispatched: "派遣", handling: "处置", feedback: "反馈", verifying: "核查",
    closed: "结案", cancelled: "注销", parked: "挂账",
    green: "绿灯", yellow: "黄灯", red: "红灯",
    name: "名称", kind: "类型", grid: "网格", messages: "消息", errors: "错误", last_error: "最近错误",
    online: "在线", offline: "离线", unknown: "未知", deadletters: "死信（被拒绝的消息）", reason: "原因",
    cluster_nodes: "集群节点", node: "节点", started: "启动", weight: "权重", load: "负载", owned: "持有（设备与角色）",
    detail: "详情", origin: "来源", layout: "布局", choose_camera: "选择摄像机", empty_tile: "空闲",
    connecting: "连接中…", live: "实时", failed: "连接失败，重试中", stat_opened: "立案", stat_due: "应结案", stat_closed: "结案", stat_closed_on_time: "按期结案", stat_close_rate: "结案率", stat_on_time_rate: "按期结案率", stat_avg_handling_h: "平均处置时长(小时)", stat_returns: "回退", stat_extensions: "延期", stat_reworks: "返工", stat_parked: "挂账", stat_open_green: "在办绿灯", stat_open_yellow: "在办黄灯", stat_open_red: "在办红灯", stat_department: "部门", stat_org_unit: "区域", stat_category: "类别", stat_period: "时段", stat_trend: "立案与结案趋势（按日）", stat_by_department: "按部门", stat_by_org_unit: "按区域", stat_by_category: "按类别", stat_clusters: "类案分析（近90天）", stat_cases: "案件数", stat_first: "首次", stat_last: "最近", stat_none: "暂无数据", stat_no_clusters: "暂无类案聚集",
    stats_soon: "统计分析（趋势、部门与网格对比、类案聚类、CSV 导出）将随治理模块提供。",
    total: "共", items: "条", legend: "图例", has_alarm: "报警中", site_plan: "场所平面图", close: "关闭",
    new_alarm: "新报警", lang: "English", user: "用户", fence: "周界", camera: "摄像机",
    perimeter_intrusion: "周界入侵", illegal_construction: "违法建设", city_appearance: "市容环境",
    public_security: "社会治安", dispute: "矛盾纠纷", fire: "火灾", flood: "汛情", device_fault: "设备故障",
    thermal: "热成像", water_level: "水位计", shelve: "屏蔽1小时", shelve_prompt: "屏蔽原因（1小时内同类报警不再提示）",
    shelved: "已屏蔽", act_accept: "立案", act_cancel: "注销", act_merge: "并单", act_dispatch: "派遣", act_claim: "签收", act_return: "回退",
    act_reassign: "改派", act_request_extension: "申请延期", act_approve_extension: "批准延期",
    act_reject_extension: "驳回延期", act_feedback: "反馈", act_verify: "核查", act_pass_check: "核查通过",
    act_fail_check: "核查不通过", act_park: "挂账", act_reopen: "重办", case_note: "办理意见",
    environment: "环境保护", live_feeds: "实时视频", viewers: "观看", source: "来源", packets: "数据包", failures: "故障",
    report: "上报", accept: "立案", dispatch: "派遣", merge: "并单", merged_from: "并入", merged: "已并单",
    merge_proposals: "并单建议（同类、相近、时间接近的在办案件）", merge_into: "并入此案", distance: "距离",
    same_grid: "同一网格", gap_hours: "相隔(小时)", merge_confirm: "确认并单：", merged_toast: "已并单",
    uplinks: "数据推送", uplinks_note: "对外推送（Webhook）：待发送、死信及重发", no_uplinks: "未配置对外推送",
    uplink_events: "推送内容", uplink_case: "案件", uplink_alarm: "报警", uplink_pending: "待发送",
    uplink_dead: "死信", uplink_delivered: "近7天已送达", dead_at: "放弃时间", delivery: "投递编号",
    attempts: "尝试次数", no_dead_letters: "没有死信", replay: "重发", replay_all: "全部重发", replayed: "已重发",
    hotline_import: "12345 热线工单导入", import_dry_run: "试导入（不写入）", import_run: "导入",
    import_hint: "CSV（表头可用中文）或 JSON；先试导入查看将创建的案件和被拒绝的行",
    import_choose: "请选择文件", import_dry_first: "请先试导入这个文件", import_would: "将创建",
    import_done: "已创建", import_rejected: "被拒绝", row: "行", ticket: "工单号",
  },
  en: {
    title: "SharpEye command console", alarms: "Alarms", wall: "Video wall", map: "Map", cases: "Cases",
    devices: "Devices", stats: "Statistics", login: "Sign in", username: "Username", password: "Password",
    signin: "Sign in", logout: "Sign out", bad_login: "Wrong username or password", too_many: "Too many failed attempts; try again later",
    change_password: "Change the initial password", new_password: "New password",
    confirm_password: "Confirm the new password", save: "Save", pw_mismatch: "The two passwords differ", severity: "Severity",
    alarm: "Alarm", device: "Device", place: "Place", state: "State", count: "Count", first_seen: "First",
    last_seen: "Last", actions: "Actions", ack: "Acknowledge", clear: "Clear", comment: "Comment",
    open_case: "Open case", to_wall: "To wall", silence: "Silence", unsilence: "Sound on", filter_all: "All",
    filter_open: "Not cleared", filter_unack: "Unacknowledged", all_severities: "All severities",
    active_unack: "active, unacknowledged", active_ack: "active, acknowledged",
    cleared_unack: "cleared, unacknowledged", cleared: "cleared",
    critical: "critical", major: "major", minor: "minor", warning: "warning",
    history: "History", at: "Time", action: "Action", actor: "By", note: "Note", evidence: "Evidence",
    no_evidence: "No snapshot or clip", cameras: "Linked cameras", no_cameras: "No linked camera", case: "Case",
    no_case: "No case yet", select_alarm: "Select an alarm to see it here", comment_prompt: "Comment",
    raised: "raised", repeated: "repeated", acknowledged: "acknowledged", cleared_action: "cleared",
    commented: "commented", case_no: "Case", title_col: "Title", category: "Category", stage: "Stage",
    department: "Department", deadline: "Deadline", light: "Light", created: "Created", overdue: "overdue",
    remaining: "left", case_history: "History",
    case_actions_note: "Case work (accept, dispatch, feedback, verify, close) is done by departments in the cases module.",
    reported: "reported", accepted: "accepted", dispatched: "dispatched", handling: "handling",
    feedback: "feedback", verifying: "verifying", closed: "closed", cancelled: "cancelled", parked: "parked",
    green: "green", yellow: "yellow", red: "red",
    name: "Name", kind: "Kind", grid: "Grid", messages: "Messages", errors: "Errors", last_error: "Last error",
    online: "online", offline: "offline", unknown: "unknown", deadletters: "Dead letters (rejected input)",
    cluster_nodes: "Hub nodes", node: "Node", started: "Started", weight: "Weight", load: "Load",
    owned: "Owns (devices and roles)",
    reason: "Reason", detail: "Detail", origin: "Origin", layout: "Layout", choose_camera: "Choose a camera",
    empty_tile: "Empty", connecting: "Connecting…", live: "Live", failed: "Connection failed, retrying",
    stat_opened: "Opened", stat_due: "Due to close", stat_closed: "Closed", stat_closed_on_time: "Closed on time", stat_close_rate: "Close rate", stat_on_time_rate: "On-time rate", stat_avg_handling_h: "Avg handling (h)", stat_returns: "Returns", stat_extensions: "Extensions", stat_reworks: "Rework", stat_parked: "Parked", stat_open_green: "Open green", stat_open_yellow: "Open yellow", stat_open_red: "Open red", stat_department: "Department", stat_org_unit: "Area", stat_category: "Category", stat_period: "Period", stat_trend: "Opened and closed per day", stat_by_department: "By department", stat_by_org_unit: "By area", stat_by_category: "By category", stat_clusters: "Class-case clusters (90 days)", stat_cases: "Cases", stat_first: "First", stat_last: "Last", stat_none: "No data yet", stat_no_clusters: "No clusters",
    stats_soon: "Statistics (trends, departments and grids compared, class-case clusters, CSV export) come with the governance module.",
    total: "Total", items: "", legend: "Legend", has_alarm: "in alarm", site_plan: "Site plan", close: "Close",
    new_alarm: "New alarm", lang: "中文", user: "User", fence: "Fence", camera: "Camera",
    perimeter_intrusion: "perimeter intrusion", illegal_construction: "illegal construction",
    city_appearance: "city appearance", public_security: "public security", dispute: "dispute", fire: "fire",
    thermal: "Thermal", water_level: "Water level", shelve: "Silence 1 h",
    shelve_prompt: "Reason (the same alarm is silenced for an hour)", shelved: "Silenced", act_accept: "Accept", act_cancel: "Cancel", act_merge: "Merge", act_dispatch: "Dispatch", act_claim: "Claim",
    act_return: "Return", act_reassign: "Reassign", act_request_extension: "Ask for more time",
    act_approve_extension: "Approve extension", act_reject_extension: "Refuse extension", act_feedback: "Feedback",
    act_verify: "Verify", act_pass_check: "Pass check", act_fail_check: "Fail check", act_park: "Park",
    act_reopen: "Reopen", case_note: "Note",
    flood: "flood", device_fault: "device fault", environment: "environment", live_feeds: "Live video",
    viewers: "Viewers", source: "Source", packets: "Packets", failures: "Failures",
    report: "reported", accept: "accepted", dispatch: "dispatched", merge: "merged (并单)", merged_from: "merged in",
    merged: "merged", merge_proposals: "Merge proposals (open cases of the same matter nearby)",
    merge_into: "Merge into this", distance: "Distance", same_grid: "same grid", gap_hours: "Hours apart",
    merge_confirm: "Merge case", merged_toast: "Merged",
    uplinks: "Uplinks", uplinks_note: "Webhooks to external systems: pending deliveries, dead letters and replay",
    no_uplinks: "No uplink configured", uplink_events: "Events", uplink_case: "cases", uplink_alarm: "alarms",
    uplink_pending: "Pending", uplink_dead: "Dead letters", uplink_delivered: "Delivered (7 days)",
    dead_at: "Given up", delivery: "Delivery id", attempts: "Attempts", no_dead_letters: "No dead letters",
    replay: "Replay", replay_all: "Replay all", replayed: "Replayed",
    hotline_import: "12345 hotline import", import_dry_run: "Dry run (writes nothing)", import_run: "Import",
    import_hint: "CSV (Chinese headings accepted) or JSON; a dry run shows what would be created and every rejected row",
    import_choose: "Choose a file", import_dry_first: "Dry-run this file first", import_would: "Would create",
    import_done: "Created", import_rejected: "Rejected", row: "Row", ticket: "Ticket",
  },
};

export let lang = localStorage.getItem("sharpeye.lang") === "en" ? "en" : "zh";
export let zone = "Asia/Shanghai";

export const t = (key) => DICT[lang][key] ?? DICT.zh[key] ?? key;

export function setLang(next) {
  lang = next;
  localStorage.setItem("sharpeye.lang", next);
  document.documentElement.lang = next === "zh" ? "zh-CN" : "en";
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  document.querySelectorAll("[data-i18n-title]").forEach((el) => { el.title = t(el.dataset.i18nTitle); });
}

export function setZone(next) { if (next) zone = next; }

export function fmtTime(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB", {
    timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  });
}

export function fmtDuration(ms) {
  const neg = ms < 0; let s = Math.floor(Math.abs(ms) / 1000);
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600; const m = Math.floor(s / 60);
  const text = lang === "zh"
    ? `${d ? d + "天" : ""}${h ? h + "小时" : ""}${m}分`
    : `${d ? d + "d " : ""}${h ? h + "h " : ""}${m}m`;
  return neg ? `${t("overdue")} ${text}` : `${t("remaining")} ${text}`;
}

export const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => (
  { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
