// The WebSocket to the gateway (/ws/v1, docs/protocol.md): connect, subscribe, keep the clock
// synced, notice a dead link, reconnect with exponential backoff and jitter, and subscribe afresh
// (a new snapshot) after every reconnect.
//
// States a person understands: "connecting" (first attempt), "live" (snapshot received),
// "reconnecting" (link lost; waiting for, or making, the next attempt).

/**
 * Delay before reconnect attempt `attempt` (0, 1, 2, ...): exponential, capped, with "equal
 * jitter" (half fixed, half random) so that thousands of phones dropped by one gateway restart
 * do not all come back in the same instant, yet none waits much longer than needed.
 */
export function backoffDelay(attempt, { baseMs = 500, capMs = 30_000, random = Math.random } = {}) {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt));
  return ceiling / 2 + random() * (ceiling / 2);
}

/** Timing of the link; the defaults suit a phone on a mobile network. */
export const DEFAULTS = {
  probesOnConnect: 4, // clock samples right after connecting (the server allows a burst of 20)
  probeSpacingMs: 150,
  heartbeatMs: 10_000, // a time probe this often: refreshes the clock, proves the link alive
  heartbeatTimeoutMs: 5_000, // no answer this long: the link is dead, even if TCP does not know
  stableAfterMs: 5_000, // live this long before backoff starts over
  resubscribeAfterMs: 1_500, // after a rate_limited error on subscribe
};

export class Connection {
  /**
   * @param {string} url ws:// or wss:// URL of /ws/v1
   * @param {object} handlers
   * @param {(state: string, info: object) => void} handlers.onState
   * @param {(frame: object) => void} handlers.onFrame snapshot / update frames
   * @param {(t0: number, t1: number, serverMs: number) => void} handlers.onTime a clock sample
   */
  constructor(url, { onState, onFrame, onTime }, options = {}) {
    this.url = url;
    this.onState = onState;
    this.onFrame = onFrame;
    this.onTime = onTime;
    this.opt = { ...DEFAULTS, ...options };
    this.now = options.now ?? (() => performance.now());
    this.WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this.ws = null;
    this.state = "connecting";
    this.attempt = 0;
    this.liveSince = null;
    this.subscription = null;
    this.timers = new Set();
    this.retryAt = null;
    this.pendingProbe = null;
  }

  start() {
    this._setState("connecting");
    this._open();
  }

  /** Follow `subscription` ({bbox}, {ids} or {all: true}); replaces the previous one. */
  subscribe(subscription) {
    this.subscription = subscription;
    this._send({ op: "subscribe", ...subscription });
  }

  /** Send a clock probe now (the answer comes to onTime). */
  probe() {
    const t0 = this.now();
    if (this._send({ op: "time", t0 })) this.pendingProbe = t0;
  }

  /** Reconnect at once if the link is down (the page became visible, the network came back). */
  retryNow() {
    if (this.state === "reconnecting" && this.ws === null) {
      this._clearTimers();
      this._open();
    } else if (this.ws !== null && this.ws.readyState === 1) {
      this.probe();
    }
  }

  _setState(state, info = {}) {
    this.state = state;
    this.onState(state, info);
  }

  _later(ms, fn) {
    const id = setTimeout(() => {
      this.timers.delete(id);
      fn();
    }, ms);
    this.timers.add(id);
    return id;
  }

  _clearTimers() {
    for (const id of this.timers) clearTimeout(id);
    this.timers.clear();
  }

  _send(message) {
    if (this.ws === null || this.ws.readyState !== 1) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  _open() {
    this.retryAt = null;
    if (this.state !== "connecting") this._setState("reconnecting", { attempting: true });
    let ws;
    try {
      ws = new this.WebSocket(this.url);
    } catch {
      this._lost();
      return;
    }
    this.ws = ws;
    ws.onopen = () => this._opened();
    ws.onmessage = (event) => this._message(event.data);
    ws.onclose = (event) => this._lost(event.code);
    ws.onerror = () => {}; // a close event always follows
  }

  _opened() {
    for (let i = 0; i < this.opt.probesOnConnect; i += 1) {
      this._later(i * this.opt.probeSpacingMs, () => this.probe());
    }
    if (this.subscription !== null) this._send({ op: "subscribe", ...this.subscription });
    this._heartbeat();
  }

  _heartbeat() {
    this._later(this.opt.heartbeatMs, () => {
      this.probe();
      const sent = this.pendingProbe;
      this._later(this.opt.heartbeatTimeoutMs, () => {
        if (this.pendingProbe === sent && sent !== null) this._drop("heartbeat timeout");
      });
      this._heartbeat();
    });
  }

  _message(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    switch (frame.type) {
      case "time":
        if (frame.t0 === this.pendingProbe) this.pendingProbe = null;
        this.onTime(frame.t0, this.now(), frame.server_time_ms);
        break;
      case "snapshot":
        this.onFrame(frame);
        if (this.state !== "live") {
          this.liveSince = this.now();
          this._setState("live");
        }
        break;
      case "update":
        if (this.state === "live") this.onFrame(frame);
        break;
      case "error":
        console.warn("gateway refused a message:", frame.code, frame.message);
        if (frame.code === "rate_limited" && this.subscription !== null) {
          this._later(this.opt.resubscribeAfterMs, () => this.subscribe(this.subscription));
        }
        break;
      default: // hello, and frame types of later versions
    }
  }

  /** Give up on the current socket at once (a half-open link may take minutes to close). */
  _drop(reason) {
    console.warn("dropping the WebSocket:", reason);
    const ws = this.ws;
    if (ws !== null) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close();
      } catch {
        // already closing
      }
    }
    this._lost();
  }

  _lost(code = null) {
    if (this.ws !== null) {
      this.ws.onopen = this.ws.onmessage = this.ws.onclose = this.ws.onerror = null;
    }
    this.ws = null;
    this.pendingProbe = null;
    this._clearTimers();
    const now = this.now();
    if (this.liveSince !== null && now - this.liveSince >= this.opt.stableAfterMs) this.attempt = 0;
    this.liveSince = null;
    const delay = backoffDelay(this.attempt);
    this.attempt += 1;
    this.retryAt = now + delay;
    this._setState("reconnecting", { code, retryAt: this.retryAt, attempting: false });
    this._later(delay, () => this._open());
  }
}
