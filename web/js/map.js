// The city map (Leaflet, loaded by index.html as the global `L`): one marker per intersection.
//
// City zoom: a pill with the main through movement's light and countdown. From DETAIL_ZOOM on,
// each marker becomes a small crossing: per approach, an arrow per movement with its own light
// and countdown. Markers are built once per zoom level and then only have their text and classes
// rewritten when they change. The visible area (padded) is reported, debounced, so the page
// subscribes by bbox. Without tiles (offline) the map shows a plain background and a sketch of
// the streets.

import { countdown, describeMarker, groupSymbol, intersectionStatus } from "./countdown.js";
import { names, t } from "./i18n.js";
import { arrowEl, el, setClass, setSymbol, setText, sortedGroups, symbolEl } from "./symbols.js";
import { streetLines } from "./streets.js";

export const DETAIL_ZOOM = 17;
const AREA_DEBOUNCE_MS = 300;
const AREA_PAD = 0.5; // subscribe half a screen beyond each edge: short pans need no new subscribe
const TILE_TIMEOUT_MS = 6000;
const PILL_BOX = { w: 60, h: 24 }; // room a pill needs, in px, for decluttering

export class CityMap {
  /**
   * @param {HTMLElement} container
   * @param {object} options
   * @param {object[]} options.intersections registry entries
   * @param {string} options.tileUrl Leaflet URL template; "" for no tiles
   * @param {string} options.tileAttribution
   * @param {(id: string) => void} options.onSelect a marker was clicked
   * @param {(bbox: number[]) => void} options.onArea the area to subscribe changed
   * @param {HTMLElement} options.notice where to say that tiles failed
   */
  constructor(container, { intersections, tileUrl, tileAttribution, onSelect, onArea, notice }) {
    const L = globalThis.L;
    if (!L) throw new Error("Leaflet did not load");
    this.L = L;
    this.container = container;
    this.onSelect = onSelect;
    this.onArea = onArea;
    this.notice = notice;
    this.intersections = intersections;
    this.records = new Map();
    this.selected = null;
    this.subscribed = null;
    this.areaTimer = null;

    this.map = L.map(container, { minZoom: 9, maxZoom: 19, zoomSnap: 0.25, zoomDelta: 1 });
    this.map.attributionControl.setPrefix('<a href="https://leafletjs.com">Leaflet</a>');
    this.map.fitBounds(boundsOf(L, intersections), { padding: [36, 36] });
    this.lod = lodFor(this.map.getZoom());
    container.dataset.lod = this.lod;
    this._tiles(tileUrl, tileAttribution);
    for (const item of intersections) this._addMarker(item);
    this.map.on("zoomend", () => this._zoomed());
    this.map.on("moveend", () => this._moved());
    this.map.on("resize", () => this._declutter());
    this._declutter();
    this._reportArea(true);
  }

  /** Redraw every marker (called about ten times a second; writes only what changed). */
  render(ctx) {
    for (const record of this.records.values()) this._renderRecord(record, ctx);
  }

  /** Rebuild markers after a language change. */
  relabel() {
    for (const record of this.records.values()) this._rebuild(record);
  }

  /** Centre on an intersection, zoomed in far enough to show its approaches. */
  focus(id) {
    const record = this.records.get(id);
    if (!record) return;
    this.select(id);
    const zoom = Math.max(this.map.getZoom(), DETAIL_ZOOM);
    this.map.setView([record.item.lat, record.item.lon], zoom, { animate: false });
  }

  /**
   * Pan, if needed, so that an intersection is not hidden behind `panel` (the detail panel: a
   * bottom sheet on phones, a side panel on wide screens).
   */
  keepClear(id, panel) {
    const record = this.records.get(id);
    if (!record || !panel) return;
    const box = this.container.getBoundingClientRect();
    const cover = panel.getBoundingClientRect();
    const p = this.map.latLngToContainerPoint([record.item.lat, record.item.lon]);
    const free = { x0: 0, y0: 0, x1: box.width, y1: box.height };
    if (cover.width >= box.width * 0.8) free.y1 = Math.max(0, cover.top - box.top); // bottom sheet
    else free.x1 = Math.max(0, cover.left - box.left); // side panel
    const margin = 90;
    const dx = p.x < free.x0 + margin || p.x > free.x1 - margin ? p.x - (free.x0 + free.x1) / 2 : 0;
    const dy = p.y < free.y0 + margin || p.y > free.y1 - margin ? p.y - (free.y0 + free.y1) / 2 : 0;
    if (dx || dy) this.map.panBy([dx, dy], { animate: false });
  }

