// The NTP-style estimate of the gateway clock (web/js/clock.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import { ClockEstimate, sampleFrom } from "../js/clock.js";

test("offset is the server time minus the local midpoint of the round trip", () => {
  const s = sampleFrom(1000, 1100, 50_050);
  assert.equal(s.rtt, 100);
  assert.equal(s.offset, 50_050 - 1050);
});

test("the sample with the lowest round trip wins, whatever its order", () => {
  const clock = new ClockEstimate();
  clock.add(0, 400, 10_300); // rtt 400, offset 10_100 (a queue delayed the answer)
  clock.add(1000, 1020, 11_010); // rtt 20, offset 10_000: the good one
  clock.add(2000, 2300, 12_250); // rtt 300, offset 10_100
  assert.equal(clock.serverNow(3000), 13_000);
  assert.equal(clock.errorBoundMs(3000), 10);
});

test("no estimate before the first sample: serverNow is null, not a guess", () => {
  const clock = new ClockEstimate();
  assert.equal(clock.synced(0), false);
  assert.equal(clock.serverNow(0), null);
  assert.equal(clock.errorBoundMs(0), null);
});

test("impossible and too slow probes are refused", () => {
  const clock = new ClockEstimate({ maxRttMs: 2000 });
  assert.equal(clock.add(100, 50, 1000), false, "negative round trip");
  assert.equal(clock.add(0, 2500, 1000), false, "round trip over the limit");
  assert.equal(clock.add(0, Number.NaN, 1000), false, "not a number");
  assert.equal(clock.add(0, 10, undefined), false, "missing server time");
  assert.equal(clock.synced(20), false);
});

test("only the newest samples are kept, so a once-good sample does not live forever", () => {
  const clock = new ClockEstimate({ window: 3 });
  clock.add(0, 2, 1001); // rtt 2, offset 1000
  for (let i = 1; i <= 3; i += 1) clock.add(i * 100, i * 100 + 50, i * 100 + 25 + 2000); // rtt 50, offset 2000
  assert.equal(clock.serverNow(1000), 3000);
});

test("samples older than maxAgeMs are forgotten", () => {
  const clock = new ClockEstimate({ maxAgeMs: 60_000 });
  clock.add(0, 10, 1005);
  assert.equal(clock.synced(50_000), true);
  assert.equal(clock.synced(70_000), false);
  assert.equal(clock.serverNow(70_000), null);
});

test("a jump between wall and monotonic clock (device slept, clock set) is noticed", () => {
  const clock = new ClockEstimate();
  clock.add(0, 10, 5, 1_000_010); // wall - local = 1_000_000
  assert.equal(clock.drifted(5000, 1_005_000), false);
  assert.equal(clock.drifted(5000, 1_005_400), false, "within tolerance");
  assert.equal(clock.drifted(5000, 1_065_000), true, "a minute of sleep");
  clock.reset();
  assert.equal(clock.synced(5000), false);
  assert.equal(clock.drifted(5000, 1_065_000), false);
});
