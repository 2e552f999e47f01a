// Chinese (the default) and English strings of the console; the choice is kept in localStorage.
"use strict";

const ZH = {
  "title": "网格安全监管", "live": "在线", "offline": "离线", "reconnecting": "重连中",
  "login.user": "用户名", "login.password": "密码", "login.submit": "登录",
  "login.wrong": "用户名或密码错误", "login.again": "请重新登录", "logout": "退出",
  "nav.alarms": "报警", "nav.grids": "网格", "nav.stats": "统计", "nav.cases": "派遣案件", "nav.docs": "接口文档",
  "role.admin": "管理员", "role.supervisor": "监管", "role.officer": "网格员", "role.department": "部门",
  "role.enterprise": "企业",
  "opt.sound": "声音提醒", "opt.notify": "桌面通知", "opt.closed": "显示已结案",
  "col.level": "级别", "col.enterprise": "企业", "col.sensor": "设备 / 测点", "col.value": "当前值", "col.peak": "峰值",
  "col.age": "持续", "col.state": "状态", "col.ack": "确认人", "col.case": "处置",
  "none.alarms": "暂无报警", "none": "—", "loading": "加载中…", "back": "返回",
  "ago": "{t}前", "for": "已持续 {t}", "s": "{n} 秒", "min": "{n} 分钟", "h": "{n} 小时", "d": "{n} 天",
  "level.high": "一级报警", "level.high_high": "二级报警", "level.low": "低限报警", "level.low_low": "低低限报警",
  "level.rate_of_change": "变化率报警", "level.offline": "通讯中断", "level.stale": "数据中断", "level.fault": "仪表故障",
  "level.read_error": "读取故障", "level.report": "群众举报", "level.flood": "报警泛滥", "level.data_loss": "数据丢失",
  "level.store_failing": "存储故障", "level.maintenance": "检修",
  "prio.high": "高优先级", "prio.medium": "中优先级", "prio.low": "低优先级",
  "state.normal": "正常", "state.unacknowledged": "未确认", "state.acknowledged": "已确认",
  "state.rtn_unacknowledged": "已恢复未确认", "state.shelved": "已搁置", "state.suppressed": "已抑制",
  "state.out_of_service": "检修中", "state.no_data": "无数据", "state.stale": "数据中断", "state.fault": "故障",
  "state.high": "一级报警", "state.high_high": "二级报警", "state.low": "低限", "state.low_low": "低低限",
  "case.open": "待处置", "case.dispatched": "已派遣", "case.resolved": "已反馈", "case.closed": "已结案",
  "ev.raised": "报警", "ev.rose": "升级", "ev.lowered": "降级", "ev.cleared": "恢复", "ev.acknowledged": "确认",
  "ev.escalated": "上报", "ev.shelved": "搁置", "ev.unshelved": "取消搁置", "ev.suppressed": "抑制",
  "ev.unsuppressed": "取消抑制", "ev.out_of_service": "检修", "ev.returned_to_service": "恢复运行",
  "ev.dispatched": "派遣", "ev.resolved": "反馈", "ev.closed": "结案", "ev.chattering": "频繁报警",
  "ev.reported": "举报", "ev.moved": "转网格",
  "kind.combustible_gas": "可燃气体", "kind.toxic_gas": "有毒气体", "kind.oxygen": "氧气", "kind.temperature": "温度",
  "kind.pressure": "压力", "kind.level": "液位", "kind.flow": "流量", "kind.vibration": "振动", "kind.current": "电流",
  "kind.status": "运行状态",
  "d.raised": "报警时间", "d.cleared": "恢复时间", "d.value": "当前值", "d.peak": "峰值", "d.state": "状态",
  "d.case": "处置", "d.acked": "确认", "d.grid": "网格", "d.contact": "联系人", "d.phone": "电话", "d.address": "地址",
  "d.lead": "牵头部门", "d.coop": "配合部门", "d.history": "处置记录", "d.trend": "趋势", "d.enterprise": "企业信息",
  "d.actions": "处置操作", "d.no_trend": "该报警没有测点曲线", "d.no_readings": "该时段没有读数",
  "d.start": "开始", "d.end": "结束", "d.department": "派往", "d.open_enterprise": "查看企业",
  "a.ack": "确认报警", "a.ack.go": "确认", "a.note": "备注", "a.note.optional": "备注（可选）",
  "a.dispatch": "派遣部门", "a.dispatch.go": "派遣", "a.dispatch.pick": "请选择部门", "a.dispatch.note": "派遣说明（必填）",
  "a.lead": "牵头", "a.coop": "配合",
  "a.shelve": "搁置", "a.shelve.go": "搁置", "a.shelve.reason": "搁置原因（必填）", "a.shelve.for": "时长",
  "a.unshelve": "取消搁置", "a.unshelve.go": "取消搁置",
  "a.resolve": "现场处置完毕", "a.report": "反馈处置结果", "a.resolve.go": "提交反馈", "a.resolve.note": "处置结果（必填）",
  "a.close": "核查结案", "a.close.go": "结案", "a.none": "当前状态下没有可做的操作",
  "a.wait_dept": "已派遣，等待部门反馈", "a.wait_normal": "条件消除并确认后方可结案",
  "a.closed": "已结案",
  "g.enterprises": "企业", "g.open": "未结报警", "g.offline": "离线设备", "g.officers": "网格员", "g.none": "无",
  "g.all_clear": "一切正常", "e.sensors": "测点", "e.trend": "趋势", "e.range": "时间范围", "e.reset": "复位",
  "e.zoom_hint": "在图上拖动可放大", "e.pick": "点选测点查看趋势", "e.limits": "报警限值",
  "st.period": "统计周期", "st.grids": "网格报警负荷", "st.officers": "网格员响应", "st.rate": "每10分钟报警数",
  "st.target": "EEMUA 目标", "st.alarms": "报警数", "st.floods": "泛滥", "st.chattering": "频繁", "st.stale": "长期未消",
  "st.mix": "优先级构成", "st.received": "收到", "st.acked": "确认", "st.closed": "结案", "st.med_ack": "确认中位数",
  "st.p90_ack": "确认 P90", "st.med_close": "结案中位数", "st.p90_close": "结案 P90", "st.overdue": "超时",
  "st.total": "合计", "st.name": "名称", "st.flood_line": "泛滥线",
  "c.title": "派遣给本部门的案件", "c.none": "暂无待反馈案件", "c.done": "已反馈", "c.by": "派遣人", "c.task": "任务",
  "p.24h": "24 小时", "p.7d": "7 天", "p.30d": "30 天", "r.10m": "10 分钟", "r.1h": "1 小时", "r.6h": "6 小时",
  "r.24h": "24 小时", "r.7d": "7 天", "m.15": "15 分钟", "m.30": "30 分钟", "m.60": "1 小时", "m.120": "2 小时",
  "m.240": "4 小时", "m.480": "8 小时",
  "notify.title": "{level}：{ent}", "lang.other": "EN",
};

