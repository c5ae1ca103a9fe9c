// The views this page holds, kept as the gateway sends them. Pure.
//
// A snapshot replaces everything (after a reconnect, or a new subscription, nothing older may
// survive: an intersection no longer subscribed gets no more updates, so its view is dropped
// and it shows "no data" rather than a countdown that nobody corrects). An update replaces the
// views it carries.

export class ViewStore {
  constructor() {
    this.views = new Map();
    this.serverTimeMs = null;
  }

  /** Apply a snapshot or update frame; returns the ids whose view changed. */
  apply(frame) {
    const items = Array.isArray(frame.intersections) ? frame.intersections : [];
    if (frame.type === "snapshot") this.views = new Map();
    for (const view of items) {
      if (view && typeof view.id === "string") this.views.set(view.id, view);
    }
    this.serverTimeMs = frame.server_time_ms ?? this.serverTimeMs;
    return items.map((view) => view.id);
  }

  get(id) {
    return this.views.get(id);
  }

  get size() {
    return this.views.size;
  }
}
