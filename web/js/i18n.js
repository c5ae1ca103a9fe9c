// The page's words in Chinese (default) and English. Pure apart from remembering the choice.

const STRINGS = {
  zh: {
    title: "烟台信号灯倒计时",
    subtitle: "实时路口信号",
    search_label: "搜索路口",
    search_placeholder: "搜索路口（中文 / 拼音 / English）",
    no_results: "没有找到匹配的路口",
    view_map: "地图",
    view_list: "列表",
    lang_toggle: "EN",
    lang_toggle_label: "Switch to English",
    conn_connecting: "正在连接…",
    conn_live: "实时",
    conn_reconnecting: "连接中断，正在重连…",
    conn_reconnecting_in: "连接中断，{s} 秒后重连",
    conn_hint_reconnecting: "显示的是断开前的数据，已变灰，不显示倒计时",
    tiles_failed: "底图无法加载，仅显示路口位置",
    map_unavailable: "地图组件未加载，请使用列表视图",
    close: "关闭",
    legend: "图例",
    legend_note: "颜色之外，形状也表示灯色：■ 红灯 · ◆ 黄灯 · ● 绿灯。灰色符号表示此时不显示倒计时。",
    legend_range: "感应控制：剩余时间在此范围内",
    group_phrase: "{approach}{movement}",
    list_heading: "全部路口",
    list_count: "共 {n} 个路口",
    mode: "运行方式",
    last_update: "最后更新",
    seconds_ago: "{s} 秒前",
    never: "无",
    groups: "信号灯组",
    col_approach: "进口",
    col_movement: "方向",
    col_state: "灯色",
    col_countdown: "倒计时",
    district: "区",
    approach_N: "北进口",
    approach_E: "东进口",
    approach_S: "南进口",
    approach_W: "西进口",
    approach_short_N: "北",
    approach_short_E: "东",
    approach_short_S: "南",
    approach_short_W: "西",
    movement_straight: "直行",
    movement_left: "左转",
    movement_right: "右转",
    movement_pedestrian: "行人过街",
    state_red: "红灯",
    state_red_yellow: "红黄灯",
    state_green: "绿灯",
    state_flashing_green: "绿闪",
    state_yellow: "黄灯",
    state_flashing_yellow: "黄闪",
    state_flashing_red: "红闪",
    state_dark: "熄灭",
    state_unknown: "状态未知",
    mode_normal: "正常",
    mode_flash: "黄闪",
    mode_dark: "熄灯",
    mode_manual: "手动",
    mode_preempt: "优先",
    mode_fault: "故障",
    // Short words shown instead of a number, and their explanations.
    status_disconnected: "断开",
    status_no_data: "无数据",
    status_offline: "离线",
    status_stale: "超时",
    status_flash: "黄闪",
    status_dark: "熄灯",
    status_manual: "手动",
    status_preempt: "优先",
    status_fault: "故障",
    status_unknown: "未知",
    status_live_ok: "实时数据，倒计时可信",
    explain_disconnected: "与服务器的连接中断，数据可能已过时",
    explain_no_data: "尚未收到该路口的数据",
    explain_offline: "信号机离线，状态未知",
    explain_stale: "信号机数据超时，状态未知",
    explain_flash: "信号机处于黄闪状态，请谨慎通过",
    explain_dark: "信号灯熄灭，请按无信号路口通行",
    explain_manual: "交警手动控制，无倒计时",
    explain_preempt: "特种车辆优先通行中，无倒计时",
    explain_fault: "信号机故障，请谨慎通过",
    explain_unknown: "运行方式未知，不显示倒计时",
    why_ended: "即将变化",
    why_no_timing: "时间未知",
    why_syncing: "正在校准时间",
    why_unknown_state: "状态未知",
    why_dark: "熄灭",
    spoken_count: "还剩 {s} 秒",
    spoken_range: "还剩 {lo} 到 {hi} 秒",
    spoken_atleast: "至少还剩 {lo} 秒",
    spoken_atmost: "最多还剩 {hi} 秒",
    spoken_none: "无倒计时",
    open_details: "查看详情",
  },
  en: {
    title: "Yantai signal countdowns",
    subtitle: "Live traffic lights",
    search_label: "Search intersections",
    search_placeholder: "Search (中文 / pinyin / English)",
    no_results: "No intersection matches",
    view_map: "Map",
    view_list: "List",
    lang_toggle: "中文",
    lang_toggle_label: "切换到中文",
    conn_connecting: "Connecting…",
    conn_live: "Live",
    conn_reconnecting: "Connection lost, reconnecting…",
    conn_reconnecting_in: "Connection lost, retrying in {s} s",
    conn_hint_reconnecting: "Showing greyed data from before the connection was lost, no countdowns",
    tiles_failed: "Map tiles unavailable: intersections only",
    map_unavailable: "The map could not load; use the list view",
    close: "Close",
    legend: "Legend",
    legend_note: "Shape as well as colour shows the light: ■ red · ◆ yellow · ● green. A grey symbol means no countdown is shown right now.",
    legend_range: "Actuated: the time left lies in this range",
    group_phrase: "{approach}, {movement}",
    list_heading: "All intersections",
    list_count: "{n} intersections",
    mode: "Mode",
    last_update: "Last update",
    seconds_ago: "{s} s ago",
    never: "never",
    groups: "Signal groups",
    col_approach: "Approach",
    col_movement: "Movement",
    col_state: "Light",
    col_countdown: "Countdown",
    district: "District",
    approach_N: "North approach",
    approach_E: "East approach",
    approach_S: "South approach",
    approach_W: "West approach",
    approach_short_N: "N",
    approach_short_E: "E",
    approach_short_S: "S",
    approach_short_W: "W",
    movement_straight: "Straight",
    movement_left: "Left",
    movement_right: "Right",
    movement_pedestrian: "Pedestrians",
    state_red: "Red",
    state_red_yellow: "Red + yellow",
    state_green: "Green",
    state_flashing_green: "Flashing green",
    state_yellow: "Yellow",
    state_flashing_yellow: "Flashing yellow",
    state_flashing_red: "Flashing red",
    state_dark: "Dark",
    state_unknown: "Unknown",
    mode_normal: "Normal",
    mode_flash: "Flashing",
    mode_dark: "Dark",
    mode_manual: "Manual",
    mode_preempt: "Pre-emption",
    mode_fault: "Fault",
    status_disconnected: "no link",
    status_no_data: "no data",
    status_offline: "offline",
    status_stale: "stale",
    status_flash: "flash",
    status_dark: "dark",
    status_manual: "manual",
    status_preempt: "preempt",
    status_fault: "fault",
    status_unknown: "unknown",
    status_live_ok: "Live data: countdowns are current",
    explain_disconnected: "Connection to the server lost; data may be out of date",
    explain_no_data: "No data received for this intersection yet",
    explain_offline: "Controller offline: state unknown",
    explain_stale: "No recent report from the controller: state unknown",
    explain_flash: "Signals flashing yellow: proceed with caution",
    explain_dark: "Signals are off: treat as an uncontrolled crossing",
    explain_manual: "Under manual control by police: no countdown",
    explain_preempt: "Emergency vehicle pre-emption: no countdown",
    explain_fault: "Controller fault: proceed with caution",
    explain_unknown: "Unknown operating mode: no countdown",
    why_ended: "about to change",
    why_no_timing: "time unknown",
    why_syncing: "syncing clock",
    why_unknown_state: "state unknown",
    why_dark: "dark",
    spoken_count: "{s} seconds left",
    spoken_range: "{lo} to {hi} seconds left",
    spoken_atleast: "at least {lo} seconds left",
    spoken_atmost: "at most {hi} seconds left",
    spoken_none: "no countdown",
    open_details: "Details",
  },
};

