// The engineers' dashboard: sign in, live table over /ws/v1/engineer, timing diagram and events.

import { AuthError, EngineerFeed, forgetToken, getJSON, saveToken, savedToken } from "./api.js";
import { duration, el, stamp } from "./format.js";
import { ControllerTable } from "./table.js";
import { drawLegend, drawTiming } from "./timing.js";

const $ = (id) => document.getElementById(id);
const MAX_LIVE_EVENTS = 200;

const state = {
  token: null,
  feed: null,
  offsetMs: 0, // server clock minus this browser's clock
  counts: null,
  selected: null,
  detailTimer: null,
  dirty: false,
};

const table = new ControllerTable($("controllers"), (id) => select(id));

function serverNow() {
  return Date.now() + state.offsetMs;
}

// -- sign-in -------------------------------------------------------------------------------

function showLogin(message = "") {
  $("app").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message;
  $("token").focus();
}

async function signIn(token) {
  try {
    await getJSON("/api/v1/engineer/rules", token);
  } catch (error) {
    showLogin(error instanceof AuthError ? `Refused: ${error.message}` : `Error: ${error.message}`);
    return;
  }
  saveToken(token);
  state.token = token;
  $("login").hidden = true;
  $("app").hidden = false;
  $("logout").hidden = false;
  start();
}

function signOut(message = "") {
  if (state.feed) state.feed.stop();
  state.feed = null;
  state.token = null;
  forgetToken();
  closeDetail();
  showLogin(message);
}

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = $("token").value.trim();
  $("token").value = "";
  if (token) signIn(token);
});
$("logout").addEventListener("click", () => signOut());

// -- live feed -----------------------------------------------------------------------------

function start() {
  state.feed = new EngineerFeed(state.token, {
    onState(linkState) {
      $("link").dataset.state = linkState;
      $("link").textContent = linkState;
    },
    onDenied(reason) {
      signOut(`Signed out: ${reason}`);
    },
    onFrame(frame) {
      if (frame.server_time_ms) state.offsetMs = frame.server_time_ms - Date.now();
      if (frame.type === "controllers") {
        table.update(frame.rows, frame.full);
        state.counts = frame.counts;
        state.dirty = true;
      } else if (frame.type === "events") {
        for (const event of frame.events) addLiveEvent(event);
      }
    },
  });
  state.feed.start();
}

function renderCounts() {
  const c = state.counts;
  if (!c) return;
  $("count-online").textContent = c.online;
  $("count-offline").textContent = c.offline;
  $("count-stale").textContent = c.stale;
  $("count-flash").textContent = c.flash;
  $("count-faults").textContent = c.faults;
  $("count-other").textContent = c.manual + c.preempt + c.dark;
  $("count-total").textContent = c.total;
}

function render() {
  if ($("app").hidden) return;
  renderCounts();
  const shown = table.render(serverNow());
  $("shown").textContent = `${shown} of ${table.rows.size} controllers`;
  if (state.selected) renderFacts();
  state.dirty = false;
}

// Redraw on new data at most once a frame, and every second for the ages.
function loop() {
  if (state.dirty) render();
  requestAnimationFrame(loop);
}
requestAnimationFrame(loop);
setInterval(() => {
  state.dirty = true;
}, 1000);

// -- filters -------------------------------------------------------------------------------

$("search").addEventListener("input", (event) => {
  table.search = event.target.value;
  render();
});
$("status-filter").addEventListener("change", (event) => {
  table.filter = event.target.value;
  render();
});
for (const button of document.querySelectorAll(".count")) {
  button.addEventListener("click", () => {
    table.filter = button.dataset.filter;
    $("status-filter").value = button.dataset.filter;
    render();
  });
}
$("controllers").tHead.addEventListener("click", () => render());

// -- events --------------------------------------------------------------------------------

function eventItem(event) {
  return el(
    "li",
    { class: `ev sev-${event.severity}`, dataset: { kind: event.kind, id: event.intersection } },
    el("time", {}, stamp(event.at_ms)),
    el("b", {}, event.intersection),
    el("span", { class: "kind" }, event.kind),
    el("span", { class: "msg" }, event.message),
  );
}

function addLiveEvent(event) {
  const list = $("live-events");
  list.prepend(eventItem(event));
  while (list.children.length > MAX_LIVE_EVENTS) list.lastElementChild.remove();
  if (event.intersection === state.selected) $("detail-events").prepend(eventItem(event));
}

// -- detail: timing diagram and events -----------------------------------------------------

function renderFacts() {
  const row = table.rows.get(state.selected);
  if (!row) return;
  const now = serverNow();
  const parts = [
    `status ${row.status} for ${row.status_since_ms === null ? "–" : duration(now - row.status_since_ms)}`,
    `mode ${row.mode}${row.mode_since_ms ? ` since ${duration(now - row.mode_since_ms)}` : ""}`,
    `last message ${row.last_rx_ms === null ? "never" : `${duration(now - row.last_rx_ms)} ago`}`,
    `${row.rate_per_s.toFixed(1)} msg/s`,
    `offset ${row.clock_offset_ms ?? "–"} ms${row.skewed ? " (skewed)" : ""}`,
    `lost ${row.lost} · dup ${row.duplicates} · out of order ${row.out_of_order} · restarts ${row.restarts}`,
  ];
  const rejected = Object.entries(row.rejected);
  if (rejected.length) parts.push(`rejected ${rejected.map(([k, v]) => `${k} ${v}`).join(", ")}`);
  const text = parts.join(" · ");
  if ($("detail-facts").textContent !== text) $("detail-facts").textContent = text;
}

async function refreshTiming() {
  const id = state.selected;
  if (!id) return;
  try {
    const diagram = await getJSON(`/api/v1/engineer/controllers/${encodeURIComponent(id)}/timing`, state.token, {
      minutes: $("span").value,
    });
    if (state.selected === id) drawTiming($("timing"), diagram);
  } catch (error) {
    if (error instanceof AuthError) signOut(`Signed out: ${error.message}`);
    else $("timing").textContent = `Timing unavailable: ${error.message}`;
  }
}

async function loadEvents(id) {
  try {
    const body = await getJSON("/api/v1/engineer/events", state.token, { intersection: id, limit: 100 });
    if (state.selected === id) $("detail-events").replaceChildren(...body.events.map(eventItem));
  } catch (error) {
    if (error instanceof AuthError) signOut(`Signed out: ${error.message}`);
    else $("detail-events").replaceChildren(el("li", {}, `Events unavailable: ${error.message}`));
  }
}

function select(id) {
  state.selected = id;
  table.selected = id;
  const row = table.rows.get(id);
  $("detail").hidden = false;
  $("detail-title").textContent = row ? `${id} · ${row.name_en} · ${row.name_zh}` : id;
  $("timing").replaceChildren();
  $("detail-events").replaceChildren();
  renderFacts();
  render();
  refreshTiming();
  loadEvents(id);
  clearInterval(state.detailTimer);
  state.detailTimer = setInterval(refreshTiming, 2000);
}

function closeDetail() {
  state.selected = null;
  table.selected = null;
  clearInterval(state.detailTimer);
  $("detail").hidden = true;
}

$("detail-close").addEventListener("click", () => {
  closeDetail();
  render();
});
$("span").addEventListener("change", refreshTiming);
drawLegend($("legend"));

// -- boot ----------------------------------------------------------------------------------

const token = savedToken();
if (token) signIn(token);
else showLogin();
