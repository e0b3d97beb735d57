/**
 * Longhouse presence client.
 *
 * `connect(url, { identity })` joins a space and keeps a live roster of it:
 * it pings at a third of the lease, reconnects after a lost connection with
 * exponential back-off and jitter, and resumes with its id so that nobody
 * sees it leave. See docs/PROTOCOL.md for the protocol it speaks.
 *
 * No runtime dependencies: it needs a WebSocket implementation, the global
 * one by default (browsers; Node 22+, or Node 20 with
 * `--experimental-websocket`), or any constructor passed as `WebSocket`.
 */
/** Close codes of the protocol (section 8). */
export const CloseCodes = {
    NORMAL: 1000,
    UNSUPPORTED_DATA: 1007,
    POLICY: 1008,
    TOO_LARGE: 1009,
    INTERNAL: 1011,
    RESTART: 1012,
    EXPIRED: 4000,
    REPLACED: 4001,
};
/** The one message a client sends. */
export const PING = '{"action":"ping"}';
/**
 * Builds `ws[s]://host/{space}` from a base URL (`ws:`, `wss:`, `http:` or
 * `https:`) and a space name, encoding the space as one path segment.
 */
export function spaceUrl(base, space) {
    const u = new URL(base);
    u.protocol = u.protocol === "https:" || u.protocol === "wss:" ? "wss:" : "ws:";
    u.pathname = "/" + encodeURIComponent(space);
    u.search = "";
    u.hash = "";
    return u.toString();
}
/**
 * Joins the space at `url` (`ws://host/{space}`, see `spaceUrl`) and keeps
 * its roster live until `close()`.
 */