// The registry names districts in Chinese only.
const DISTRICTS_EN = {
  芝罘区: "Zhifu",
  莱山区: "Laishan",
  福山区: "Fushan",
  牟平区: "Muping",
  开发区: "Development Zone",
};

export const LANGS = Object.keys(STRINGS);
const STORAGE_KEY = "signal-gateway.lang";

let current = "zh";

/** The word for `key` in the current (or given) language, with {name} placeholders filled. */
export function t(key, params = {}, lang = current) {
  const text = STRINGS[lang]?.[key] ?? STRINGS.zh[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(params[name] ?? ""));
}

export function lang() {
  return current;
}

/** Switch language; remembered in localStorage when there is one. */
export function setLang(next) {
  if (!LANGS.includes(next)) return current;
  current = next;
  try {
    globalThis.localStorage?.setItem(STORAGE_KEY, next);
  } catch {
    // private browsing: the choice lasts for this page only
  }
  return current;
}

/** The remembered language, or Chinese. */
export function initialLang(search = "") {
  const asked = new URLSearchParams(search).get("lang");
  if (LANGS.includes(asked)) return asked;
  try {
    const stored = globalThis.localStorage?.getItem(STORAGE_KEY);
    if (LANGS.includes(stored)) return stored;
  } catch {
    // no storage
  }
  return "zh";
}

/** An intersection's name in the current language, and in the other one. */
export function names(item, lang_ = current) {
  return lang_ === "en"
    ? { primary: item.name_en, secondary: item.name_zh }
    : { primary: item.name_zh, secondary: item.name_en };
}

/** A district's name in the current language. */
export function district(name, lang_ = current) {
  return lang_ === "en" ? (DISTRICTS_EN[name] ?? name) : name;
}

/** A countdown as a screen reader should say it. */
export function spoken(cd) {
  switch (cd.kind) {
    case "count":
      return t("spoken_count", { s: cd.seconds });
    case "range":
      return t("spoken_range", cd);
    case "atleast":
      return t("spoken_atleast", cd);
    case "atmost":
      return t("spoken_atmost", cd);
    default:
      return t("spoken_none");
  }
}

/** The short reason shown instead of a number (empty when none is needed). */
export function whyText(cd) {
  if (cd.kind !== "none" || cd.why === null) return "";
  const key = `status_${cd.why}`;
  return key in STRINGS.zh ? t(key) : t(`why_${cd.why}`);
}
