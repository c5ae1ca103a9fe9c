// Talking to the gateway: bearer-authenticated fetches and the engineers' WebSocket.
// The token lives in sessionStorage (this tab only) and travels in a header or the first
// WebSocket message, never in a URL.

const TOKEN_KEY = "signal-gateway.engineer-token";

export function savedToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function saveToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

export class AuthError extends Error {}

/** GET a JSON engineer route; AuthError on 401, Error with the server's message otherwise. */
export async function getJSON(path, token, params = {}) {
  const query = new URLSearchParams(
    Object.entries(params).filter(([, value]) => value !== undefined && value !== null && value !== ""),
  );
  const url = query.size ? `${path}?${query}` : path;
  const response = await fetch(url, { headers: { Authorization: `Bearer ${token}` } });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (response.status === 401) throw new AuthError(body?.message ?? "unauthorized");
  if (!response.ok) throw new Error(body?.message ?? `HTTP ${response.status}`);
  return body;
}

/**
 * The engineers' live feed. Calls handlers.onFrame(frame) for every frame,
 * handlers.onState("connecting" | "live" | "offline") and handlers.onDenied(reason) when the
 * server closes with 1008 (bad or revoked token: do not reconnect). Reconnects with backoff.
 */
export class EngineerFeed {
  constructor(token, handlers) {
    this.token = token;
    this.handlers = handlers;
    this.backoff = 500;
    this.stopped = false;
    this.socket = null;
    this.timer = null;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.socket) this.socket.close(1000, "signed out");
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws/v1/engineer`);
    this.socket = socket;
    this.handlers.onState("connecting");
    socket.addEventListener("open", () => {
      socket.send(JSON.stringify({ op: "auth", token: this.token }));
    });
    socket.addEventListener("message", (message) => {
      const frame = JSON.parse(message.data);
      if (frame.type === "hello") {
        this.backoff = 500;
        this.handlers.onState("live");
      }
      this.handlers.onFrame(frame);
    });
    socket.addEventListener("close", (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.handlers.onState("offline");
      if (event.code === 1008) {
        this.handlers.onDenied(event.reason || "access refused");
        return;
      }
      if (this.stopped) return;
      const wait = this.backoff * (0.5 + Math.random() / 2);
      this.backoff = Math.min(this.backoff * 2, 15000);
      this.timer = setTimeout(() => this.connect(), wait);
    });
  }
}