const EN = {
  "title": "Grid safety supervision", "live": "live", "offline": "offline", "reconnecting": "reconnecting",
  "login.user": "Username", "login.password": "Password", "login.submit": "Log in",
  "login.wrong": "wrong username or password", "login.again": "please log in again", "logout": "Log out",
  "nav.alarms": "Alarms", "nav.grids": "Grids", "nav.stats": "Statistics", "nav.cases": "Cases", "nav.docs": "API docs",
  "role.admin": "admin", "role.supervisor": "supervisor", "role.officer": "officer", "role.department": "department",
  "role.enterprise": "enterprise",
  "opt.sound": "Sound", "opt.notify": "Notifications", "opt.closed": "Show closed",
  "col.level": "Level", "col.enterprise": "Enterprise", "col.sensor": "Device / point", "col.value": "Value",
  "col.peak": "Peak", "col.age": "For", "col.state": "State", "col.ack": "Acknowledged by", "col.case": "Case",
  "none.alarms": "No alarms", "none": "—", "loading": "Loading…", "back": "Back",
  "ago": "{t} ago", "for": "for {t}", "s": "{n} s", "min": "{n} min", "h": "{n} h", "d": "{n} d",
  "level.high": "first-level (high)", "level.high_high": "second-level (high-high)", "level.low": "low",
  "level.low_low": "low-low", "level.rate_of_change": "rate of change", "level.offline": "offline",
  "level.stale": "stale", "level.fault": "fault", "level.read_error": "read error", "level.report": "public report",
  "level.flood": "flood", "level.data_loss": "data loss", "level.store_failing": "store failing",
  "level.maintenance": "maintenance",
  "prio.high": "high priority", "prio.medium": "medium priority", "prio.low": "low priority",
  "state.normal": "normal", "state.unacknowledged": "unacknowledged", "state.acknowledged": "acknowledged",
  "state.rtn_unacknowledged": "cleared, unacknowledged", "state.shelved": "shelved", "state.suppressed": "suppressed",
  "state.out_of_service": "out of service", "state.no_data": "no data", "state.stale": "stale", "state.fault": "fault",
  "state.high": "high", "state.high_high": "high-high", "state.low": "low", "state.low_low": "low-low",
  "case.open": "open", "case.dispatched": "dispatched", "case.resolved": "resolved", "case.closed": "closed",
  "ev.raised": "raised", "ev.rose": "rose", "ev.lowered": "lowered", "ev.cleared": "cleared",
  "ev.acknowledged": "acknowledged", "ev.escalated": "escalated", "ev.shelved": "shelved", "ev.unshelved": "unshelved",
  "ev.suppressed": "suppressed", "ev.unsuppressed": "unsuppressed", "ev.out_of_service": "out of service",
  "ev.returned_to_service": "back in service", "ev.dispatched": "dispatched", "ev.resolved": "resolved",
  "ev.closed": "closed", "ev.chattering": "chattering", "ev.reported": "reported", "ev.moved": "moved",
  "kind.combustible_gas": "Combustible gas", "kind.toxic_gas": "Toxic gas", "kind.oxygen": "Oxygen",
  "kind.temperature": "Temperature", "kind.pressure": "Pressure", "kind.level": "Level", "kind.flow": "Flow",
  "kind.vibration": "Vibration", "kind.current": "Current", "kind.status": "Status",
  "d.raised": "Raised", "d.cleared": "Cleared", "d.value": "Value", "d.peak": "Peak", "d.state": "State",
  "d.case": "Case", "d.acked": "Acknowledged", "d.grid": "Grid", "d.contact": "Contact", "d.phone": "Phone",
  "d.address": "Address", "d.lead": "Lead department", "d.coop": "Cooperating", "d.history": "History",
  "d.trend": "Trend", "d.enterprise": "Enterprise", "d.actions": "Actions", "d.no_trend": "This alarm has no sensor trend",
  "d.no_readings": "No readings in this span", "d.start": "start", "d.end": "end", "d.department": "to",
  "d.open_enterprise": "Open enterprise",
  "a.ack": "Acknowledge", "a.ack.go": "Acknowledge", "a.note": "Note", "a.note.optional": "Note (optional)",
  "a.dispatch": "Dispatch to a department", "a.dispatch.go": "Dispatch", "a.dispatch.pick": "Pick a department",
  "a.dispatch.note": "What the department is to do (required)", "a.lead": "lead", "a.coop": "cooperating",
  "a.shelve": "Shelve", "a.shelve.go": "Shelve", "a.shelve.reason": "Reason (required)", "a.shelve.for": "For",
  "a.unshelve": "Unshelve", "a.unshelve.go": "Unshelve",
  "a.resolve": "Handled on the spot", "a.report": "Report back", "a.resolve.go": "Report back",
  "a.resolve.note": "What was done (required)", "a.close": "Verify and close", "a.close.go": "Close",
  "a.none": "Nothing to do in this state", "a.wait_dept": "Dispatched: waiting for the department to report back",
  "a.wait_normal": "Closes once the condition is gone and acknowledged", "a.closed": "Closed",
  "g.enterprises": "Enterprises", "g.open": "Open alarms", "g.offline": "Devices offline", "g.officers": "Officers",
  "g.none": "none", "g.all_clear": "All clear", "e.sensors": "Sensors", "e.trend": "Trend", "e.range": "Range",
  "e.reset": "Reset", "e.zoom_hint": "Drag across the chart to zoom", "e.pick": "Pick a sensor for its trend",
  "e.limits": "Limits",
  "st.period": "Period", "st.grids": "Alarm load per grid", "st.officers": "Officer response", "st.rate": "Alarms per 10 min",
  "st.target": "EEMUA target", "st.alarms": "Alarms", "st.floods": "Floods", "st.chattering": "Chattering",
  "st.stale": "Stale", "st.mix": "Priority mix", "st.received": "Received", "st.acked": "Acked", "st.closed": "Closed",
  "st.med_ack": "Median ack", "st.p90_ack": "P90 ack", "st.med_close": "Median close", "st.p90_close": "P90 close",
  "st.overdue": "Overdue", "st.total": "Total", "st.name": "Name", "st.flood_line": "flood",
  "c.title": "Cases dispatched to this department", "c.none": "No cases waiting for a report", "c.done": "Reported",
  "c.by": "Dispatched by", "c.task": "Task",
  "p.24h": "24 h", "p.7d": "7 days", "p.30d": "30 days", "r.10m": "10 min", "r.1h": "1 h", "r.6h": "6 h",
  "r.24h": "24 h", "r.7d": "7 d", "m.15": "15 min", "m.30": "30 min", "m.60": "1 h", "m.120": "2 h", "m.240": "4 h",
  "m.480": "8 h",
  "notify.title": "{level}: {ent}", "lang.other": "中文",
};

const TABLES = { zh: ZH, en: EN };
export let lang = localStorage.getItem("gridgate.lang") === "en" ? "en" : "zh";

/** The text of ``key`` in the chosen language, ``{name}`` filled from ``vars``; the key itself if unknown. */
export function t(key, vars = {}) {
  const text = TABLES[lang][key] ?? ZH[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ""));
}

/** ``prefix.value`` translated, or ``value`` itself when there is no such string. */
export function word(prefix, value) {
  const key = `${prefix}.${value}`;
  return TABLES[lang][key] ?? ZH[key] ?? String(value ?? "");
}

export function setLang(next) {
  lang = next === "en" ? "en" : "zh";
  localStorage.setItem("gridgate.lang", lang);
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  translate(document);
}

/** Fill the static texts of the page: ``data-i18n`` (text), ``data-i18n-ph`` (placeholder). */
export function translate(root) {
  for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of root.querySelectorAll("[data-i18n-ph]")) node.placeholder = t(node.dataset.i18nPh);
}
