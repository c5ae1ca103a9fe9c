// Finding an intersection by what a person types: Chinese, pinyin or English, or its id. Pure.
//
// Latin text is compared without case, tone marks, spaces or punctuation ("nandajie" finds
// "Nan Dajie & Shengli Lu"); every word of the query must occur. A Chinese query may leave out
// 与 / 交叉口 and the like: its characters must then occur in order ("南大街胜利路" finds
// 南大街与胜利路交叉口). Substring hits rank before such in-order hits, earlier hits before later.

const CJK = /[\u3400-\u9fff]/;

/** Lower case, no tone marks, no spaces or punctuation. */
export function fold(text) {
  return String(text ?? "")
    .normalize("NFD")
    .replace(/[\u0300-\u036f]/g, "")
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, "");
}

/** The searchable forms of each intersection. */
export function buildIndex(intersections) {
  return intersections.map((item) => ({
    item,
    keys: [fold(item.name_zh), fold(item.name_en), fold(item.id), fold(item.district)],
  }));
}

function inOrder(needle, haystack) {
  let at = 0;
  for (const ch of needle) {
    at = haystack.indexOf(ch, at);
    if (at < 0) return false;
    at += 1;
  }
  return true;
}

/** How well one word matches one entry: lower is better, Infinity is no match. */
function wordScore(word, keys) {
  let best = Infinity;
  for (const key of keys) {
    const at = key.indexOf(word);
    if (at >= 0) best = Math.min(best, at === 0 ? 0 : 1);
  }
  if (best === Infinity && CJK.test(word) && keys.some((key) => inOrder(word, key))) best = 2;
  return best;
}

/**
 * Entries matching `query`, best first (ties in registry order), at most `limit`.
 * @returns {object[]} the intersections themselves
 */
export function search(index, query, limit = 10) {
  const words = String(query ?? "")
    .trim()
    .split(/\s+/)
    .map(fold)
    .filter(Boolean);
  if (words.length === 0) return [];
  const hits = [];
  index.forEach((entry, order) => {
    let score = 0;
    for (const word of words) {
      score += wordScore(word, entry.keys);
      if (score === Infinity) return;
    }
    hits.push({ score, order, item: entry.item });
  });
  hits.sort((a, b) => a.score - b.score || a.order - b.order);
  return hits.slice(0, limit).map((hit) => hit.item);
}
