// src/roster.ts
var Roster = class {
  constructor() {
    this.byId = /* @__PURE__ */ new Map();
    this.perIdentity = /* @__PURE__ */ new Map();
  }
  /** This connection's id in the roster, once welcomed. */
  get self() {
    return this.selfId;
  }
  /** Whether a welcome has filled it. */
  get synced() {
    return this.selfId !== void 0;
  }
  /**
   * A welcome replaces the roster. On the first one nothing is told (the
   * `sync` says it all); after a reconnect the differences are told as
   * leaves (reason unknown), joins and updates.
   */
  welcome(selfId, clients) {
    const catchUp = this.synced;
    const previous = this.byId;
    const fresh = new Map(clients.map((c) => [c.id, c]));
    const events = [];
    this.selfId = selfId;
    if (!catchUp) {
      this.byId = fresh;
      this.perIdentity = /* @__PURE__ */ new Map();
      for (const c of fresh.values()) this.count(c.identity, 1);
      return events;
    }
    for (const [id, c] of previous) {
      if (!fresh.has(id)) events.push(...this.leave(c, void 0));
    }
    const kept = this.byId;
    this.byId = /* @__PURE__ */ new Map();
    for (const c of fresh.values()) {
      const before = kept.get(c.id);
      this.byId.set(c.id, c);
      if (!before) {
        this.count(c.identity, 1);
        events.push({ kind: "join", client: c });
        if (this.perIdentity.get(c.identity) === 1) events.push({ kind: "memberjoin", member: this.member(c.identity) });
      } else if (c.id !== selfId && !sameClient(before, c)) {
        events.push({ kind: "update", client: c, previous: before });
      }
    }
    return events;
  }
  /** Someone joined (ignored before the welcome, or when already there). */
  join(client) {
    if (!this.synced || this.byId.has(client.id)) return [];
    this.byId.set(client.id, client);
    const events = [{ kind: "join", client }];
    if (this.count(client.identity, 1) === 1) events.push({ kind: "memberjoin", member: this.member(client.identity) });
    return events;
  }
  /**
   * Someone left: the client as the server last described it (with its
   * latest state), or the roster's copy when the message was bare.
   */
  leave(client, reason) {
    if (!this.synced) return [];
    const known = this.byId.get(client.id);
    if (!known) return [];
    const last = known.identity === client.identity ? client : known;
    const member = this.member(known.identity);
    this.byId.delete(known.id);
    const events = [{ kind: "leave", client: last, reason }];
    if (this.count(known.identity, -1) === 0) {
      member.clients = member.clients.map((c) => c.id === last.id ? last : c);
      events.push({ kind: "memberleave", member, reason });
    }
    return events;
  }
  /** Someone's state or info changed (ignored for a client this roster does not hold). */
  update(client) {
    const previous = this.byId.get(client.id);
    if (!previous || previous.identity !== client.identity) return [];
    this.byId.set(client.id, client);
    return [{ kind: "update", client, previous }];
  }
  /** This connection's own entry follows its state as set, at once. */
  setSelfState(state) {
    const id = this.selfId;
    const me = id === void 0 ? void 0 : this.byId.get(id);
    if (!me) return;
    this.byId.set(me.id, withState(me, state));
  }
  /** Everyone, in join order. */
  clients() {
    return [...this.byId.values()];
  }
  /** Everyone but this connection. */
  others() {
    return this.clients().filter((c) => c.id !== this.selfId);
  }
  /** Connections grouped by identity, in order of each identity's first connection. */
  members() {
    const groups = /* @__PURE__ */ new Map();
    for (const c of this.byId.values()) {
      let m = groups.get(c.identity);
      if (!m) {
        m = { identity: c.identity, clients: [], self: false };
        groups.set(c.identity, m);
      }
      m.clients.push(c);
      if (c.id === this.selfId) m.self = true;
    }
    return [...groups.values()];
  }
  member(identity) {
    const clients = this.clients().filter((c) => c.identity === identity);
    return { identity, clients, self: clients.some((c) => c.id === this.selfId) };
  }
  count(identity, delta) {
    const n = (this.perIdentity.get(identity) ?? 0) + delta;
    if (n > 0) this.perIdentity.set(identity, n);
    else this.perIdentity.delete(identity);
    return n;
  }
};
function withState(client, state) {
  const next = { id: client.id, identity: client.identity, joinedAt: client.joinedAt };
  if (state !== null) next.state = state;
  if (client.info !== void 0) next.info = client.info;
  if (client.username !== void 0) next.username = client.username;
  return Object.freeze(next);
}
function sameClient(a, b) {
  return a.id === b.id && a.identity === b.identity && a.joinedAt === b.joinedAt && a.username === b.username && jsonEqual(a.state, b.state) && jsonEqual(a.info, b.info);
}
function jsonEqual(a, b) {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== "object" || typeof b !== "object") return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b;
    return a.length === bb.length && a.every((v, i) => jsonEqual(v, bb[i]));
  }
  const ka = Object.keys(a);
  const ob = b;
  if (ka.length !== Object.keys(ob).length) return false;
  const oa = a;
  return ka.every((k) => Object.prototype.hasOwnProperty.call(ob, k) && jsonEqual(oa[k], ob[k]));
}

