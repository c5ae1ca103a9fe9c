// Holding views as the gateway sends them (web/js/store.js) and the street sketch (streets.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import { ViewStore } from "../js/store.js";
import { streetLines, streetsOf } from "../js/streets.js";

test("a snapshot replaces everything: what is no longer subscribed is dropped", () => {
  const store = new ViewStore();
  store.apply({ type: "snapshot", server_time_ms: 1, intersections: [{ id: "YT001" }, { id: "YT002" }] });
  store.apply({ type: "snapshot", server_time_ms: 2, intersections: [{ id: "YT002", mode: "flash" }] });
  assert.equal(store.get("YT001"), undefined);
  assert.equal(store.get("YT002").mode, "flash");
  assert.equal(store.size, 1);
});

test("an update replaces only the views it carries", () => {
  const store = new ViewStore();
  store.apply({ type: "snapshot", server_time_ms: 1, intersections: [{ id: "YT001", mode: "normal" }, { id: "YT002" }] });
  const changed = store.apply({ type: "update", server_time_ms: 2, intersections: [{ id: "YT001", mode: "manual" }] });
  assert.deepEqual(changed, ["YT001"]);
  assert.equal(store.get("YT001").mode, "manual");
  assert.ok(store.get("YT002"));
});

test("street names come from '<street>与<street>交叉口'", () => {
  assert.deepEqual(streetsOf("南大街与胜利路交叉口"), ["南大街", "胜利路"]);
  assert.deepEqual(streetsOf("某地"), []);
});

test("intersections on one street are joined in order along it", () => {
  const lines = streetLines([
    { name_zh: "A路与X街交叉口", lat: 37.5, lon: 121.3 },
    { name_zh: "A路与Y街交叉口", lat: 37.5, lon: 121.1 },
    { name_zh: "A路与Z街交叉口", lat: 37.5, lon: 121.2 },
    { name_zh: "B路与Z街交叉口", lat: 37.6, lon: 121.2 },
  ]);
  const a = lines.find((l) => l.name === "A路");
  assert.deepEqual(a.points, [[37.5, 121.1], [37.5, 121.2], [37.5, 121.3]]);
  const z = lines.find((l) => l.name === "Z街");
  assert.deepEqual(z.points, [[37.5, 121.2], [37.6, 121.2]]);
  assert.equal(lines.find((l) => l.name === "B路"), undefined, "one intersection is no line");
});