  select(id) {
    this.selected = id;
    for (const record of this.records.values()) {
      record.root.classList.toggle("is-selected", record.item.id === id);
    }
    this._declutter();
  }

  /** The container became visible again (list → map). */
  shown() {
    this.map.invalidateSize();
    this._reportArea(true);
  }

  /** The padded visible area as [west, south, east, north]. */
  area() {
    return toBbox(this.map.getBounds().pad(AREA_PAD));
  }

  // -- tiles -------------------------------------------------------------------------------

  _tiles(url, attribution) {
    if (!url) {
      this._tilesFailed();
      return;
    }
    const layer = this.L.tileLayer(url, { maxZoom: 19, attribution });
    let loaded = false;
    layer.on("tileload", () => {
      loaded = true;
      this._tilesOk();
    });
    layer.on("tileerror", () => {
      if (!loaded) this._tilesFailed();
    });
    setTimeout(() => {
      if (!loaded) this._tilesFailed();
    }, TILE_TIMEOUT_MS);
    layer.addTo(this.map);
  }

  _tilesFailed() {
    if (this.sketch) return;
    this.container.classList.add("tiles-failed");
    this.sketch = this.L.layerGroup(
      streetLines(this.intersections).map(({ points }) =>
        this.L.polyline(points, { className: "street-sketch", interactive: false }),
      ),
    ).addTo(this.map);
    this.notice.hidden = false;
    this.notice.dataset.i18n = "tiles_failed";
    this.notice.textContent = t("tiles_failed");
  }

  _tilesOk() {
    if (!this.sketch) return;
    this.sketch.remove();
    this.sketch = null;
    this.container.classList.remove("tiles-failed");
    this.notice.hidden = true;
  }

  // -- area subscription ----------------------------------------------------------------------

  _moved() {
    this._declutter();
    clearTimeout(this.areaTimer);
    this.areaTimer = setTimeout(() => this._reportArea(false), AREA_DEBOUNCE_MS);
  }

  _reportArea(force) {
    const visible = this.map.getBounds();
    const sub = this.subscribed;
    if (!force && sub && sub.contains(visible) && areaOf(sub) < 16 * areaOf(visible)) return;
    this.subscribed = visible.pad(AREA_PAD);
    this.onArea(toBbox(this.subscribed));
  }

  // -- markers ------------------------------------------------------------------------------

  _zoomed() {
    const lod = lodFor(this.map.getZoom());
    this.container.dataset.lod = lod;
    if (lod === this.lod) return;
    this.lod = lod;
    for (const record of this.records.values()) this._rebuild(record);
    this._declutter();
  }

  /**
   * Where pills would overlap, only the first (registry order, the selected one before all)
   * keeps its number; the others shrink to a dot with the light's symbol. Zooming in gives them
   * room. Greedy, over a grid of cells: a few hundred boxes take well under a millisecond.
   */
  _declutter() {
    const size = this.map.getSize();
    const cell = 64;
    const grid = new Map();
    const records = [...this.records.values()];
    if (this.selected && this.records.has(this.selected)) {
      records.unshift(this.records.get(this.selected));
    }
    const placed = new Set();
    for (const record of records) {
      if (placed.has(record)) continue;
      placed.add(record);
      let dot = false;
      if (this.lod !== "detail") {
        const p = this.map.latLngToContainerPoint([record.item.lat, record.item.lon]);
        const inside = p.x > -PILL_BOX.w && p.y > -PILL_BOX.h && p.x < size.x + PILL_BOX.w && p.y < size.y + PILL_BOX.h;
        if (inside) {
          const box = { x0: p.x - PILL_BOX.w / 2, y0: p.y - PILL_BOX.h / 2, x1: p.x + PILL_BOX.w / 2, y1: p.y + PILL_BOX.h / 2 };
          const keys = cellsOf(box, cell);
          dot = keys.some((key) => (grid.get(key) ?? []).some((other) => overlaps(box, other)));
          if (!dot) for (const key of keys) grid.set(key, [...(grid.get(key) ?? []), box]);
        }
      }
      if (record.dot !== dot) {
        record.dot = dot;
        record.root.classList.toggle("is-dot", dot);
        record.marker.setZIndexOffset(dot ? -1000 : 0);
      }
    }
  }

  _addMarker(item) {
    const record = { item, marker: null, root: null, cells: [], hub: null, dot: false };
    record.marker = this.L.marker([item.lat, item.lon], {
      icon: this._icon(record),
      title: names(item).primary,
      keyboard: true,
      riseOnHover: true,
    });
    record.marker.on("click", () => this.onSelect(item.id));
    record.marker.addTo(this.map);
    this.records.set(item.id, record);
  }

