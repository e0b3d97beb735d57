// The client library against real native servers (and Redis), started and
// stopped by each test. Run: node --experimental-websocket --test test/client.test.mjs
// (after `npm run build` and `cargo build -p longhouse-native`). What it
// tests is the packaged client: `npm pack`, installed into a scratch project
// (test/packaged.mjs), imported from there.

import assert from "node:assert/strict";
import { describe, it, after, beforeEach, afterEach } from "node:test";

import { installPackaged } from "./packaged.mjs";
import {
  freePort,
  hasRedis,
  nextEvent,
  rawJoin,
  record,
  startProxy,
  startRedis,
  startServer,
  trueRoster,
  uniqueSpace,
  unwind,
  waitFor,
} from "./harness.mjs";

const packaged = installPackaged();
after(() => packaged.cleanup());
const { connect, spaceUrl, PING } = await import(packaged.moduleUrl);

let stack;
beforeEach(() => {
  stack = [];
});
afterEach(async () => {
  await unwind(stack);
});

/** connect() whose presence is closed when the test ends. */
function join(base, space, options) {
  const p = connect(spaceUrl(base, space), options);
  stack.push(() => p.close());
  return p;
}

const ids = (clients) => clients.map((c) => c.id).sort();

describe("roster", () => {
  it("welcome, remote join and clean leave keep clients() equal to the space", async () => {
    const server = await startServer(stack, { label: "roster" });
    const space = uniqueSpace("basic");
    const alice = join(server.ws, space, { identity: "alice" });
    const aliceSeen = record(alice);
    const [synced] = await Promise.all([nextEvent(alice, "sync")]);
    assert.equal(alice.status, "open");
    assert.equal(synced.length, 1);
    assert.equal(synced[0].identity, "alice");
    assert.equal(synced[0].id, alice.id);

    const bob = join(server.ws, space, { identity: "bob+1 / ü" });
    const bobSynced = nextEvent(bob, "sync");
    const joined = await nextEvent(alice, "join");
    assert.equal(joined.identity, "bob+1 / ü", "identity round-trips through the URL");
    await bobSynced;
    assert.equal(bob.status, "open");
    assert.deepEqual(ids(alice.clients()), ids(bob.clients()));
    assert.equal(alice.clients().length, 2);

    const left = nextEvent(alice, "leave");
    bob.close();
    assert.equal(bob.status, "closed");
    assert.equal((await left).id, joined.id);
    assert.deepEqual(ids(alice.clients()), [alice.id]);
    assert.deepEqual(aliceSeen.expired, []);
  });

  it("stays equal to the server's roster after churn", async () => {
    const server = await startServer(stack, { label: "churn" });
    const proxy = await startProxy(stack, server.port);
    const space = uniqueSpace("churn");
    const live = new Set();
    let n = 0;
    const add = (viaProxy) => {
      const p = join(viaProxy ? proxy.ws : server.ws, space, { identity: `user${n++}`, minBackoffMs: 20 });
      live.add(p);
      return p;
    };
    for (let i = 0; i < 8; i++) add(i % 2 === 0);
    // Joins, clean leaves and network drops (which resume) racing each other.
    for (let round = 0; round < 4; round++) {
      const all = [...live];
      const leaving = all.filter((_, i) => (i + round) % 3 === 0);
      for (const p of leaving) {
        p.close();
        live.delete(p);
      }
      add(round % 2 === 0);
      add(false);
      if (round === 1) proxy.drop();
      await new Promise((r) => setImmediate(r));
    }
    await waitFor(() => [...live].every((p) => p.status === "open"), "every client open", 10_000);
    const expected = ids([...live].map((p) => ({ id: p.id })));
    assert.equal(new Set(expected).size, live.size, "ids are distinct");
    await waitFor(
      async () => JSON.stringify(await trueRoster(stack, server.ws, space)) === JSON.stringify(expected),
      "the server's roster to equal the live clients",
      10_000,
    );
    await waitFor(
      () => [...live].every((p) => JSON.stringify(ids(p.clients())) === JSON.stringify(expected)),
      "every client's roster to equal the server's",
      10_000,
    );
  });
});

