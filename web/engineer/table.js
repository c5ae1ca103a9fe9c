// The controllers table: one row per controller, sortable, filterable by status, searchable.

import { duration, el, statusRank } from "./format.js";

const OTHER = new Set(["manual", "preempt", "dark"]);

/** Whether a row passes the status filter ("" all, a status, "faults", "other"). */
export function passesFilter(row, filter) {
  if (!filter) return true;
  if (filter === "faults") return Boolean(row.faulty);
  if (filter === "other") return OTHER.has(row.status);
  return row.status === filter;
}

/** Whether a row matches the search text (id, names, district). */
export function matchesSearch(row, text) {
  if (!text) return true;
  const needle = text.trim().toLowerCase();
  return [row.id, row.name_en, row.name_zh, row.district].some(
    (field) => typeof field === "string" && field.toLowerCase().includes(needle),
  );
}

function sortValue(row, key, now) {
  switch (key) {
    case "status":
      return statusRank(row.status);
    case "name":
      return row.name_en ?? "";
    case "since":
      return row.status_since_ms === null ? -Infinity : now - row.status_since_ms;
    case "age":
      return row.last_rx_ms === null ? Infinity : now - row.last_rx_ms;
    case "rules_total":
      return Object.values(row.rules ?? {}).reduce((a, b) => a + b, 0);
    case "clock_offset_ms":
      return row.clock_offset_ms === null ? -Infinity : Math.abs(row.clock_offset_ms);
    default:
      return row[key] ?? "";
  }
}

export class ControllerTable {
  constructor(table, onSelect) {
    this.table = table;
    this.body = table.tBodies[0];
    this.onSelect = onSelect;
    this.rows = new Map();
    this.trs = new Map();
    this.sortKey = "status";
    this.sortDir = 1;
    this.filter = "";
    this.search = "";
    this.selected = null;
    for (const th of table.tHead.rows[0].cells) {
      th.addEventListener("click", () => this.sortBy(th.dataset.key));
    }
    this.body.addEventListener("click", (event) => {
      const tr = event.target.closest("tr");
      if (tr) this.onSelect(tr.dataset.id);
    });
  }

  /** Take rows from a controllers frame (a full one replaces everything). */
  update(rows, full) {
    if (full) this.rows.clear();
    for (const row of rows) this.rows.set(row.id, row);
  }

  sortBy(key) {
    if (!key) return;
    if (this.sortKey === key) this.sortDir = -this.sortDir;
    else {
      this.sortKey = key;
      this.sortDir = 1;
    }
    for (const th of this.table.tHead.rows[0].cells) {
      th.removeAttribute("aria-sort");
      if (th.dataset.key === this.sortKey) {
        th.setAttribute("aria-sort", this.sortDir > 0 ? "ascending" : "descending");
      }
    }
  }

  /** Redraw with ages computed at server time ``now``; returns how many rows are shown. */
  render(now) {
    const visible = [...this.rows.values()].filter(
      (row) => passesFilter(row, this.filter) && matchesSearch(row, this.search),
    );
    const key = this.sortKey;
    const dir = this.sortDir;
    visible.sort((a, b) => {
      const x = sortValue(a, key, now);
      const y = sortValue(b, key, now);
      if (x < y) return -dir;
      if (x > y) return dir;
      return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
    });
    const trs = visible.map((row) => this.rowElement(row, now));
    this.body.replaceChildren(...trs);
    return visible.length;
  }

  rowElement(row, now) {
    let tr = this.trs.get(row.id);
    if (!tr) {
      tr = el("tr", { dataset: { id: row.id }, tabindex: "0" });
      for (let i = 0; i < 13; i += 1) tr.append(el("td"));
      tr.addEventListener("keydown", (event) => {
        if (event.key === "Enter") this.onSelect(row.id);
      });
      this.trs.set(row.id, tr);
    }
    const rules = Object.values(row.rules ?? {}).reduce((a, b) => a + b, 0);
    const cells = [
      row.id,
      row.name_en ?? "",
      row.district ?? "",
      row.status,
      row.status_since_ms === null ? "–" : duration(now - row.status_since_ms),
      row.last_rx_ms === null ? "never" : duration(now - row.last_rx_ms),
      row.rate_per_s.toFixed(1),
      row.lost,
      row.duplicates,
      row.out_of_order,
      row.rejected_total,
      row.clock_offset_ms === null ? "–" : row.clock_offset_ms,
      rules,
    ];
    cells.forEach((value, i) => {
      const td = tr.cells[i];
      const text = String(value);
      if (td.textContent !== text) td.textContent = text;
      if (i >= 6) td.className = "num";
    });
    tr.cells[1].title = row.name_zh ?? "";
    tr.cells[3].className = `status s-${row.status}`;
    tr.cells[11].className = row.skewed ? "num warn" : "num";
    tr.cells[12].className = row.faulty ? "num bad" : "num";
    tr.classList.toggle("selected", row.id === this.selected);
    tr.dataset.status = row.status;
    return tr;
  }
}
