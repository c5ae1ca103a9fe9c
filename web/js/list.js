// The list of all intersections by district: the accessible fallback to the map. Each row is one
// button whose text (partly visually hidden) says the main movement's light and countdown in
// words, so a screen reader reads the same as a sighted user sees.

import { describeMarker } from "./countdown.js";
import { district, names, spoken, t } from "./i18n.js";
import { arrowEl, el, setClass, setSymbol, setText, symbolEl } from "./symbols.js";

export class ListView {
  /**
   * @param {HTMLElement} container
   * @param {HTMLElement} countEl
   * @param {{intersections: object[], onSelect: (id: string) => void}} options
   */
  constructor(container, countEl, { intersections, onSelect }) {
    this.container = container;
    this.countEl = countEl;
    this.intersections = intersections;
    this.onSelect = onSelect;
    this.rows = new Map();
    this.only = null;
    this.build();
  }

  build() {
    this.container.replaceChildren();
    this.rows.clear();
    const districts = new Map();
    for (const item of this.intersections) {
      if (!districts.has(item.district)) districts.set(item.district, []);
      districts.get(item.district).push(item);
    }
    for (const [name, items] of districts) {
      const section = el("section", "dist");
      section.append(el("h3", "dist-name", district(name)));
      const list = el("ul", "ilist");
      for (const item of items) list.append(this._row(item));
      section.append(list);
      this.container.append(section);
    }
    this.filter(this.only);
  }

  /** Show only these ids (a Set), or everything (null). */
  filter(only) {
    this.only = only;
    let shown = 0;
    for (const [id, row] of this.rows) {
      const visible = only === null || only.has(id);
      row.li.hidden = !visible;
      if (visible) shown += 1;
    }
    for (const section of this.container.querySelectorAll(".dist")) {
      section.hidden = !section.querySelector("li:not([hidden])");
    }
    setText(this.countEl, t("list_count", { n: shown }));
  }

  render(ctx) {
    for (const row of this.rows.values()) {
      if (row.li.hidden) continue;
      const shown = describeMarker(ctx.store.get(row.item.id), row.item.main_sg, ctx, ctx.serverNow);
      setSymbol(row.sym, shown.symbol, shown.greyed);
      const number = shown.countdown.kind !== "none";
      setText(row.cd, number ? shown.countdown.text : shown.status ? t(`status_${shown.status}`) : "");
      setClass(row.cd, number ? "cd" : "cd cd--word");
      setText(row.said, `: ${this._spokenState(row, shown)}`);
    }
  }

  _spokenState(row, shown) {
    if (shown.status !== null) return t(`explain_${shown.status}`);
    const main = row.mainGroup;
    const movement = main
      ? t("group_phrase", { approach: t(`approach_${main.approach}`), movement: t(`movement_${main.movement}`) })
      : "";
    return `${movement} ${t(`state_${shown.symbol}`)}, ${spoken(shown.countdown)}`;
  }

  _row(item) {
    const li = el("li", "irow-item");
    li.dataset.id = item.id;
    const button = el("button", "irow");
    button.type = "button";
    button.dataset.id = item.id;
    const { primary, secondary } = names(item);
    const sym = symbolEl();
    const mainGroup = item.groups.find((g) => g.sg === item.main_sg);
    const light = el("span", "irow-light");
    if (mainGroup) light.append(arrowEl(mainGroup.movement, mainGroup.approach));
    light.append(sym);
    const text = el("span", "irow-text");
    const sub = el("span", "irow-sub", `${secondary} · ${item.id}`);
    sub.prepend(el("span", "sr-only", ", "));
    text.append(el("span", "irow-name", primary), sub);
    const cd = el("span", "cd");
    cd.setAttribute("aria-hidden", "true"); // said in words below
    const said = el("span", "sr-only");
    button.append(light, text, cd, said);
    button.addEventListener("click", () => this.onSelect(item.id));
    li.append(button);
    this.rows.set(item.id, { item, li, button, sym, cd, said, mainGroup });
    return li;
  }

  /** Bring a row into view and focus it. */
  reveal(id) {
    const row = this.rows.get(id);
    if (!row) return;
    row.li.hidden = false;
    row.button.scrollIntoView({ block: "center" });
    row.button.focus({ preventScroll: true });
  }
}