// src/throttle.ts
var globalClock = {
  now: () => typeof performance !== "undefined" ? performance.now() : Date.now(),
  setTimeout: (f, ms) => setTimeout(f, ms),
  clearTimeout: (t) => clearTimeout(t)
};
var Throttle = class {
  /**
   * `send` does the work and says whether it sent anything (a send that
   * had nothing to do, or could not, does not start an interval).
   */
  constructor(intervalMs, send, clock = globalClock) {
    this.intervalMs = intervalMs;
    this.send = send;
    this.clock = clock;
    this.lastSent = Number.NEGATIVE_INFINITY;
    this.timer = void 0;
  }
  /** Whether a send is held for the end of the interval. */
  get pending() {
    return this.timer !== void 0;
  }
  /** Asks for a send: now if the interval has passed, else at its end. */
  request() {
    if (this.timer !== void 0) return;
    const wait = this.lastSent + this.intervalMs - this.clock.now();
    if (wait <= 0) {
      this.fire();
    } else {
      this.timer = this.clock.setTimeout(() => {
        this.timer = void 0;
        this.request();
      }, wait);
    }
  }
  /** Sends a held request now (before a close, say). */
  flush() {
    if (this.timer === void 0) return;
    this.cancel();
    this.fire();
  }
  /** Drops a held request. */
  cancel() {
    if (this.timer !== void 0) this.clock.clearTimeout(this.timer);
    this.timer = void 0;
  }
  fire() {
    if (this.send()) this.lastSent = this.clock.now();
  }
};