describe("leases", () => {
  it("pings at a third of the TTL keep the lease alive", async () => {
    const ttl = 900;
    const server = await startServer(stack, { env: { PRESENCE_TTL: String(ttl), KEEPALIVE_MS: "0" }, label: "pings" });
    const space = uniqueSpace("pings");
    const p = join(server.ws, space, { identity: "pinger", ttlMs: ttl });
    const seen = record(p);
    await nextEvent(p, "sync");
    const watcher = await rawJoin(stack, `${server.ws}/${space}?identity=watcher`);
    // Four lease lengths of silence from everyone but the pinger: without
    // pings the lease would end after one. The wait is the condition itself.
    await new Promise((r) => setTimeout(r, ttl * 4));
    assert.deepEqual(seen.expired, []);
    assert.equal(p.status, "open");
    assert.ok(
      !watcher.messages.some((m) => m.event === "remote leave"),
      `the watcher saw a leave: ${JSON.stringify(watcher.messages)}`,
    );
  });

  it("after expiry (4000) it joins again with a fresh id", async () => {
    const server = await startServer(stack, { env: { PRESENCE_TTL: "400", KEEPALIVE_MS: "0" }, label: "expiry" });
    const space = uniqueSpace("expiry");
    // A client that believes the TTL is far longer, so it pings too late.
    const p = join(server.ws, space, { identity: "sleepy", ttlMs: 600_000 });
    await nextEvent(p, "sync");
    const first = p.id;
    const statuses = record(p).status;
    await nextEvent(p, "expired", undefined, 3000);
    const resynced = await nextEvent(p, "sync", undefined, 3000);
    assert.notEqual(p.id, first, "a fresh join gets a new id");
    assert.deepEqual(ids(resynced), [p.id]);
    assert.ok(statuses.some((s) => s.status === "reconnecting" && s.code === 4000 && s.delayMs === 0));
  });
});

describe("reconnection", () => {
  it("a lost connection resumes with the same id and nobody sees a leave", async () => {
    const server = await startServer(stack, { label: "lost" });
    const proxy = await startProxy(stack, server.port);
    const space = uniqueSpace("lost");
    const p = join(proxy.ws, space, { identity: "roamer" });
    await nextEvent(p, "sync");
    const { id } = p;
    const joinedAt = p.clients()[0].joinedAt;
    const watcher = await rawJoin(stack, `${server.ws}/${space}?identity=watcher`);
    const statuses = record(p).status;
    proxy.drop();
    const resynced = await nextEvent(p, "sync");
    assert.equal(p.id, id, "resumed with its id");
    assert.equal(resynced.find((c) => c.id === id).joinedAt, joinedAt, "and its joinedAt");
    assert.equal(statuses[0].status, "reconnecting");
    assert.equal(statuses[0].code, 1006);
    assert.deepEqual(
      watcher.messages.filter((m) => m.event),
      [],
      "the watcher saw no event at all",
    );
  });

  it("backs off with growing, jittered delays while the server is down", async () => {
    const port = await freePort();
    const space = uniqueSpace("down");
    const p = join(`ws://127.0.0.1:${port}`, space, { identity: "patient", minBackoffMs: 20, maxBackoffMs: 200 });
    const statuses = record(p).status;
    await waitFor(() => statuses.filter((s) => s.status === "reconnecting").length >= 6, "six retries", 10_000);
    const delays = statuses.filter((s) => s.status === "reconnecting").map((s) => s.delayMs);
    const attempts = statuses.filter((s) => s.status === "reconnecting").map((s) => s.attempt);
    assert.deepEqual(attempts.slice(0, 6), [0, 1, 2, 3, 4, 5]);
    assert.ok(delays[0] <= 20, `first retry at once-ish: ${delays}`);
    assert.ok(delays.slice(1).every((d, i) => d >= Math.min(200, 20 * 2 ** (i + 1)) / 2 && d <= 200), `${delays}`);
    // Now the server comes up on that port: the client gets in.
    await startServer(stack, { port, label: "down" });
    await nextEvent(p, "sync", undefined, 5000);
    assert.equal(p.status, "open");
  });

  it(
    "the server's SIGTERM (1012): reconnects at once to another instance on the same Redis and resumes unseen, with its state",
    { skip: !hasRedis && "redis-server is not installed" },
    async () => {
      // With the in-memory store the roster goes with the process (spec
      // section 7), so a silent resume needs a shared store: two instances
      // on one Redis, the client behind a proxy that is switched to the
      // second instance before the first is stopped.
      const redis = await startRedis(stack);
      const env = { REDIS_URL: redis };
      const a = await startServer(stack, { env, label: "sigterm-a" });
      const b = await startServer(stack, { env, label: "sigterm-b" });
      const proxy = await startProxy(stack, a.port);
      const space = uniqueSpace("restart");
      const watcher = join(b.ws, space, { identity: "watcher" });
      const watched = record(watcher);
      await nextEvent(watcher, "sync");
      const p = join(proxy.ws, space, { identity: "mover", state: { cursor: { x: 1, y: 2 } } });
      await nextEvent(p, "sync");
      await waitFor(() => watcher.clients().length === 2, "the watcher to see the mover");
      const updates = [];
      watcher.on("update", (c) => updates.push(c));
      const { id } = p;
      const statuses = record(p).status;
      proxy.upstream = b.port;
      const resynced = nextEvent(p, "sync");
      const result = await a.stop("SIGTERM");
      assert.equal(result.code, 0, "a stops cleanly");
      await resynced;
      assert.equal(p.id, id, "resumed with the same id");
      assert.equal(statuses[0].status, "reconnecting");
      assert.equal(statuses[0].code, 1012);
      assert.equal(statuses[0].delayMs, 0, "at once");
      assert.deepEqual(watched.leave, [], "the watcher saw no leave");
      assert.equal(watched.join.length, 1, "only the mover's first join");
      assert.deepEqual(updates, [], "nor an update: the state came along with the lease");
      assert.deepEqual(watcher.others()[0].state, { cursor: { x: 1, y: 2 } });
      assert.deepEqual(p.clients().find((c) => c.id === id).state, { cursor: { x: 1, y: 2 } });
      // Both still present, and both rosters are the server's.
      const both = [id, watcher.id].sort();
      assert.deepEqual(ids(p.clients()), both);
      assert.deepEqual(ids(watcher.clients()), both);
      assert.deepEqual(await trueRoster(stack, b.ws, space), both);
    },
  );
});

