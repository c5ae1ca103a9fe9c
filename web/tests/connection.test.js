// The WebSocket life cycle (web/js/connection.js), against a fake socket and fake timers.
import assert from "node:assert/strict";
import { beforeEach, afterEach, mock, test } from "node:test";

import { Connection, backoffDelay } from "../js/connection.js";

class FakeSocket {
  static all = [];
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    FakeSocket.all.push(this);
  }
  send(text) {
    this.sent.push(JSON.parse(text));
  }
  close() {
    this.readyState = 3;
  }
  // test helpers
  open() {
    this.readyState = 1;
    this.onopen?.();
  }
  receive(frame) {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
  drop(code = 1006) {
    this.readyState = 3;
    this.onclose?.({ code });
  }
  ops(op) {
    return this.sent.filter((m) => m.op === op);
  }
}

let clockMs;
let states;
let frames;
let samples;

function connect(options = {}) {
  const conn = new Connection(
    "ws://gateway/ws/v1",
    {
      onState: (state, info) => states.push({ state, info }),
      onFrame: (frame) => frames.push(frame),
      onTime: (t0, t1, server) => samples.push({ t0, t1, server }),
    },
    { WebSocket: FakeSocket, now: () => clockMs, ...options },
  );
  conn.start();
  return conn;
}

function advance(ms) {
  clockMs += ms;
  mock.timers.tick(ms);
}

beforeEach(() => {
  FakeSocket.all = [];
  clockMs = 1000;
  states = [];
  frames = [];
  samples = [];
  mock.timers.enable({ apis: ["setTimeout"] });
  mock.method(console, "warn", () => {});
});

afterEach(() => {
  mock.timers.reset();
  mock.restoreAll();
});

test("backoff doubles up to a cap, with jitter between half and all of it", () => {
  assert.equal(backoffDelay(0, { random: () => 0 }), 250);
  assert.equal(backoffDelay(0, { random: () => 1 }), 500);
  assert.equal(backoffDelay(3, { random: () => 0 }), 2000);
  assert.equal(backoffDelay(3, { random: () => 1 }), 4000);
  assert.equal(backoffDelay(20, { random: () => 1 }), 30_000);
  assert.equal(backoffDelay(20, { random: () => 0 }), 15_000);
  const spread = new Set(Array.from({ length: 50 }, () => backoffDelay(4)));
  assert.ok(spread.size > 40, "jitter spreads the retries");
});

test("on open it probes the clock, subscribes, and turns live with the snapshot", () => {
  const conn = connect();
  conn.subscribe({ bbox: [121, 37, 122, 38] });
  const ws = FakeSocket.all[0];
  assert.deepEqual(states.map((s) => s.state), ["connecting"]);
  ws.open();
  advance(1000);
  assert.equal(ws.ops("time").length, 4);
  assert.deepEqual(ws.ops("subscribe"), [{ op: "subscribe", bbox: [121, 37, 122, 38] }]);
  ws.receive({ type: "time", t0: ws.ops("time")[0].t0, server_time_ms: 99 });
  assert.equal(samples.length, 1);
  assert.equal(samples[0].server, 99);
  ws.receive({ type: "snapshot", server_time_ms: 1, intersections: [] });
  assert.equal(states.at(-1).state, "live");
  assert.equal(frames.length, 1);
});

test("a lost link reconnects after a backoff and subscribes afresh (a new snapshot)", () => {
  const conn = connect();
  conn.subscribe({ all: true });
  FakeSocket.all[0].open();
  FakeSocket.all[0].receive({ type: "snapshot", server_time_ms: 1, intersections: [] });
  FakeSocket.all[0].drop(1001);
  assert.equal(states.at(-1).state, "reconnecting");
  assert.equal(states.at(-1).info.code, 1001);
  assert.equal(FakeSocket.all.length, 1, "no instant reconnect: backoff first");
  advance(600);
  assert.equal(FakeSocket.all.length, 2);
  const ws = FakeSocket.all[1];
  ws.open();
  assert.deepEqual(ws.ops("subscribe"), [{ op: "subscribe", all: true }]);
  ws.receive({ type: "snapshot", server_time_ms: 2, intersections: [] });
  assert.equal(states.at(-1).state, "live");
});

test("repeated failures back off exponentially", () => {
  connect();
  const gaps = [];
  for (let i = 0; i < 5; i += 1) {
    const before = FakeSocket.all.length;
    FakeSocket.all.at(-1).drop();
    let waited = 0;
    while (FakeSocket.all.length === before) {
      advance(50);
      waited += 50;
    }
    gaps.push(waited);
  }
  for (let i = 1; i < gaps.length; i += 1) assert.ok(gaps[i] >= gaps[i - 1] * 0.9, `gaps grow: ${gaps}`);
  assert.ok(gaps.at(-1) >= 4000, `fifth retry waits at least 4 s: ${gaps}`);
});

test("updates before the snapshot of a new link are ignored", () => {
  connect();
  const ws = FakeSocket.all[0];
  ws.open();
  ws.receive({ type: "update", server_time_ms: 1, intersections: [{ id: "YT001" }] });
  assert.equal(frames.length, 0);
});

test("a heartbeat without an answer drops a half-open link and reconnects", () => {
  connect({ heartbeatMs: 10_000, heartbeatTimeoutMs: 5_000 });
  const ws = FakeSocket.all[0];
  ws.open();
  ws.receive({ type: "snapshot", server_time_ms: 1, intersections: [] });
  advance(10_000);
  assert.equal(states.at(-1).state, "live");
  advance(5_000);
  assert.equal(states.at(-1).state, "reconnecting", "no answer to the heartbeat");
  assert.equal(ws.readyState, 3);
});

test("a heartbeat that is answered keeps the link", () => {
  connect({ heartbeatMs: 10_000, heartbeatTimeoutMs: 5_000 });
  const ws = FakeSocket.all[0];
  ws.open();
  ws.receive({ type: "snapshot", server_time_ms: 1, intersections: [] });
  advance(10_000);
  const probe = ws.ops("time").at(-1);
  ws.receive({ type: "time", t0: probe.t0, server_time_ms: 5 });
  advance(5_000);
  assert.equal(states.at(-1).state, "live");
});

test("a rate-limited subscribe is sent again", () => {
  const conn = connect();
  conn.subscribe({ all: true });
  const ws = FakeSocket.all[0];
  ws.open();
  ws.receive({ type: "error", code: "rate_limited", message: "slow down" });
  advance(2000);
  assert.equal(ws.ops("subscribe").length, 2);
});
