// Small pure helpers: durations, clock times, status ordering, text.

export const STATUS_ORDER = ["offline", "stale", "fault", "dark", "flash", "manual", "preempt", "online"];

export function statusRank(status) {
  const index = STATUS_ORDER.indexOf(status);
  return index < 0 ? STATUS_ORDER.length : index;
}

/** "850 ms", "12 s", "3 min", "2 h 5 min"; "–" for null. */
export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "–";
  if (ms < 0) ms = 0;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = Math.floor(ms / 1000);
  if (s < 120) return `${s} s`;
  const min = Math.floor(s / 60);
  if (min < 120) return `${min} min`;
  const h = Math.floor(min / 60);
  if (h < 48) return `${h} h ${min % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

/** Local clock time HH:MM:SS of a Unix ms instant. */
export function clock(ms) {
  const d = new Date(ms);
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
}

/** Local date and time for event lists. */
export function stamp(ms) {
  const d = new Date(ms);
  const date = d.toLocaleDateString([], { month: "2-digit", day: "2-digit" });
  return `${date} ${clock(ms)}`;
}

/** An element with text content (never innerHTML for data). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}
