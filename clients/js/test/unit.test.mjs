// Unit tests of pure logic, no server: the PresenceStore the React hooks
// are built on (fed by a scripted stand-in for one connection, which is
// the store's input), and the client's checks of a state before it sends
// one. Run: node --experimental-websocket --test test/unit.test.mjs
// What it tests is the packaged client (test/packaged.mjs).

import assert from "node:assert/strict";
import { after, describe, it } from "node:test";

import { installPackaged } from "./packaged.mjs";

const packaged = installPackaged({ react: true });
after(() => packaged.cleanup());
const { PresenceStore } = await import(packaged.resolve("@longhouse/client/react"));
const { connect } = await import(packaged.moduleUrl);

/** A scripted connection: what `connect` returns, driven by the test. */
class ScriptedPresence {
  constructor(url, options) {
    this.url = url;
    this.options = options;
    this.status = "connecting";
    this.state = options.state ?? null;
    this.roster = [];
    this.selfId = undefined;
    this.sent = [];
    this.closed = false;
    this.handlers = new Map();
  }
  on(event, f) {
    if (!this.handlers.has(event)) this.handlers.set(event, new Set());
    this.handlers.get(event).add(f);
    return () => this.handlers.get(event).delete(f);
  }
  emit(event, ...args) {
    for (const f of this.handlers.get(event) ?? []) f(...args);
  }
  listenerCount() {
    return [...this.handlers.values()].reduce((n, s) => n + s.size, 0);
  }
  clients() {
    return [...this.roster];
  }
  others() {
    return this.roster.filter((c) => c.id !== this.selfId);
  }
  members() {
    const groups = new Map();
    for (const c of this.roster) {
      if (!groups.has(c.identity)) groups.set(c.identity, { identity: c.identity, clients: [], self: false });
      const m = groups.get(c.identity);
      m.clients.push(c);
      if (c.id === this.selfId) m.self = true;
    }
    return [...groups.values()];
  }
  setState(state) {
    this.state = state;
  }
  broadcast(data) {
    this.sent.push(data);
    return this.status === "open";
  }
  close() {
    this.closed = true;
    this.status = "closed";
    this.emit("status", { status: "closed", reason: "closed-by-client" });
  }
  /** The server's welcome, as the real connection tells it. */
  welcome(selfId, roster) {
    this.selfId = selfId;
    this.roster = roster;
    this.status = "open";
    this.emit("status", { status: "open" });
    this.emit("sync", this.clients());
  }
}

function scripted() {
  const made = [];
  const connectFn = (url, options) => {
    const p = new ScriptedPresence(url, options);
    made.push(p);
    return p;
  };
  return { made, connectFn };
}

const ann = Object.freeze({ id: "a", identity: "ann", joinedAt: "2015-06-05T21:09:26.480Z" });
const bob = Object.freeze({ id: "b", identity: "bob", joinedAt: "2015-06-05T21:09:27.480Z", state: { x: 1 } });
const bob2 = Object.freeze({ id: "b2", identity: "bob", joinedAt: "2015-06-05T21:09:28.480Z" });