export function connect(url, options) {
    return new PresenceConnection(url, options);
}
class PresenceConnection {
    constructor(url, options) {
        this.listeners = {
            sync: new Set(),
            join: new Set(),
            leave: new Set(),
            expired: new Set(),
            status: new Set(),
            error: new Set(),
        };
        this.roster = new Map();
        this.welcomed = false;
        this.failures = 0;
        this.current = "connecting";
        if (!options || (!options.identity && !options.token)) {
            throw new TypeError("longhouse: connect() needs an identity or a token");
        }
        const Ctor = options.WebSocket ?? globalThis.WebSocket;
        if (!Ctor) {
            throw new TypeError("longhouse: no WebSocket implementation: pass options.WebSocket (on Node 20, or run with --experimental-websocket)");
        }
        this.Ctor = Ctor;
        this.url = url;
        this.options = options;
        const ttl = options.ttlMs ?? 60000;
        this.pingMs = Math.max(10, options.pingIntervalMs ?? Math.floor(ttl / 3));
        this.minBackoff = Math.max(1, options.minBackoffMs ?? 500);
        this.maxBackoff = Math.max(this.minBackoff, options.maxBackoffMs ?? 10000);
        this.connectTimeout = Math.max(1, options.connectTimeoutMs ?? 10000);
        this.myId = options.id;
        // Let the caller attach listeners before the first event.
        queueMicrotask(() => {
            if (this.current !== "closed")
                this.open();
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
    clients() {
        return [...this.roster.values()].map((c) => ({ ...c }));
    }
    on(event, listener) {
        this.listeners[event].add(listener);
        return () => this.off(event, listener);
    }
    off(event, listener) {
        this.listeners[event].delete(listener);
    }
    close() {
        if (this.current === "closed")
            return;
        const socket = this.socket;
        this.socket = undefined;
        this.stopTimers();
        if (socket) {
            detach(socket);
            if (socket.readyState === 0) {
                // Closing a socket that is still connecting fails it without a
                // close frame, which the server would take for a lost connection
                // (a ghost until the lease ends): close cleanly once it is open.
                socket.onopen = () => closeQuietly(socket);
            }
            else {
                closeQuietly(socket);
            }
        }
        this.setStatus({ status: "closed", reason: "closed-by-client" });
    }
    emit(event, ...args) {
        for (const listener of [...this.listeners[event]]) {
            try {
                listener(...args);
            }
            catch (e) {
                // A listener's bug must not break the connection.
                setTimeout(() => {
                    throw e;
                });
            }
        }
    }
    setStatus(change) {
        this.current = change.status;
        this.emit("status", change);
    }
    joinUrl() {
        const u = new URL(this.url);
        if (u.protocol === "http:")
            u.protocol = "ws:";
        if (u.protocol === "https:")
            u.protocol = "wss:";
        if (this.options.identity)
            u.searchParams.set("identity", this.options.identity);
        if (this.options.token)
            u.searchParams.set("token", this.options.token);
        if (this.myId)
            u.searchParams.set("id", this.myId);
        else
            u.searchParams.delete("id");
        return u.toString();
    }
    open() {
        this.retryTimer = undefined;
        this.welcomed = false;
        this.pendingError = undefined;
        let socket;
        try {
            socket = new this.Ctor(this.joinUrl());
        }
        catch (e) {
            // A URL the implementation refuses will never work.
            this.error = e instanceof Error ? e.message : String(e);
            this.emit("error", this.error);
            this.setStatus({ status: "closed", reason: "refused", error: this.error });
            return;
        }
        this.socket = socket;
        socket.onmessage = (event) => {
            if (this.socket === socket)
                this.message(event.data);
        };
        socket.onclose = (event) => {
            if (this.socket === socket)
                this.closed(typeof event?.code === "number" ? event.code : 1006);
        };
        socket.onerror = () => {
            // Browsers follow an error with a close event; some implementations
            // (Node 20's) do not when the connection could not be made at all.
            if (this.socket === socket && socket.readyState !== 1)
                this.failed(socket);
        };
        this.connectTimer = setTimeout(() => {
            if (this.socket === socket && !this.welcomed)
                this.failed(socket);
        }, this.connectTimeout);
    }
    /** An attempt that will not be welcomed: drop it and count a lost connection. */
    failed(socket) {
        detach(socket);
        closeQuietly(socket);
        this.closed(1006);
    }
    message(data) {
        if (typeof data !== "string")
            return;
        let msg;
        try {
            msg = JSON.parse(data);
        }
        catch {
            return;
        }
        if (msg === null || typeof msg !== "object")
            return;
        if (typeof msg.error === "string") {
            this.pendingError = msg.error;
            this.error = msg.error;
            this.emit("error", msg.error);
        }
        else if (msg.event === "remote join" && isClient(msg.client)) {
            if (!this.welcomed)
                return;
            const client = pick(msg.client);
            this.roster.set(client.id, client);
            this.emit("join", { ...client });
        }
        else if (msg.event === "remote leave" && isClient(msg.client)) {
            if (!this.welcomed)
                return;
            const client = this.roster.get(msg.client.id) ?? pick(msg.client);
            if (this.roster.delete(client.id))
                this.emit("leave", { ...client });
        }
        else if (msg.event === "expired") {
            this.emit("expired");
        }
        else if (typeof msg.id === "string" && Array.isArray(msg.clients)) {
            this.welcome(msg.id, msg.clients.filter(isClient).map(pick));
        }
        // {"ping":true}, {"pong":true} and anything unknown: ignored.
    }
    welcome(id, clients) {
        const previous = this.roster;
        const wasSynced = previous.size > 0;
        this.roster = new Map(clients.map((c) => [c.id, c]));
        this.myId = id;
        this.welcomed = true;
        this.failures = 0;
        this.clearConnectTimer();
        this.startPings();
        this.setStatus({ status: "open" });
        this.emit("sync", this.clients());
        // Whatever changed while we were away, as events.
        if (wasSynced) {
            for (const [cid, c] of previous) {
                if (!this.roster.has(cid))
                    this.emit("leave", { ...c });
            }
            for (const [cid, c] of this.roster) {
                if (!previous.has(cid))
                    this.emit("join", { ...c });
            }
        }
    }
    startPings() {
        this.stopPings();
        this.pingTimer = setInterval(() => {
            const s = this.socket;
            if (s && s.readyState === 1) {
                try {
                    s.send(PING);
                }
                catch {
                    // the close event will follow
                }
            }
        }, this.pingMs);
    }
    stopPings() {
        if (this.pingTimer !== undefined)
            clearInterval(this.pingTimer);
        this.pingTimer = undefined;
    }
    clearConnectTimer() {
        if (this.connectTimer !== undefined)
            clearTimeout(this.connectTimer);
        this.connectTimer = undefined;
    }
    stopTimers() {
        this.stopPings();
        this.clearConnectTimer();
        if (this.retryTimer !== undefined)
            clearTimeout(this.retryTimer);
        this.retryTimer = undefined;
    }
    closed(code) {
        const socket = this.socket;
        this.socket = undefined;
        if (socket)
            detach(socket);
        this.stopPings();
        this.clearConnectTimer();
        const error = this.pendingError;
        switch (code) {
            case CloseCodes.REPLACED:
                this.setStatus({ status: "closed", code, reason: "replaced" });
                return;
            case CloseCodes.POLICY:
                this.setStatus({ status: "closed", code, reason: "refused", error });
                return;
            case CloseCodes.RESTART:
                // Leases are kept: come back at once with the same id.
                this.retry(code, 0, "restart");
                return;
            case CloseCodes.EXPIRED:
                // Others already saw us leave: a fresh join, not a resume.
                this.myId = undefined;
                this.retry(code, 0, "expired");
                return;
            default: {
                // Lost (1006), internal error (1011), anything else: back off and
                // resume with our id. The first retry after a working connection
                // goes almost at once.
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
        if (this.current !== "reconnecting")
            return; // a listener closed us
        if (delayMs <= 0)
            this.open();
        else
            this.retryTimer = setTimeout(() => this.open(), delayMs);
    }
}
function detach(socket) {
    socket.onopen = null;
    socket.onmessage = null;
    socket.onclose = null;
    socket.onerror = null;
}
function closeQuietly(socket) {
    try {
        socket.close(CloseCodes.NORMAL);
    }
    catch {
        // already closing or closed
    }
}
function isClient(c) {
    if (c === null || typeof c !== "object")
        return false;
    const o = c;
    return typeof o.id === "string" && typeof o.identity === "string" && typeof o.joinedAt === "string";
}
function pick(c) {
    return { id: c.id, identity: c.identity, joinedAt: c.joinedAt };
}
