// The search field: a combobox whose listbox offers matching intersections (keyboard: arrows,
// Enter, Escape). Matching itself is search.js.

import { buildIndex, search } from "./search.js";
import { district, names, t } from "./i18n.js";
import { el } from "./symbols.js";

const LIMIT = 8;

export class SearchBox {
  /**
   * @param {HTMLInputElement} input
   * @param {HTMLUListElement} results
   * @param {{intersections: object[], onPick: (id: string) => void,
   *          onQuery: (ids: Set<string>|null) => void}} options
   */
  constructor(input, results, { intersections, onPick, onQuery }) {
    this.input = input;
    this.results = results;
    this.index = buildIndex(intersections);
    this.onPick = onPick;
    this.onQuery = onQuery;
    this.items = [];
    this.active = -1;
    input.addEventListener("input", () => this._update());
    input.addEventListener("keydown", (event) => this._key(event));
    input.addEventListener("focus", () => this._update());
    input.addEventListener("blur", () => setTimeout(() => this._hide(), 150));
  }

  _update() {
    const query = this.input.value;
    const all = query.trim() ? search(this.index, query, Infinity) : null;
    this.onQuery(all === null ? null : new Set(all.map((item) => item.id)));
    this.items = all === null ? [] : all.slice(0, LIMIT);
    this.active = -1;
    this.results.replaceChildren();
    if (all === null) {
      this._hide();
      return;
    }
    if (this.items.length === 0) {
      this.results.append(el("li", "result result--none", t("no_results")));
    }
    this.items.forEach((item, i) => {
      const { primary, secondary } = names(item);
      const li = el("li", "result");
      li.id = `result-${item.id}`;
      li.dataset.id = item.id;
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", "false");
      li.append(el("span", "result-name", primary), el("span", "result-sub", `${secondary} · ${district(item.district)}`));
      li.addEventListener("mousedown", (event) => event.preventDefault()); // keep focus in the field
      li.addEventListener("click", () => this._pick(i));
      this.results.append(li);
    });
    this.results.hidden = false;
    this.input.setAttribute("aria-expanded", "true");
  }

  _hide() {
    this.results.hidden = true;
    this.input.setAttribute("aria-expanded", "false");
    this.input.removeAttribute("aria-activedescendant");
  }

  _key(event) {
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      if (this.items.length === 0) return;
      event.preventDefault();
      const step = event.key === "ArrowDown" ? 1 : -1;
      this.active = (this.active + step + this.items.length) % this.items.length;
      [...this.results.children].forEach((li, i) => li.setAttribute("aria-selected", String(i === this.active)));
      this.input.setAttribute("aria-activedescendant", `result-${this.items[this.active].id}`);
    } else if (event.key === "Enter") {
      if (this.items.length === 0) return;
      event.preventDefault();
      this._pick(Math.max(0, this.active));
    } else if (event.key === "Escape") {
      this._hide();
    }
  }

  _pick(i) {
    const item = this.items[i];
    if (!item) return;
    this._hide();
    this.onPick(item.id);
  }
}
