// Finding intersections by Chinese, pinyin or English name (web/js/search.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import { buildIndex, fold, search } from "../js/search.js";

const CITY = [
  { id: "YT001", name_zh: "南大街与胜利路交叉口", name_en: "Nan Dajie & Shengli Lu", district: "芝罘区" },
  { id: "YT002", name_zh: "大马路与解放路交叉口", name_en: "Da Malu & Jiefang Lu", district: "芝罘区" },
  { id: "YT003", name_zh: "大马路与胜利路交叉口", name_en: "Da Malu & Shengli Lu", district: "芝罘区" },
  { id: "YT120", name_zh: "观海路与金都路交叉口", name_en: "Guanhai Lu & Jindu Lu", district: "莱山区" },
];
const ids = (query) => search(buildIndex(CITY), query).map((item) => item.id);

test("fold drops case, tone marks, spaces and punctuation", () => {
  assert.equal(fold("Nán Dàjiē & Shèngli Lu"), "nandajieshenglilu");
  assert.equal(fold("南大街 与"), "南大街与");
});

test("a Chinese name, whole or in part, finds the intersection", () => {
  assert.deepEqual(ids("南大街与胜利路交叉口"), ["YT001"]);
  assert.deepEqual(ids("胜利路"), ["YT001", "YT003"]);
});

test("a Chinese query may leave out 与 and 交叉口", () => {
  assert.deepEqual(ids("南大街胜利路"), ["YT001"]);
});

test("pinyin without spaces or with other case finds it", () => {
  assert.deepEqual(ids("nandajie"), ["YT001"]);
  assert.deepEqual(ids("SHENGLI nan"), ["YT001"]);
  assert.deepEqual(ids("jindu"), ["YT120"]);
});

test("ids and districts are searchable", () => {
  assert.deepEqual(ids("yt120"), ["YT120"]);
  assert.deepEqual(ids("莱山"), ["YT120"]);
});

test("names starting with the query rank first, ties in registry order", () => {
  assert.deepEqual(ids("da"), ["YT002", "YT003", "YT001"]);
  assert.deepEqual(ids("da malu"), ["YT002", "YT003"]);
});

test("empty queries find nothing and unmatched ones nothing", () => {
  assert.deepEqual(ids("  "), []);
  assert.deepEqual(ids("xyz"), []);
  assert.deepEqual(ids("北京"), []);
});
