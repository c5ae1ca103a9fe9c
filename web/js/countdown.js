// What a driver is shown for a signal group: the honesty rules. Pure: no DOM, no clock.
//
// The rule above all: never a wrong number. A number appears only when the gateway gave an exact
// end (`end_ms`, docs/protocol.md "When is a number shown"), the intersection is online, fresh and
// in normal mode, this page is connected, and its clock is synced to the gateway's. Otherwise the
// group shows its state (or a grey symbol) and a short reason instead of a number.
//
// Seconds are rounded the way a countdown display rounds them: up. A number therefore counts down
// to 1 and then goes blank, never to 0 or below (GA/T 508 displays: "an extended phase counts to 1
// and then goes dark"). Bounds of an actuated range are rounded so that they stay true: the lower
// one down ("≥12" while 12.6 s remain), the upper one up.

export const MODES = new Set(["normal", "flash", "dark", "manual", "preempt", "fault"]);
export const STATES = new Set([
  "red",
  "red_yellow",
  "green",
  "flashing_green",
  "yellow",
  "flashing_yellow",
  "flashing_red",
  "dark",
]);

/** Statuses under which the last known state must not be trusted: shown grey, as a symbol. */
export const UNTRUSTED = new Set(["disconnected", "no_data", "offline", "stale", "unknown"]);

/** The largest number a marker shows; longer waits read "99+" (still true). */
export const MAX_SHOWN_S = 99;

/**
 * Why an intersection shows no numbers at all, or null when it may show them.
 * @param {object|undefined} view the View of docs/protocol.md (undefined: none received)
 * @param {{live: boolean}} ctx live: this page is connected and has its snapshot
 * @returns {null|"disconnected"|"no_data"|"offline"|"stale"|"flash"|"dark"|"manual"|"preempt"|"fault"|"unknown"}
 */
export function intersectionStatus(view, { live }) {
  if (!live) return "disconnected";
  if (!view) return "no_data";
  if (view.online !== true) return "offline";
  if (view.stale !== false) return "stale";
  if (view.mode === "normal") return null;
  return MODES.has(view.mode) ? view.mode : "unknown"; // a mode this page does not know: no trust
}

/** A known state, or null: an unknown or missing state is never mistaken for "no light". */
export function knownState(state) {
  return typeof state === "string" && STATES.has(state) ? state : null;
}

function none(why) {
  return { kind: "none", text: "", why };
}

/**
 * The countdown of one group.
 * @param {object|undefined} group a View's group ({state, end_ms, min_end_ms, max_end_ms, ...})
 * @param {string|null} status from intersectionStatus
 * @param {number|null} serverNow the gateway's clock now (ms), null while not synced
 * @param {number} maxShown longer waits read "<maxShown>+" (markers have room for two digits)
 * @returns {{kind: "count"|"range"|"atleast"|"atmost"|"none", text: string, why: string|null,
 *            seconds?: number, lo?: number, hi?: number}}
 */
export function countdown(group, status, serverNow, maxShown = MAX_SHOWN_S) {
  if (status !== null) return none(status);
  const state = knownState(group?.state);
  if (state === null) return none("unknown_state");
  if (state === "dark") return none("dark");
  if (serverNow === null || !Number.isFinite(serverNow)) return none("syncing");
  const end = group.end_ms;
  if (Number.isFinite(end)) {
    const left = end - serverNow;
    if (left <= 0) return none("ended");
    const seconds = Math.ceil(left / 1000);
    const text = seconds > maxShown ? `${maxShown}+` : String(seconds);
    return { kind: "count", text, why: null, seconds };
  }
  return range(group.min_end_ms, group.max_end_ms, serverNow, maxShown);
}

/** An actuated group's window: "12–30", "≥12", "≤30" or nothing. Never a single number. */
function range(minEnd, maxEnd, now, maxShown) {
  const hasMin = Number.isFinite(minEnd);
  const hasMax = Number.isFinite(maxEnd);
  if (!hasMin && !hasMax) return none("no_timing");
  if (hasMin && hasMax && minEnd > maxEnd) return none("no_timing");
  if (hasMax && maxEnd - now <= 0) return none("ended");
  const lo = hasMin ? Math.floor((minEnd - now) / 1000) : 0;
  const hi = hasMax ? Math.ceil((maxEnd - now) / 1000) : null;
  if (lo >= 1 && hi !== null && hi <= maxShown) {
    return { kind: "range", text: `${lo}–${hi}`, why: null, lo, hi };
  }
  if (lo >= 1) {
    const text = lo > maxShown ? `${maxShown}+` : `≥${lo}`;
    return { kind: "atleast", text, why: null, lo };
  }
  if (hi !== null && hi <= maxShown) return { kind: "atmost", text: `≤${hi}`, why: null, hi };
  return none("no_timing");
}

/**
 * The symbol a group is drawn with: its state (colour and shape), or a grey status symbol when
 * its state cannot be trusted. `greyed` asks for the last known state drawn grey (disconnected).
 */
export function groupSymbol(group, status) {
  if (status === "disconnected") return { symbol: knownState(group?.state) ?? "unknown", greyed: true };
  if (UNTRUSTED.has(status)) return { symbol: status, greyed: true };
  return { symbol: knownState(group?.state) ?? "unknown", greyed: false };
}

/**
 * What a one-glance marker shows for an intersection: the main group, or the intersection's
 * status symbol and word when it has one (offline, stale, flash, manual, ...).
 */
export function describeMarker(view, mainSg, ctx, serverNow) {
  const status = intersectionStatus(view, ctx);
  const group = view?.groups?.find((g) => g.sg === mainSg);
  if (status === null) {
    return { status, ...groupSymbol(group, status), countdown: countdown(group, status, serverNow) };
  }
  const symbol = status === "disconnected" ? groupSymbol(group, status) : { symbol: status, greyed: UNTRUSTED.has(status) };
  return { status, ...symbol, countdown: none(status) };
}
