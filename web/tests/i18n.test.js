// Words and spoken forms in both languages (web/js/i18n.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import { district, initialLang, names, setLang, spoken, t, whyText } from "../js/i18n.js";

test("Chinese is the default language", () => {
  assert.equal(initialLang(""), "zh");
  assert.equal(initialLang("?lang=en"), "en");
  assert.equal(initialLang("?lang=fr"), "zh");
});

test("placeholders are filled and both languages have the same words", () => {
  setLang("zh");
  assert.equal(t("seconds_ago", { s: 3 }), "3 秒前");
  setLang("en");
  assert.equal(t("seconds_ago", { s: 3 }), "3 s ago");
  assert.equal(t("status_offline"), "offline");
  setLang("zh");
  assert.equal(t("status_offline"), "离线");
});

test("names and districts follow the language", () => {
  const item = { name_zh: "南大街与胜利路交叉口", name_en: "Nan Dajie & Shengli Lu", district: "芝罘区" };
  assert.deepEqual(names(item, "zh"), { primary: "南大街与胜利路交叉口", secondary: "Nan Dajie & Shengli Lu" });
  assert.equal(names(item, "en").primary, "Nan Dajie & Shengli Lu");
  assert.equal(district("芝罘区", "en"), "Zhifu");
  assert.equal(district("芝罘区", "zh"), "芝罘区");
  assert.equal(district("新区", "en"), "新区", "an unknown district keeps its name");
});

test("countdowns are spoken in words, and reasons shown instead of numbers", () => {
  setLang("en");
  assert.equal(spoken({ kind: "count", seconds: 12 }), "12 seconds left");
  assert.equal(spoken({ kind: "range", lo: 12, hi: 30 }), "12 to 30 seconds left");
  assert.equal(spoken({ kind: "atleast", lo: 12 }), "at least 12 seconds left");
  assert.equal(spoken({ kind: "none", why: "ended" }), "no countdown");
  assert.equal(whyText({ kind: "none", why: "offline" }), "offline");
  assert.equal(whyText({ kind: "none", why: "ended" }), "about to change");
  assert.equal(whyText({ kind: "count", text: "5", why: null }), "");
  setLang("zh");
});
