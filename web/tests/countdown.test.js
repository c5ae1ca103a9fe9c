// The honesty rules of what a driver is shown (web/js/countdown.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import { countdown, describeMarker, groupSymbol, intersectionStatus, knownState } from "../js/countdown.js";

const NOW = 1_764_190_000_000;
const LIVE = { live: true };
const view = (over = {}) => ({ id: "YT001", mode: "normal", online: true, stale: false, updated_ms: NOW, groups: [], ...over });
const exact = (state, endInMs) => ({ sg: 2, state, end_ms: NOW + endInMs, min_end_ms: NOW + endInMs, max_end_ms: NOW + endInMs, likely_end_ms: NOW + endInMs, confidence: null });
const actuated = (minIn, maxIn, likelyIn = null) => ({
  sg: 2, state: "green", end_ms: null,
  min_end_ms: minIn === null ? null : NOW + minIn,
  max_end_ms: maxIn === null ? null : NOW + maxIn,
  likely_end_ms: likelyIn === null ? null : NOW + likelyIn, confidence: 60,
});

test("an exact end counts whole seconds, rounded up like a countdown display", () => {
  assert.deepEqual(countdown(exact("green", 12_300), null, NOW), { kind: "count", text: "13", why: null, seconds: 13 });
  assert.equal(countdown(exact("green", 12_000), null, NOW).text, "12");
  assert.equal(countdown(exact("red", 1), null, NOW).text, "1");
});

test("a number never reaches zero or goes below: at the end it goes blank", () => {
  for (const left of [0, -1, -400, -5000]) {
    const cd = countdown(exact("green", left), null, NOW);
    assert.equal(cd.kind, "none");
    assert.equal(cd.text, "");
    assert.equal(cd.why, "ended");
  }
});

test("no number when end_ms is null, even if likely_end_ms is known", () => {
  const cd = countdown(actuated(null, null, 9000), null, NOW);
  assert.equal(cd.kind, "none");
  assert.equal(cd.why, "no_timing");
});

test("an actuated group shows its window: 12–30, then ≤30 once the minimum has passed", () => {
  assert.equal(countdown(actuated(12_000, 30_000, 20_000), null, NOW).text, "12–30");
  assert.equal(countdown(actuated(12_600, 29_200), null, NOW).text, "12–30", "lower bound down, upper bound up");
  assert.equal(countdown(actuated(400, 30_000), null, NOW).text, "≤30");
  assert.equal(countdown(actuated(-5000, 30_000), null, NOW).text, "≤30");
  assert.equal(countdown(actuated(-5000, -1), null, NOW).kind, "none");
});

test("an actuated group without a maximum shows only its lower bound: ≥12", () => {
  assert.equal(countdown(actuated(12_000, null), null, NOW).text, "≥12");
  assert.equal(countdown(actuated(12_000, 500_000), null, NOW).text, "≥12", "a maximum too long to show");
});

test("an inconsistent window (min after max) shows nothing", () => {
  assert.equal(countdown(actuated(30_000, 12_000), null, NOW).kind, "none");
});

test("long waits are capped to what is true: 99+", () => {
  assert.equal(countdown(exact("red", 150_000), null, NOW).text, "99+");
  assert.equal(countdown(exact("red", 150_000), null, NOW, 999).text, "150");
  assert.equal(countdown(actuated(120_000, 200_000), null, NOW).text, "99+");
});

test("no number while the clock is not synced", () => {
  assert.equal(countdown(exact("green", 5000), null, null).why, "syncing");
});

test("dark and unknown states never show a number", () => {
  assert.equal(countdown(exact("dark", 5000), null, NOW).kind, "none");
  assert.equal(countdown({ ...exact("green", 5000), state: null }, null, NOW).why, "unknown_state");
  assert.equal(countdown({ ...exact("green", 5000), state: "purple" }, null, NOW).why, "unknown_state");
  assert.equal(countdown(undefined, null, NOW).why, "unknown_state");
});

test("a dark state is a state, not a missing one (the 'if (state)' bug)", () => {
  assert.equal(knownState("dark"), "dark");
  assert.deepEqual(groupSymbol(exact("dark", 5000), null), { symbol: "dark", greyed: false });
  assert.equal(knownState(0), null);
  assert.equal(knownState(""), null);
});

test("intersection status: disconnected, offline, stale and every non-normal mode forbid numbers", () => {
  assert.equal(intersectionStatus(view(), LIVE), null);
  assert.equal(intersectionStatus(view(), { live: false }), "disconnected");
  assert.equal(intersectionStatus(undefined, LIVE), "no_data");
  assert.equal(intersectionStatus(view({ online: false }), LIVE), "offline");
  assert.equal(intersectionStatus(view({ online: undefined }), LIVE), "offline", "online must be exactly true");
  assert.equal(intersectionStatus(view({ stale: true }), LIVE), "stale");
  assert.equal(intersectionStatus(view({ stale: null }), LIVE), "stale", "stale must be exactly false");
  for (const mode of ["flash", "dark", "manual", "preempt", "fault"]) {
    assert.equal(intersectionStatus(view({ mode }), LIVE), mode);
  }
  assert.equal(intersectionStatus(view({ mode: "some_future_mode" }), LIVE), "unknown");
  for (const status of ["disconnected", "offline", "stale", "flash", "manual", "dark", "preempt", "fault", "unknown"]) {
    assert.equal(countdown(exact("green", 5000), status, NOW).kind, "none", status);
  }
});

test("offline and stale groups are drawn as a grey symbol, not their last colour", () => {
  assert.deepEqual(groupSymbol(exact("green", 5000), "offline"), { symbol: "offline", greyed: true });
  assert.deepEqual(groupSymbol(exact("green", 5000), "stale"), { symbol: "stale", greyed: true });
  assert.deepEqual(groupSymbol(exact("green", 5000), "disconnected"), { symbol: "green", greyed: true });
  assert.deepEqual(groupSymbol(exact("flashing_yellow", 5000), "flash"), { symbol: "flashing_yellow", greyed: false });
});

test("a marker shows its main group, or the intersection's status symbol with no number", () => {
  const live = describeMarker(view({ groups: [exact("green", 7000)] }), 2, LIVE, NOW);
  assert.equal(live.symbol, "green");
  assert.equal(live.countdown.text, "7");
  const offline = describeMarker(view({ online: false, groups: [exact("green", 7000)] }), 2, LIVE, NOW);
  assert.equal(offline.symbol, "offline");
  assert.equal(offline.countdown.kind, "none");
  const flash = describeMarker(view({ mode: "flash", groups: [exact("flashing_yellow", 7000)] }), 2, LIVE, NOW);
  assert.equal(flash.symbol, "flash");
  assert.equal(flash.countdown.text, "");
  const missing = describeMarker(view({ groups: [] }), 2, LIVE, NOW);
  assert.equal(missing.symbol, "unknown");
  assert.equal(missing.countdown.kind, "none");
});