describe("stopping", () => {
  it("replaced by a newer connection with its id (4001): stops, no reconnect", async () => {
    const server = await startServer(stack, { label: "replaced" });
    const space = uniqueSpace("replaced");
    const p = join(server.ws, space, { identity: "twin" });
    await nextEvent(p, "sync");
    const closedEvent = nextEvent(p, "status", (s) => s.status === "closed");
    const newer = await rawJoin(stack, `${server.ws}/${space}?identity=twin&id=${p.id}`);
    assert.equal(newer.welcome.id, p.id);
    const change = await closedEvent;
    assert.equal(change.code, 4001);
    assert.equal(change.reason, "replaced");
    // Had it reconnected, the newer socket would be replaced in turn (4001).
    newer.socket.send(PING);
    const roster = await trueRoster(stack, server.ws, space);
    assert.deepEqual(roster, [p.id]);
    assert.equal(newer.socket.readyState, 1, "the newer connection is still open");
    assert.equal(p.status, "closed");
  });

  it("a refused join (1008) stops with the server's error", async () => {
    const server = await startServer(stack, { label: "refused" });
    const p = join(server.ws, "x".repeat(129), { identity: "someone" });
    const change = await nextEvent(p, "status", (s) => s.status === "closed");
    assert.equal(change.code, 1008);
    assert.equal(change.reason, "refused");
    assert.match(change.error, /^Invalid/);
    assert.match(p.lastError, /^Invalid/);
  });

  it("an id held by another identity (1008) stops with Invalid id", async () => {
    const server = await startServer(stack, { label: "stolen" });
    const space = uniqueSpace("stolen");
    const owner = join(server.ws, space, { identity: "owner" });
    await nextEvent(owner, "sync");
    const thief = join(server.ws, space, { identity: "thief", id: owner.id });
    const change = await nextEvent(thief, "status", (s) => s.status === "closed");
    assert.equal(change.code, 1008);
    assert.match(change.error, /^Invalid id/);
    assert.equal(owner.status, "open");
  });

  it("close() leaves at once: others see the leave", async () => {
    const server = await startServer(stack, { label: "close" });
    const space = uniqueSpace("close");
    const p = join(server.ws, space, { identity: "leaver" });
    await nextEvent(p, "sync");
    const watcher = await rawJoin(stack, `${server.ws}/${space}?identity=watcher`);
    const start = Date.now();
    p.close();
    await waitFor(() => watcher.messages.some((m) => m.event === "remote leave" && m.client.id === p.id), "the leave", 2000);
    assert.ok(Date.now() - start < 1000);
  });

  it("needs an identity or a token, and a WebSocket", () => {
    assert.throws(() => connect("ws://127.0.0.1:1/x", {}), /identity or a token/);
    const saved = globalThis.WebSocket;
    try {
      globalThis.WebSocket = undefined;
      assert.throws(() => connect("ws://127.0.0.1:1/x", { identity: "a" }), /WebSocket/);
    } finally {
      globalThis.WebSocket = saved;
    }
  });
});

describe("url", () => {
  it("spaceUrl encodes the space as one segment; the query is URLSearchParams-encoded", async () => {
    assert.equal(spaceUrl("http://h:1/", "team/42"), "ws://h:1/team%2F42");
    assert.equal(spaceUrl("https://h", "a b"), "wss://h/a%20b");
    const urls = [];
    class Fake {
      constructor(url) {
        urls.push(url);
        this.readyState = 0;
        stack.push(() => {});
      }
      send() {}
      close() {}
    }
    const p = connect("ws://h/s", { identity: "ann+1@x", id: "abc", WebSocket: Fake });
    await new Promise((r) => setTimeout(r, 0));
    p.close();
    assert.deepEqual(urls, ["ws://h/s?identity=ann%2B1%40x&id=abc"]);
    const q = connect("ws://h/s", { token: "t k", WebSocket: Fake });
    await new Promise((r) => setTimeout(r, 0));
    q.close();
    assert.equal(urls[1], "ws://h/s?token=t+k");
  });
});