describe("PresenceStore", () => {
  it("before any connection: nobody, connecting, the initial state; a server render sees the same", () => {
    const { made, connectFn } = scripted();
    const store = new PresenceStore({ colour: "red" }, connectFn);
    assert.deepEqual(store.getOthers(), []);
    assert.deepEqual(store.getMembers(), []);
    assert.equal(store.getStatus(), "connecting");
    assert.deepEqual(store.getMyState(), { colour: "red" });
    assert.deepEqual(store.getServerList(), []);
    assert.equal(store.getServerStatus(), "connecting");
    assert.equal(made.length, 0, "no connection until attach");
  });

  it("attach joins with the store's state; snapshots change only when the roster does", () => {
    const { made, connectFn } = scripted();
    const store = new PresenceStore({ colour: "red" }, connectFn);
    let notified = 0;
    store.subscribe(() => notified++);
    store.attach("ws://h/s", { identity: "ann" });
    assert.equal(made.length, 1);
    assert.deepEqual(made[0].options, { identity: "ann", state: { colour: "red" } });
    const p = made[0];
    p.welcome("a", [ann, bob]);
    assert.ok(notified >= 2, "status and sync both notify");
    const others = store.getOthers();
    assert.deepEqual(others, [bob]);
    assert.equal(store.getOthers(), others, "same reference while nothing changed");
    assert.equal(store.getStatus(), "open");
    const members = store.getMembers();
    assert.deepEqual(
      members.map((m) => [m.identity, m.self, m.clients.map((c) => c.id)]),
      [
        ["ann", true, ["a"]],
        ["bob", false, ["b"]],
      ],
    );

    // A status change is a change, but the lists' references stay.
    p.emit("status", { status: "open" });
    assert.equal(store.getOthers(), others);
    assert.equal(store.getMembers(), members);

    // A second tab of bob: others changes; ann's member is kept by reference.
    p.roster = [ann, bob, bob2];
    p.emit("join", bob2);
    assert.notEqual(store.getOthers(), others);
    assert.deepEqual(store.getOthers(), [bob, bob2]);
    const members2 = store.getMembers();
    assert.notEqual(members2, members);
    assert.equal(members2[0], members[0], "an unchanged member keeps its reference");
    assert.deepEqual(members2[1].clients, [bob, bob2]);

    // An update replaces one client object.
    const moved = Object.freeze({ ...bob, state: { x: 2 } });
    p.roster = [ann, moved, bob2];
    p.emit("update", moved, bob);
    assert.deepEqual(store.getOthers(), [moved, bob2]);

    p.roster = [ann];
    p.emit("leave", moved, "left");
    p.emit("leave", bob2, "left");
    assert.deepEqual(store.getOthers(), []);
    assert.deepEqual(store.getMembers().map((m) => m.identity), ["ann"]);
  });

  it("setMyState takes a value or an updater, shows it at once and hands it to the connection", () => {
    const { made, connectFn } = scripted();
    const store = new PresenceStore(null, connectFn);
    store.setMyState({ n: 1 });
    assert.deepEqual(store.getMyState(), { n: 1 }, "kept before any connection");
    store.attach("ws://h/s", { identity: "ann" });
    assert.deepEqual(made[0].options.state, { n: 1 }, "and joined with");
    let notified = 0;
    store.subscribe(() => notified++);
    store.setMyState((s) => ({ n: s.n + 1 }));
    assert.deepEqual(store.getMyState(), { n: 2 });
    assert.deepEqual(made[0].state, { n: 2 });
    assert.equal(notified, 1);
    store.setMyState(null);
    assert.equal(store.getMyState(), null);
    assert.equal(made[0].state, null);
  });

  it("a stale detach (strict mode's first mount) closes its own connection, never a newer one", () => {
    const { made, connectFn } = scripted();
    const store = new PresenceStore(null, connectFn);
    const detachFirst = store.attach("ws://h/s", { identity: "ann" });
    detachFirst();
    assert.equal(made[0].closed, true);
    assert.equal(store.getStatus(), "closed");
    assert.equal(made[0].listenerCount(), 0, "the store stopped listening to it");
    const detachSecond = store.attach("ws://h/s", { identity: "ann" });
    assert.equal(store.getStatus(), "connecting");
    detachFirst();
    assert.equal(made[1].closed, false, "the first cleanup again does nothing");
    assert.equal(store.current, made[1]);
    // Attaching over a live connection closes it.
    store.attach("ws://h/other", { identity: "ann" });
    assert.equal(made[1].closed, true);
    detachSecond();
    assert.equal(made[2].closed, false, "the replaced connection's cleanup leaves the newest open");
    assert.equal(made.filter((p) => !p.closed).length, 1, "one connection open");
  });

  it("keeps this connection's state across a detach and a new attach", () => {
    const { made, connectFn } = scripted();
    const store = new PresenceStore(null, connectFn);
    const detach = store.attach("ws://h/s", { identity: "ann" });
    store.setMyState({ typing: true });
    detach();
    assert.deepEqual(store.getMyState(), { typing: true });
    store.attach("ws://h/s", { identity: "ann" });
    assert.deepEqual(made[1].options.state, { typing: true });
  });

  it("broadcast handlers outlive re-attaches; broadcast sends through the current connection", () => {
    const { made, connectFn } = scripted();
    const store = new PresenceStore(null, connectFn);
    const got = [];
    const off = store.onBroadcast((m) => got.push(m.data));
    assert.equal(store.broadcast("early"), false, "nothing to send through");
    store.attach("ws://h/s", { identity: "ann" })();
    store.attach("ws://h/s", { identity: "ann" });
    made[0].emit("broadcast", { data: "stale", from: "x" });
    made[1].emit("broadcast", { data: "hello", from: "b" });
    made[1].welcome("a", [ann]);
    assert.equal(store.broadcast({ k: 1 }), true);
    assert.deepEqual(made[1].sent, [{ k: 1 }]);
    off();
    made[1].emit("broadcast", { data: "after", from: "b" });
    assert.deepEqual(got, ["hello"]);
  });
});

describe("setState's checks (before anything is sent)", () => {
  // A connection that never opens: the checks need no server.
  class NeverOpens {
    constructor() {
      this.readyState = 0;
    }
    send() {}
    close() {}
  }
  const open = (options = {}) => connect("ws://127.0.0.1:1/s", { identity: "a", WebSocket: NeverOpens, ...options });

  it("takes a plain object or null, and keeps a frozen copy", () => {
    const p = open();
    const mine = { cursor: { x: 1, y: 2 } };
    p.setState(mine);
    assert.deepEqual(p.state, mine);
    assert.notEqual(p.state, mine, "a copy");
    assert.ok(Object.isFrozen(p.state) && Object.isFrozen(p.state.cursor));
    mine.cursor.x = 9;
    assert.equal(p.state.cursor.x, 1);
    p.setState(null);
    assert.equal(p.state, null);
    p.close();
  });

  it("refuses arrays, scalars, cycles and BigInt with a TypeError, leaving the state as it was", () => {
    const p = open({ state: { a: 1 } });
    const cyclic = {};
    cyclic.self = cyclic;
    for (const bad of [[1], "x", 3, true, undefined, cyclic, { n: 1n }]) {
      assert.throws(() => p.setState(bad), TypeError, `${String(bad)}`);
    }
    assert.deepEqual(p.state, { a: 1 });
    p.close();
  });

  it("refuses a state past maxStateBytes (UTF-8 bytes of its JSON) with a RangeError", () => {
    const p = open({ maxStateBytes: 20 });
    // {"s":"ééééééé"} is 9 + 14 = 23 bytes though it is 16 characters.
    assert.throws(() => p.setState({ s: "ééééééé" }), RangeError);
    p.setState({ s: "ééééé" }); // 19 bytes
    assert.deepEqual(p.state, { s: "ééééé" });
    assert.throws(() => open({ maxStateBytes: 4, state: { long: true } }), RangeError, "also at connect");
    p.close();
  });

  it("broadcast needs data", () => {
    const p = open();
    assert.throws(() => p.broadcast(undefined), TypeError);
    assert.equal(p.broadcast({ any: "json" }), false, "not sent while not connected");
    p.close();
  });
});