// src/wire.ts
var CloseCodes = {
  NORMAL: 1e3,
  UNSUPPORTED_DATA: 1007,
  POLICY: 1008,
  TOO_LARGE: 1009,
  INTERNAL: 1011,
  RESTART: 1012,
  EXPIRED: 4e3,
  REPLACED: 4001,
  REMOVED: 4003
};
var PING = '{"action":"ping"}';
function updateMessage(state) {
  return `{"action":"update","state":${JSON.stringify(state)}}`;
}
function broadcastMessage(data) {
  return `{"action":"broadcast","data":${JSON.stringify(data)}}`;
}
function spaceUrl(base, space) {
  const u = new URL(base);
  u.protocol = u.protocol === "https:" || u.protocol === "wss:" ? "wss:" : "ws:";
  u.pathname = "/" + encodeURIComponent(space);
  u.search = "";
  u.hash = "";
  return u.toString();
}
function joinUrl(url, options, id, state) {
  const u = new URL(url);
  if (u.protocol === "http:") u.protocol = "ws:";
  if (u.protocol === "https:") u.protocol = "wss:";
  const q = u.searchParams;
  if (options.identity) q.set("identity", options.identity);
  if (options.token) q.set("token", options.token);
  if (options.username) q.set("username", options.username);
  if (id) q.set("id", id);
  else q.delete("id");
  if (state !== null) q.set("state", JSON.stringify(state));
  else q.delete("state");
  return u.toString();
}
function checkState(state, maxBytes) {
  if (state === null) return null;
  if (typeof state !== "object" || Array.isArray(state)) {
    throw new TypeError("longhouse: a state is a plain JSON object, or null");
  }
  let text;
  try {
    text = JSON.stringify(state);
  } catch (e) {
    throw new TypeError(`longhouse: the state is not JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  const bytes = new TextEncoder().encode(text).length;
  if (bytes > maxBytes) {
    throw new RangeError(`longhouse: the state is ${bytes} bytes, more than ${maxBytes}`);
  }
  return deepFreeze(JSON.parse(text));
}
function readClient(c) {
  if (c === null || typeof c !== "object") return void 0;
  const o = c;
  if (typeof o.id !== "string" || typeof o.identity !== "string" || typeof o.joinedAt !== "string") {
    return void 0;
  }
  const client = { id: o.id, identity: o.identity, joinedAt: o.joinedAt };
  if (isObject(o.state)) client.state = deepFreeze(o.state);
  if (isObject(o.info)) client.info = deepFreeze(o.info);
  if (typeof o.username === "string") client.username = o.username;
  return Object.freeze(client);
}
function readReason(r) {
  return r === "left" || r === "expired" || r === "removed" ? r : void 0;
}
function isObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}
function deepFreeze(v) {
  if (v !== null && typeof v === "object" && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

// src/connection.ts
var PresenceConnection = class {
  constructor(url, options) {
    this.listeners = {
      sync: /* @__PURE__ */ new Set(),
      join: /* @__PURE__ */ new Set(),
      leave: /* @__PURE__ */ new Set(),
      update: /* @__PURE__ */ new Set(),
      memberjoin: /* @__PURE__ */ new Set(),
      memberleave: /* @__PURE__ */ new Set(),
      broadcast: /* @__PURE__ */ new Set(),
      expired: /* @__PURE__ */ new Set(),
      status: /* @__PURE__ */ new Set(),
      error: /* @__PURE__ */ new Set()
    };
    this.roster = new Roster();
    this.welcomed = false;
    this.failures = 0;
    this.current = "connecting";
    /** The state the server holds for this lease, as far as this client knows. */
    this.held = null;
    if (!options || !options.identity && !options.token) {
      throw new TypeError("longhouse: connect() needs an identity or a token");
    }
    const Ctor = options.WebSocket ?? globalThis.WebSocket;
    if (!Ctor) {
      throw new TypeError(
        "longhouse: no WebSocket implementation: pass options.WebSocket (on Node 20, or run with --experimental-websocket)"
      );
    }
    this.Ctor = Ctor;
    this.url = url;
    this.options = options;
    const ttl = options.ttlMs ?? 6e4;
    this.pingMs = Math.max(10, options.pingIntervalMs ?? Math.floor(ttl / 3));
    this.minBackoff = Math.max(1, options.minBackoffMs ?? 500);
    this.maxBackoff = Math.max(this.minBackoff, options.maxBackoffMs ?? 1e4);
    this.connectTimeout = Math.max(1, options.connectTimeoutMs ?? 1e4);
    this.maxStateBytes = Math.max(0, options.maxStateBytes ?? 1024);
    this.local = checkState(options.state ?? null, this.maxStateBytes);
    this.throttle = new Throttle(Math.max(0, options.updateIntervalMs ?? 50), () => this.sendState());
    this.myId = options.id;
    queueMicrotask(() => {
      if (this.current !== "closed") this.open();
    });
  }
  get id() {
    return this.myId;
  }
  get status() {
    return this.current;
  }
  get lastError() {
    return this.error;
  }
  get state() {
    return this.local;
  }
  clients() {
    return this.roster.clients();
  }
  others() {
    return this.roster.others();
  }
  members() {
    return this.roster.members();
  }
  setState(state) {
    this.local = checkState(state, this.maxStateBytes);
    this.roster.setSelfState(this.local);
    if (this.current !== "closed") this.throttle.request();
  }
  broadcast(data) {
    if (data === void 0) throw new TypeError("longhouse: broadcast() needs data (any JSON value)");
    const text = broadcastMessage(data);
    return this.sendText(text);
  }
  on(event, listener) {
    this.listeners[event].add(listener);
    return () => this.off(event, listener);
  }
  off(event, listener) {
    this.listeners[event].delete(listener);
  }
  close() {
    if (this.current === "closed") return;
    this.throttle.flush();
    const socket = this.socket;
    this.socket = void 0;
    this.stopTimers();
    if (socket) {
      detach(socket);
      if (socket.readyState === 0) {
        socket.onopen = () => closeQuietly(socket);
      } else {
        closeQuietly(socket);
      }
    }
    this.setStatus({ status: "closed", reason: "closed-by-client" });
  }
  emit(event, ...args) {
    for (const listener of [...this.listeners[event]]) {
      try {
        listener(...args);
      } catch (e) {
        setTimeout(() => {
          throw e;
        });
      }
    }
  }
  tell(events) {
    for (const e of events) {
      switch (e.kind) {
        case "join":
          this.emit("join", e.client);
          break;
        case "leave":
          this.emit("leave", e.client, e.reason);
          break;
        case "update":
          this.emit("update", e.client, e.previous);
          break;
        case "memberjoin":
          this.emit("memberjoin", e.member);
          break;
        case "memberleave":
          this.emit("memberleave", e.member, e.reason);
          break;
      }
    }
  }
  setStatus(change) {
    this.current = change.status;
    if (change.status === "closed") this.throttle.cancel();
    this.emit("status", change);
  }
  /** Sends a text frame if joined; says whether it went. */
  sendText(text) {
    const s = this.socket;
    if (!s || !this.welcomed || s.readyState !== 1) return false;
    try {
      s.send(text);
      return true;
    } catch {
      return false;
    }
  }
  /** The throttle's send: the local state, if the server does not hold it yet. */
  sendState() {
    if (jsonEqual(this.local, this.held)) return false;
    if (!this.sendText(updateMessage(this.local))) return false;
    this.held = this.local;
    return true;
  }
  open() {
    this.retryTimer = void 0;
    this.welcomed = false;
    this.pendingError = void 0;
    let socket;
    try {
      socket = new this.Ctor(joinUrl(this.url, this.options, this.myId, this.local));
    } catch (e) {
      this.error = e instanceof Error ? e.message : String(e);
      this.emit("error", this.error);
      this.setStatus({ status: "closed", reason: "refused", error: this.error });
      return;
    }
    this.socket = socket;
    socket.onmessage = (event) => {
      if (this.socket === socket) this.message(event.data);
    };
    socket.onclose = (event) => {
      if (this.socket === socket) this.closed(typeof event?.code === "number" ? event.code : 1006);
    };
    socket.onerror = () => {
      if (this.socket === socket && socket.readyState !== 1) this.failed(socket);
    };
    this.connectTimer = setTimeout(() => {
      if (this.socket === socket && !this.welcomed) this.failed(socket);
    }, this.connectTimeout);
  }
  /** An attempt that will not be welcomed: drop it and count a lost connection. */
  failed(socket) {
    detach(socket);
    closeQuietly(socket);
    this.closed(1006);
  }
  message(data) {
    if (typeof data !== "string") return;
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return;
    }
    if (msg === null || typeof msg !== "object") return;
    if (typeof msg.error === "string") {
      this.pendingError = msg.error;
      this.error = msg.error;
      this.emit("error", msg.error);
      return;
    }
    if (typeof msg.id === "string" && Array.isArray(msg.clients)) {
      const clients = msg.clients.map(readClient).filter((c) => c !== void 0);
      this.welcome(msg.id, clients);
      return;
    }
    if (!this.welcomed) return;
    if (msg.event === "expired") {
      this.emit("expired");
      return;
    }
    if (msg.event === "broadcast" && "data" in msg && (typeof msg.from === "string" || msg.from === null)) {
      const message = { data: msg.data, from: msg.from };
      const sender = msg.from === null ? void 0 : this.roster.clients().find((c) => c.id === msg.from);
      if (sender) message.client = sender;
      this.emit("broadcast", message);
      return;
    }
    const client = readClient(msg.client);
    if (!client) return;
    if (msg.event === "remote join") this.tell(this.roster.join(client));
    else if (msg.event === "remote update") this.tell(this.roster.update(client));
    else if (msg.event === "remote leave") this.tell(this.roster.leave(client, readReason(msg.reason)));
  }
  welcome(id, clients) {
    const events = this.roster.welcome(id, clients);
    this.held = clients.find((c) => c.id === id)?.state ?? null;
    this.roster.setSelfState(this.local);
    this.myId = id;
    this.welcomed = true;
    this.failures = 0;
    this.clearConnectTimer();
    this.startPings();
    this.setStatus({ status: "open" });
    this.emit("sync", this.clients());
    this.tell(events);
    if (!jsonEqual(this.local, this.held)) this.throttle.request();
  }
  startPings() {
    this.stopPings();
    this.pingTimer = setInterval(() => {
      const s = this.socket;
      if (s && s.readyState === 1) {
        try {
          s.send(PING);
        } catch {
        }
      }
    }, this.pingMs);
  }
  stopPings() {
    if (this.pingTimer !== void 0) clearInterval(this.pingTimer);
    this.pingTimer = void 0;
  }
  clearConnectTimer() {
    if (this.connectTimer !== void 0) clearTimeout(this.connectTimer);
    this.connectTimer = void 0;
  }
  stopTimers() {
    this.stopPings();
    this.clearConnectTimer();
    this.throttle.cancel();
    if (this.retryTimer !== void 0) clearTimeout(this.retryTimer);
    this.retryTimer = void 0;
  }
  closed(code) {
    const socket = this.socket;
    this.socket = void 0;
    this.welcomed = false;
    if (socket) detach(socket);
    this.stopPings();
    this.clearConnectTimer();
    const error = this.pendingError;
    switch (code) {
      case CloseCodes.REPLACED:
        this.setStatus({ status: "closed", code, reason: "replaced" });
        return;
      case CloseCodes.REMOVED:
        this.setStatus({ status: "closed", code, reason: "removed", error });
        return;
      case CloseCodes.POLICY:
        this.setStatus({ status: "closed", code, reason: "refused", error });
        return;
      case CloseCodes.RESTART:
        this.retry(code, 0, "restart");
        return;
      case CloseCodes.EXPIRED:
        this.myId = void 0;
        this.retry(code, 0, "expired");
        return;
      default: {
        const attempt = this.failures;
        const delay = this.backoff(attempt);
        this.failures += 1;
        this.retry(code, delay, "lost", attempt);
      }
    }
  }
  /** Full jitter: a random delay up to the exponential cap. */
  backoff(attempt) {
    const cap = Math.min(this.maxBackoff, this.minBackoff * 2 ** attempt);
    const floor = attempt === 0 ? 0 : cap / 2;
    return Math.round(floor + Math.random() * (cap - floor));
  }
  retry(code, delayMs, reason, attempt = 0) {
    this.setStatus({ status: "reconnecting", code, delayMs, attempt, reason });
    if (this.current !== "reconnecting") return;
    if (delayMs <= 0) this.open();
    else this.retryTimer = setTimeout(() => this.open(), delayMs);
  }
};
function detach(socket) {
  socket.onopen = null;
  socket.onmessage = null;
  socket.onclose = null;
  socket.onerror = null;
}
function closeQuietly(socket) {
  try {
    socket.close(CloseCodes.NORMAL);
  } catch {
  }
}

// src/index.ts
function connect(url, options) {
  return new PresenceConnection(url, options);
}
export {
  CloseCodes,
  PING,
  connect,
  spaceUrl
};
