// Small DOM pieces shared by the map, the list and the detail panel: light symbols, movement
// arrows, and cheap "write only if changed" updates (the page redraws ten times a second).

const SVG_NS = "http://www.w3.org/2000/svg";

/** Degrees to turn an arrow drawn heading north: traffic from approach X heads the other way. */
export const HEADING = { S: 0, W: 90, N: 180, E: 270 };

/** Order of arms and movements wherever groups are listed. */
export const APPROACH_ORDER = ["N", "E", "S", "W"];
export const MOVEMENT_ORDER = ["left", "straight", "right", "pedestrian"];

export function el(tag, className = "", text = "") {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}

/** A light symbol (shape and colour by CSS class `sym--<symbol>`). */
export function symbolEl() {
  const node = el("span", "sym");
  node.setAttribute("aria-hidden", "true");
  return node;
}

export function setSymbol(node, symbol, greyed = false) {
  const cls = `sym sym--${symbol}${greyed ? " is-greyed" : ""}`;
  if (node.className !== cls) node.className = cls;
}

/** The arrow (or walking figure) of a movement from an approach. */
export function arrowEl(movement, approach) {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("class", "arrow");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  if (movement !== "pedestrian") svg.style.transform = `rotate(${HEADING[approach] ?? 0}deg)`;
  const use = document.createElementNS(SVG_NS, "use");
  use.setAttribute("href", `#i-${movement}`);
  svg.append(use);
  return svg;
}

export function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

export function setClass(node, className) {
  if (node.className !== className) node.className = className;
}

export function setAttr(node, name, value) {
  if (node.getAttribute(name) !== value) node.setAttribute(name, value);
}

/** Groups sorted by approach (N, E, S, W) then movement (left, straight, right, pedestrians). */
export function sortedGroups(groups) {
  const rank = (g) => APPROACH_ORDER.indexOf(g.approach) * 10 + MOVEMENT_ORDER.indexOf(g.movement);
  return [...groups].sort((a, b) => rank(a) - rank(b) || a.sg - b.sg);
}
