// The page: load the registry, open the live connection, and redraw ten times a second from the
// views held and the gateway clock estimate. Nothing is fetched while a countdown merely runs.

import { ClockEstimate } from "./clock.js";
import { Connection } from "./connection.js";
import { DetailPanel } from "./detail.js";
import { initialLang, lang, setLang, t } from "./i18n.js";
import { ListView } from "./list.js";
import { CityMap } from "./map.js";
import { SearchBox } from "./searchbox.js";
import { ViewStore } from "./store.js";

const TICK_MS = 100;
const $ = (selector) => document.querySelector(selector);

const clock = new ClockEstimate();
const store = new ViewStore();
const stats = { ticks: 0, tickMsTotal: 0, tickMsMax: 0, frames: 0 };
let connection = null;
let connState = { state: "connecting", info: {} };
let view = "map";
let map = null;
let list = null;
let detail = null;

async function start() {
  setLang(initialLang(location.search));
  applyStaticText();
  $("#lang").addEventListener("click", () => switchLang(lang() === "zh" ? "en" : "zh"));

  const registry = await loadRegistry();
  const byId = new Map(registry.intersections.map((item) => [item.id, item]));
  const config = await loadConfig();

  detail = new DetailPanel($("#detail"), { byId, onClose: closeDetail });
  list = new ListView($("#list"), $("#list-count"), { intersections: registry.intersections, onSelect: select });
  try {
    map = new CityMap($("#map"), {
      intersections: registry.intersections,
      tileUrl: config.tileUrl,
      tileAttribution: config.tileAttribution,
      onSelect: select,
      onArea: (bbox) => view === "map" && connection?.subscribe({ bbox }),
      notice: $("#map-notice"),
    });
  } catch (error) {
    console.error("map unavailable:", error);
    const notice = $("#map-notice");
    notice.hidden = false;
    notice.dataset.i18n = "map_unavailable";
    notice.textContent = t("map_unavailable");
    setView("list");
  }
  new SearchBox($("#q"), $("#results"), {
    intersections: registry.intersections,
    onPick: pick,
    onQuery: (ids) => list.filter(ids),
  });
  $("#view-map").addEventListener("click", () => setView("map"));
  $("#view-list").addEventListener("click", () => setView("list"));

  connection = new Connection(socketUrl(), {
    onState: showConnection,
    onFrame: (frame) => {
      store.apply(frame);
      tick();
    },
    onTime: (t0, t1, serverMs) => clock.add(t0, t1, serverMs, Date.now()),
  });
  connection.subscribe(currentSubscription());
  connection.start();

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) wake();
  });
  addEventListener("online", () => connection.retryNow());
  setInterval(tick, TICK_MS);
  exposeForTests(registry);
}

/** The page came back to the foreground: check the clock and the link at once. */
function wake() {
  if (clock.drifted(performance.now(), Date.now())) clock.reset();
  connection.retryNow();
}

function tick() {
  if (document.hidden || connection === null) return;
  const began = performance.now();
  if (clock.drifted(began, Date.now())) {
    clock.reset(); // the device slept or its clock was set: no numbers until a fresh sample
    connection.probe();
  }
  const ctx = { store, live: connState.state === "live", serverNow: clock.serverNow(began) };
  if (view === "map" && map) map.render(ctx);
  if (view === "list") list.render(ctx);
  detail.render(ctx);
  if (connState.state === "reconnecting") showConnectionText();
  const spent = performance.now() - began;
  stats.ticks += 1;
  stats.tickMsTotal += spent;
  stats.tickMsMax = Math.max(stats.tickMsMax, spent);
}

// -- connection state ------------------------------------------------------------------------

function showConnection(state, info) {
  connState = { state, info };
  const body = document.body;
  body.classList.toggle("is-connecting", state === "connecting");
  body.classList.toggle("is-live", state === "live");
  body.classList.toggle("is-disconnected", state === "reconnecting");
  $("#conn").className = `conn conn--${state}`;
  $("#conn-hint").hidden = state !== "reconnecting";
  showConnectionText();
  tick();
}

function showConnectionText() {
  const { state, info } = connState;
  let text = t(`conn_${state}`);
  if (state === "reconnecting" && info.retryAt && !info.attempting) {
    const s = Math.ceil((info.retryAt - performance.now()) / 1000);
    if (s >= 2) text = t("conn_reconnecting_in", { s });
  }
  const node = $("#conn-text");
  if (node.textContent !== text) node.textContent = text;
}

function socketUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws/v1`;
}

function currentSubscription() {
  if (view === "map" && map) return { bbox: map.area() };
  return { all: true };
}

// -- views, selection ------------------------------------------------------------------------

function setView(next) {
  if (next === "map" && !map) return;
  view = next;
  $("#map-view").hidden = next !== "map";
  $("#list-view").hidden = next !== "list";
  $("#view-map").setAttribute("aria-pressed", String(next === "map"));
  $("#view-list").setAttribute("aria-pressed", String(next === "list"));
  document.body.dataset.view = next;
  if (next === "map") map.shown();
  connection?.subscribe(currentSubscription());
  tick();
}

function select(id) {
  map?.select(id);
  detail.open(id);
  if (view === "map") map?.keepClear(id, $("#detail"));
  tick();
}

/** A search result was chosen: show it where the user is looking. */
function pick(id) {
  if (view === "map" && map) map.focus(id);
  else list.reveal(id);
  detail.open(id, { focus: view === "map" });
  if (view === "map") map?.keepClear(id, $("#detail"));
  tick();
}

function closeDetail() {
  detail.close();
  map?.select(null);
}

// -- language --------------------------------------------------------------------------------

function switchLang(next) {
  setLang(next);
  applyStaticText();
  list.build();
  map?.relabel();
  detail.relabel();
  tick();
}

function applyStaticText() {
  document.documentElement.lang = lang() === "en" ? "en" : "zh-CN";
  document.title = t("title");
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of document.querySelectorAll("[data-i18n-placeholder]")) {
    node.placeholder = t(node.dataset.i18nPlaceholder);
  }
  for (const node of document.querySelectorAll("[data-i18n-label]")) {
    node.setAttribute("aria-label", t(node.dataset.i18nLabel));
  }
  const button = $("#lang");
  button.textContent = t("lang_toggle");
  button.lang = lang() === "zh" ? "en" : "zh";
  button.setAttribute("aria-label", t("lang_toggle_label"));
  $("#map-view").setAttribute("aria-label", t("view_map"));
  if (connection) showConnectionText();
}

// -- loading ---------------------------------------------------------------------------------

async function loadRegistry() {
  for (let attempt = 0; ; attempt += 1) {
    try {
      const response = await fetch("api/v1/intersections");
      if (response.ok) return await response.json();
    } catch {
      // the gateway is not up yet: try again
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(10_000, 500 * 2 ** attempt)));
  }
}

/** Tile settings: the gateway's /api/v1/config if it has one, else the page's meta tags. */
async function loadConfig() {
  const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.content ?? "";
  const config = { tileUrl: meta("tile-url"), tileAttribution: meta("tile-attribution") };
  const asked = new URLSearchParams(location.search).get("tiles");
  if (asked === "none") config.tileUrl = "";
  try {
    const response = await fetch("api/v1/config");
    if (response.ok) {
      const body = await response.json();
      if (typeof body.tile_url === "string") config.tileUrl = body.tile_url;
      if (typeof body.tile_attribution === "string") config.tileAttribution = body.tile_attribution;
    }
  } catch {
    // no such route: the meta defaults stand
  }
  if (asked === "none") config.tileUrl = "";
  return config;
}

/** A read-only window for the browser tests and for curious engineers (devtools). */
function exposeForTests(registry) {
  globalThis.signalApp = {
    registry,
    store,
    stats,
    get state() {
      return connState.state;
    },
    get clock() {
      return { synced: clock.synced(performance.now()), errorMs: clock.errorBoundMs(performance.now()) };
    },
    get view() {
      return view;
    },
    get zoom() {
      return map?.map.getZoom() ?? null;
    },
    /** The visible map area [west, south, east, north], or null without a map. */
    get bounds() {
      const b = map?.map.getBounds();
      return b ? [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()] : null;
    },
    setZoom(zoom, id) {
      const item = registry.intersections.find((i) => i.id === id);
      if (map) map.map.setView(item ? [item.lat, item.lon] : map.map.getCenter(), zoom, { animate: false });
    },
  };
  document.body.dataset.ready = "true";
}

start();
