// The detail panel of one intersection: names (zh and en), status, mode, last update and every
// signal group with its light and countdown (or the reason there is none).

import { countdown, groupSymbol, intersectionStatus } from "./countdown.js";
import { district, lang, names, spoken, t, whyText } from "./i18n.js";
import { arrowEl, el, setAttr, setSymbol, setText, sortedGroups, symbolEl } from "./symbols.js";

const PANEL_MAX_S = 999; // the panel has room for the whole number

export class DetailPanel {
  /**
   * @param {HTMLElement} root the <aside>
   * @param {{byId: Map<string, object>, onClose: () => void}} options
   */
  constructor(root, { byId, onClose }) {
    this.root = root;
    this.title = root.querySelector("#detail-title");
    this.body = root.querySelector("#detail-body");
    this.byId = byId;
    this.id = null;
    this.parts = null;
    this.opener = null;
    root.querySelector("#detail-close").addEventListener("click", () => onClose());
    root.addEventListener("keydown", (event) => {
      if (event.key === "Escape") onClose();
    });
  }

  get isOpen() {
    return this.id !== null;
  }

  open(id, { focus = true } = {}) {
    const item = this.byId.get(id);
    if (!item) return;
    if (this.id === null) this.opener = document.activeElement;
    this.id = id;
    this._build(item);
    this.root.hidden = false;
    this.root.dataset.id = id;
    document.body.classList.add("has-detail");
    if (focus) this.title.focus({ preventScroll: true });
  }

  close() {
    this.id = null;
    this.parts = null;
    this.root.hidden = true;
    delete this.root.dataset.id;
    document.body.classList.remove("has-detail");
    if (this.opener?.isConnected) this.opener.focus({ preventScroll: true }); // back where the user was
    this.opener = null;
  }

  relabel() {
    if (this.id !== null) this._build(this.byId.get(this.id));
  }

  render(ctx) {
    if (this.parts === null) return;
    const view = ctx.store.get(this.id);
    const status = intersectionStatus(view, ctx);
    const p = this.parts;
    setSymbol(p.statusSym, status === null ? "ok" : status, false);
    setText(p.statusText, status === null ? t("status_live_ok") : t(`explain_${status}`));
    setAttr(p.statusLine, "class", `d-status${status ? ` is-${status}` : ""}`);
    setText(p.mode, view && typeof view.mode === "string" ? t(`mode_${view.mode}`) : t("never"));
    setText(p.updated, updatedText(view, ctx));
    for (const row of p.rows) {
      const group = view?.groups?.find((g) => g.sg === row.group.sg);
      const { symbol, greyed } = groupSymbol(group, status);
      setSymbol(row.sym, symbol, greyed);
      setText(row.state, greyed ? t("state_unknown") : t(`state_${symbol}`));
      const cd = countdown(group, status, ctx.serverNow, PANEL_MAX_S);
      const number = cd.kind !== "none";
      setText(row.cd, number ? cd.text : whyText(cd));
      setAttr(row.cd, "class", number ? "cd" : "cd cd--word");
      setText(row.said, number ? spoken(cd) : "");
    }
  }

  _build(item) {
    const { primary, secondary } = names(item);
    this.title.textContent = primary;
    this.body.replaceChildren();
    this.body.append(el("p", "d-sub", `${secondary} · ${district(item.district)} · ${item.id}`));

    const statusLine = el("p", "d-status");
    const statusSym = symbolEl();
    const statusText = el("span", "d-status-text");
    statusLine.append(statusSym, statusText);
    this.body.append(statusLine);

    const facts = el("dl", "d-facts");
    const mode = el("dd");
    const updated = el("dd");
    facts.append(el("dt", "", t("mode")), mode, el("dt", "", t("last_update")), updated);
    this.body.append(facts);

    const table = el("table", "d-groups");
    table.append(el("caption", "", t("groups")));
    const head = el("tr");
    for (const key of ["col_approach", "col_movement", "col_state", "col_countdown"]) {
      const th = el("th", "", t(key));
      th.scope = "col";
      head.append(th);
    }
    const thead = el("thead");
    thead.append(head);
    const tbody = el("tbody");
    const rows = [];
    for (const group of sortedGroups(item.groups)) {
      const tr = el("tr");
      tr.dataset.sg = String(group.sg);
      const approach = el("th", "", t(`approach_${group.approach}`));
      approach.scope = "row";
      const movement = el("td", "d-move");
      movement.append(arrowEl(group.movement, group.approach), el("span", "", t(`movement_${group.movement}`)));
      const stateCell = el("td", "d-state");
      const sym = symbolEl();
      const state = el("span");
      stateCell.append(sym, state);
      const cdCell = el("td", "d-cd");
      const cd = el("span", "cd");
      const said = el("span", "sr-only");
      cdCell.append(cd, said);
      tr.append(approach, movement, stateCell, cdCell);
      tbody.append(tr);
      rows.push({ group, sym, state, cd, said });
    }
    table.append(thead, tbody);
    this.body.append(table);
    this.parts = { statusLine, statusSym, statusText, mode, updated, rows };
  }
}

function updatedText(view, ctx) {
  if (!view || !Number.isFinite(view.updated_ms)) return t("never");
  const serverNow = ctx.serverNow;
  if (serverNow === null) return "";
  const wall = new Date(view.updated_ms - serverNow + Date.now());
  const clock = wall.toLocaleTimeString(lang() === "en" ? "en-GB" : "zh-CN", { hour12: false });
  const ago = Math.max(0, Math.floor((serverNow - view.updated_ms) / 1000));
  return `${clock} (${t("seconds_ago", { s: ago })})`;
}
