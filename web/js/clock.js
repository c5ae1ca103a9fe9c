// The gateway's clock as seen from the browser, estimated NTP-style. Pure: no timers, no I/O.
//
// Each `time` probe (docs/protocol.md) gives t0 (local send), t1 (local receive) and the server's
// time somewhere in between. If the way out and back take equally long, the server time at the
// local midpoint (t0 + t1) / 2 was server_time_ms, so offset = server - (t0 + t1) / 2; whatever the
// asymmetry, the error is at most rtt / 2. Queues make some round trips long, never shorter than
// the network allows, so the sample with the lowest round trip is the best one (the same reasoning
// as NTP's clock filter, RFC 5905 §10).
//
// Local times are a monotonic clock (performance.now()), immune to the device's wall clock being
// set while the page runs. A sleeping device may stop that clock, so callers watch the gap
// between wall and monotonic time (`drifted`) and start over when it moves.

/** One probe: round trip and offset (server = local + offset). */
export function sampleFrom(t0, t1, serverMs) {
  return { rtt: t1 - t0, offset: serverMs - (t0 + t1) / 2, at: t1 };
}

export class ClockEstimate {
  /**
   * @param {object} [options]
   * @param {number} [options.window] samples kept (the newest)
   * @param {number} [options.maxRttMs] slower probes are ignored: their error bound is too large
   * @param {number} [options.maxAgeMs] samples older than this are forgotten
   */
  constructor({ window = 8, maxRttMs = 2000, maxAgeMs = 10 * 60_000 } = {}) {
    this.window = window;
    this.maxRttMs = maxRttMs;
    this.maxAgeMs = maxAgeMs;
    this.samples = [];
    this.wallMinusLocal = null;
  }

  /**
   * Add a probe's answer. Returns false (and keeps nothing) for an impossible or useless one.
   * `wallMs` (Date.now() at t1) is remembered to notice a sleeping monotonic clock.
   */
  add(t0, t1, serverMs, wallMs = null) {
    if (![t0, t1, serverMs].every(Number.isFinite)) return false;
    const sample = sampleFrom(t0, t1, serverMs);
    if (sample.rtt < 0 || sample.rtt > this.maxRttMs) return false;
    this.samples.push(sample);
    if (this.samples.length > this.window) this.samples.shift();
    if (wallMs !== null) this.wallMinusLocal = wallMs - t1;
    return true;
  }

  /** The sample with the lowest round trip among those young enough at `localNow`, or null. */
  best(localNow) {
    let best = null;
    for (const s of this.samples) {
      if (localNow - s.at > this.maxAgeMs) continue;
      if (best === null || s.rtt < best.rtt) best = s;
    }
    return best;
  }

  /** Whether there is an estimate to count down with. */
  synced(localNow) {
    return this.best(localNow) !== null;
  }

  /** The gateway's clock at local time `localNow` (ms), or null before any usable sample. */
  serverNow(localNow) {
    const best = this.best(localNow);
    return best === null ? null : localNow + best.offset;
  }

  /** The largest error of the estimate (half the best round trip), or null. */
  errorBoundMs(localNow) {
    const best = this.best(localNow);
    return best === null ? null : best.rtt / 2;
  }

  /**
   * Whether wall and monotonic clocks moved apart by more than `toleranceMs` since the last
   * sample: the device slept or its clock was set. The estimate must then start over.
   */
  drifted(localNow, wallNow, toleranceMs = 500) {
    if (this.wallMinusLocal === null) return false;
    return Math.abs(wallNow - localNow - this.wallMinusLocal) > toleranceMs;
  }

  /** Forget everything (after `drifted`). */
  reset() {
    this.samples = [];
    this.wallMinusLocal = null;
  }
}