  _rebuild(record) {
    record.marker.setIcon(this._icon(record));
    record.marker.options.title = names(record.item).primary;
    const element = record.marker.getElement();
    if (element) {
      element.title = names(record.item).primary;
      element.setAttribute("aria-label", names(record.item).primary);
    }
  }

  _icon(record) {
    record.root = this.lod === "detail" ? buildCross(record) : buildPill(record);
    record.root.dataset.id = record.item.id;
    if (record.item.id === this.selected) record.root.classList.add("is-selected");
    if (record.dot) record.root.classList.add("is-dot");
    record.lastRender = null;
    return this.L.divIcon({ html: record.root, className: "sg-icon", iconSize: null });
  }

  _renderRecord(record, ctx) {
    const view = ctx.store.get(record.item.id);
    if (this.lod !== "detail") {
      const shown = describeMarker(view, record.item.main_sg, ctx, ctx.serverNow);
      const [cell] = record.cells;
      setSymbol(cell.sym, shown.symbol, shown.greyed);
      const word = shown.status && shown.status !== "disconnected" ? t(`status_${shown.status}`) : "";
      const number = shown.countdown.kind !== "none";
      setText(cell.cd, number ? shown.countdown.text : word);
      setClass(cell.cd, number ? "cd" : word ? "cd cd--word" : "cd cd--blank");
      setClass(record.root, markerClass("mk mk-pill", shown.status, record));
      return;
    }
    const status = intersectionStatus(view, ctx);
    for (const cell of record.cells) {
      const group = view?.groups?.find((g) => g.sg === cell.group.sg);
      const { symbol, greyed } = groupSymbol(group, status);
      const cd = countdown(group, status, ctx.serverNow);
      setSymbol(cell.sym, symbol, greyed);
      setText(cell.cd, cd.kind === "none" ? "" : cd.text);
      setClass(cell.chip, `chip chip--${greyed ? "grey" : symbol}`);
    }
    const hubSymbol = status === null ? "ok" : status;
    setSymbol(record.hub.sym, hubSymbol, false);
    setText(record.hub.word, status === null || status === "disconnected" ? "" : t(`status_${status}`));
    setClass(record.root, markerClass("mk mk-cross", status, record));
  }
}

function markerClass(base, status, record) {
  const selected = record.root.classList.contains("is-selected");
  return `${base}${status ? ` is-${status}` : ""}${selected ? " is-selected" : ""}${record.dot ? " is-dot" : ""}`;
}

function cellsOf(box, cell) {
  const keys = [];
  for (let x = Math.floor(box.x0 / cell); x <= Math.floor(box.x1 / cell); x += 1) {
    for (let y = Math.floor(box.y0 / cell); y <= Math.floor(box.y1 / cell); y += 1) keys.push(`${x},${y}`);
  }
  return keys;
}

function overlaps(a, b) {
  return a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1;
}

function buildPill(record) {
  const root = el("div", "mk mk-pill");
  const sym = symbolEl();
  const cd = el("span", "cd");
  root.append(sym, cd);
  record.cells = [{ sym, cd }];
  return root;
}

function buildCross(record) {
  const root = el("div", "mk mk-cross");
  root.append(el("div", "x-name", names(record.item).primary));
  const grid = el("div", "x-grid");
  record.cells = [];
  for (const approach of ["N", "E", "S", "W"]) {
    const arm = el("div", `x-arm x-arm--${approach}`);
    for (const group of sortedGroups(record.item.groups)) {
      if (group.approach !== approach) continue;
      const chip = el("span", "chip");
      const sym = symbolEl();
      const cd = el("span", "cd");
      chip.append(arrowEl(group.movement, group.approach), sym, cd);
      chip.title = `${t(`approach_${group.approach}`)} ${t(`movement_${group.movement}`)}`;
      arm.append(chip);
      record.cells.push({ group, chip, sym, cd });
    }
    grid.append(arm);
  }
  const hub = el("div", "x-hub");
  const sym = symbolEl();
  const word = el("span", "x-word");
  hub.append(sym, word);
  grid.append(hub);
  record.hub = { sym, word };
  root.append(grid);
  return root;
}

function lodFor(zoom) {
  return zoom >= DETAIL_ZOOM ? "detail" : "city";
}

function boundsOf(L, intersections) {
  return L.latLngBounds(intersections.map((i) => [i.lat, i.lon]));
}

function toBbox(bounds) {
  const r = (x) => Math.round(x * 1e5) / 1e5;
  return [r(bounds.getWest()), r(bounds.getSouth()), r(bounds.getEast()), r(bounds.getNorth())];
}

function areaOf(bounds) {
  return (bounds.getEast() - bounds.getWest()) * (bounds.getNorth() - bounds.getSouth());
}
