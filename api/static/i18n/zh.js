// @ts-check
// Chinese, the console's first language. Words of the console are under ``ui``; names of the hub's enumerations
// under their own namespace (``severity.major``, ``alarm_state.active_unack``...) so a word and an enum value never
// collide. Kinds, reading kinds, case stages and case actions are not here: the hub serves them (GET /api/labels),
// from the drivers and from governance.
export const zh = {
  ui: {
    title: "SharpEye 综治指挥台", alarms: "报警", wall: "视频墙", map: "地图", cases: "案件", devices: "设备",
    stats: "统计", login: "登录", username: "用户名", password: "密码", signin: "登录", logout: "退出",
    bad_login: "用户名或密码错误", too_many: "失败次数过多，请稍后再试", change_password: "请修改初始密码",
    new_password: "新密码", confirm_password: "确认新密码", save: "保存", pw_mismatch: "两次输入的密码不一致",
    severity: "级别", alarm: "报警", device: "设备", place: "位置", state: "状态", count: "次数", first_seen: "首次",
    last_seen: "最近", actions: "操作", ack: "确认", clear: "清除", comment: "备注", open_case: "查看案件",
    to_wall: "上墙", silence: "静音", unsilence: "取消静音", filter_all: "全部", filter_open: "未恢复",
    filter_unack: "未确认", all_severities: "全部级别", history: "历史", at: "时间", action: "动作",
    actor: "操作人", note: "说明", evidence: "证据", no_evidence: "暂无抓图或录像", cameras: "关联摄像机",
    no_cameras: "无关联摄像机", case: "案件", no_case: "未生成案件", select_alarm: "选择一条报警查看详情",
    comment_prompt: "请输入备注", case_no: "编号", title_col: "标题", category: "类别", stage: "阶段",
    department: "部门", deadline: "期限", light: "灯", created: "创建", overdue: "已超期", remaining: "剩余",
    case_history: "办理过程", case_actions_note: "办理操作（签收、派遣、反馈、核查、结案）由处置部门在案件模块中执行。",
    name: "名称", kind: "类型", grid: "网格", messages: "消息", errors: "错误", last_error: "最近错误",
    deadletters: "死信（被拒绝的消息）", reason: "原因", detail: "详情", origin: "来源", layout: "布局",
    choose_camera: "选择摄像机", empty_tile: "空闲", total: "共", items: "条", legend: "图例", has_alarm: "报警中",
    new_alarm: "新报警", lang: "English", camera: "摄像机", shelve: "屏蔽1小时",
    shelve_prompt: "屏蔽原因（1小时内同类报警不再提示）", shelved: "已屏蔽", case_note: "办理意见",
    live_feeds: "实时视频", viewers: "观看", source: "来源", packets: "数据包", failures: "故障",
    merge_proposals: "并单建议（同类、相近、时间接近的在办案件）", merge_into: "并入此案", distance: "距离",
    same_grid: "同一网格", gap_hours: "相隔(小时)", merge_confirm: "确认并单：", merged_toast: "已并单",
    uplinks: "数据推送", uplinks_note: "对外推送（Webhook）：待发送、死信及重发", no_uplinks: "未配置对外推送",
    uplink_events: "推送内容", uplink_pending: "待发送", uplink_dead: "死信", uplink_delivered: "近7天已送达",
    dead_at: "放弃时间", delivery: "投递编号", attempts: "尝试次数", no_dead_letters: "没有死信", replay: "重发",
    replay_all: "全部重发", replayed: "已重发", hotline_import: "12345 热线工单导入",
    import_dry_run: "试导入（不写入）", import_run: "导入",
    import_hint: "CSV（表头可用中文）或 JSON；先试导入查看将创建的案件和被拒绝的行",
    import_choose: "请选择文件", import_dry_first: "请先试导入这个文件", import_would: "将创建",
    import_done: "已创建", import_rejected: "被拒绝", row: "行", ticket: "工单号",
  },
  severity: { critical: "一级", major: "二级", minor: "三级", warning: "四级" },
  alarm_state: { active_unack: "未确认", active_ack: "已确认", cleared_unack: "已恢复未确认", cleared: "已恢复" },
  alarm_event: {
    raised: "产生", repeated: "重复", acknowledged: "确认", cleared: "恢复", commented: "备注", evidence: "证据",
  },
  device_state: { online: "在线", offline: "离线", unknown: "未知" },
  player: { connecting: "连接中…", live: "实时", failed: "连接失败，重试中" },
  light: { green: "绿灯", yellow: "黄灯", red: "红灯" },
  category: {
    perimeter_intrusion: "周界入侵", illegal_construction: "违法建设", city_appearance: "市容环境",
    public_security: "社会治安", dispute: "矛盾纠纷", fire: "火灾", flood: "汛情", device_fault: "设备故障",
    environment: "环境保护",
  },
  uplink_event: { case: "案件", alarm: "报警" },
  stat: {
    opened: "立案", due: "应结案", closed: "结案", closed_on_time: "按期结案", close_rate: "结案率",
    on_time_rate: "按期结案率", avg_handling_h: "平均处置时长(小时)", returns: "回退", extensions: "延期",
    reworks: "返工", parked: "挂账", open_green: "在办绿灯", open_yellow: "在办黄灯", open_red: "在办红灯",
    department: "部门", org_unit: "区域", category: "类别", period: "时段", trend: "立案与结案趋势（按日）",
    by_department: "按部门", by_org_unit: "按区域", by_category: "按类别", clusters: "类案分析（近90天）",
    cases: "案件数", first: "首次", last: "最近", none: "暂无数据", no_clusters: "暂无类案聚集",
  },
};

/** @typedef {typeof zh} Dictionary */
