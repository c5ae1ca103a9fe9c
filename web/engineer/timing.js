// The timing diagram, hand-drawn in SVG: one lane per signal group, coloured by state, with
// the controller's mode on top and gaps where the gateway knew nothing.

import { clock, duration } from "./format.js";

const SVG = "http://www.w3.org/2000/svg";

export const STATE_COLOURS = {
  green: "#1f9d3a",
  flashing_green: "#7fd08f",
  yellow: "#f2c200",
  red_yellow: "#f08a00",
  red: "#d33a2c",
  flashing_yellow: "#f7e27a",
  flashing_red: "#f09a92",
  dark: "#30343a",
  unknown: "url(#unknown)",
};

const MODE_COLOURS = {
  flash: "#f7e27a",
  fault: "#f09a92",
  dark: "#30343a",
  manual: "#9bb7e0",
  preempt: "#c6a0e0",
  unknown: "url(#unknown)",
};

function node(tag, attrs = {}, text = null) {
  const n = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) n.setAttribute(key, String(value));
  if (text !== null) n.textContent = text;
  return n;
}

function tickStep(spanMs) {
  for (const step of [10_000, 30_000, 60_000, 120_000, 300_000]) {
    if (spanMs / step <= 8) return step;
  }
  return 600_000;
}

/** Draw ``diagram`` (the timing endpoint's JSON) into ``container``; returns the SVG. */
export function drawTiming(container, diagram) {
  const lane = 18;
  const gap = 5;
  const left = 96;
  const right = 12;
  const top = 30;
  // Drawn at the container's own pixel width, so labels keep their size at any width.
  const width = Math.max(480, Math.round(container.clientWidth || 1000));
  const groups = diagram.groups;
  const height = top + groups.length * (lane + gap) + 24;
  const from = diagram.from_ms;
  const to = diagram.to_ms;
  const span = Math.max(1, to - from);
  const x = (t) => left + ((Math.min(Math.max(t, from), to) - from) / span) * (width - left - right);

  const svg = node("svg", {
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": `timing diagram of ${diagram.id}`,
    class: "diagram",
  });
  const defs = node("defs");
  const pattern = node("pattern", {
    id: "unknown",
    width: 8,
    height: 8,
    patternUnits: "userSpaceOnUse",
    patternTransform: "rotate(45)",
  });
  pattern.append(node("rect", { width: 8, height: 8, fill: "#e4e6ea" }));
  pattern.append(node("line", { x1: 0, y1: 0, x2: 0, y2: 8, stroke: "#b8bcc4", "stroke-width": 3 }));
  defs.append(pattern);
  svg.append(defs);

  // Mode band: only what is not normal is drawn.
  svg.append(node("text", { x: 4, y: 16, class: "lane-label" }, "mode"));
  for (const seg of diagram.modes) {
    if (seg.state === "normal") continue;
    const x0 = x(seg.start_ms);
    const x1 = x(seg.end_ms ?? to);
    const rect = node("rect", {
      x: x0,
      y: 6,
      width: Math.max(1, x1 - x0),
      height: 14,
      fill: MODE_COLOURS[seg.state] ?? "#ccc",
      class: "mode",
      "data-mode": seg.state,
    });
    rect.append(node("title", {}, `mode ${seg.state} from ${clock(seg.start_ms)}`));
    svg.append(rect);
  }

  groups.forEach((group, index) => {
    const y = top + index * (lane + gap);
    const label = `sg ${group.sg}${group.movement ? ` ${group.approach}·${group.movement.slice(0, 5)}` : ""}`;
    svg.append(node("text", { x: 4, y: y + lane - 6, class: "lane-label" }, label));
    svg.append(node("rect", { x: left, y, width: width - left - right, height: lane, class: "lane" }));
    for (const seg of group.segments) {
      const end = seg.end_ms ?? to;
      const x0 = x(seg.start_ms);
      const x1 = x(end);
      const rect = node("rect", {
        x: x0,
        y,
        width: Math.max(0.5, x1 - x0),
        height: lane,
        fill: STATE_COLOURS[seg.state] ?? "#999",
        class: `seg st-${seg.state}`,
        "data-state": seg.state,
      });
      const held = seg.end_ms === null ? "now" : clock(seg.end_ms);
      rect.append(
        node("title", {}, `sg ${group.sg}: ${seg.state} ${clock(seg.start_ms)} → ${held} (${duration(end - seg.start_ms)})`),
      );
      svg.append(rect);
    }
  });

  const axisY = top + groups.length * (lane + gap) + 2;
  const step = tickStep(span);
  for (let t = Math.ceil(from / step) * step; t <= to; t += step) {
    const tx = x(t);
    svg.append(node("line", { x1: tx, y1: top - 4, x2: tx, y2: axisY, class: "tick" }));
    svg.append(node("text", { x: tx, y: axisY + 14, class: "tick-label", "text-anchor": "middle" }, clock(t)));
  }
  container.replaceChildren(svg);
  return svg;
}

/** The colour legend, once. */
export function drawLegend(container) {
  const items = Object.entries(STATE_COLOURS).map(([state, colour]) => {
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = colour.startsWith("url") ? "repeating-linear-gradient(45deg,#e4e6ea 0 3px,#b8bcc4 3px 5px)" : colour;
    const item = document.createElement("span");
    item.append(swatch, state.replace("_", " "));
    return item;
  });
  container.replaceChildren(...items);
}
