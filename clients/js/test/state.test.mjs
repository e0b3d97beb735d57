// Presence state, members, broadcast, leave reasons and the server API's
// removal (4003), through the packaged client against real native servers
// (protocol sections 10 to 15). Run (after `npm run build` and `cargo build
// -p longhouse-native`): node --experimental-websocket --test test/state.test.mjs

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { after, afterEach, beforeEach, describe, it } from "node:test";

import { installPackaged } from "./packaged.mjs";
import {
  freePort,
  nextEvent,
  rawJoin,
  record,
  startProxy,
  startServer,
  trueRoster,
  uniqueSpace,
  unwind,
  waitFor,
} from "./harness.mjs";

const packaged = installPackaged();
after(() => packaged.cleanup());
const { connect, spaceUrl, CloseCodes } = await import(packaged.moduleUrl);

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

/** A real WebSocket that records every frame it sends, with when. */
function recordingSocket() {
  const frames = [];
  const opened = [];
  class Recording extends WebSocket {
    constructor(url) {
      super(url);
      opened.push(url);
    }
    send(data) {
      frames.push({ at: performance.now(), data: JSON.parse(data) });
      super.send(data);
    }
  }
  return { Recording, frames, opened, updates: () => frames.filter((f) => f.data.action === "update") };
}

const delay = (ms) => new Promise((r) => setTimeout(r, ms));

describe("setState", () => {
  it("sends at most one update per interval, the latest always last, and the others see it", async () => {
    const server = await startServer(stack, { label: "throttle" });
    const space = uniqueSpace("throttle");
    const watcher = join(server.ws, space, { identity: "watcher" });
    await nextEvent(watcher, "sync");
    const { Recording, updates } = recordingSocket();
    const mover = join(server.ws, space, { identity: "mover", WebSocket: Recording, updateIntervalMs: 50 });
    await nextEvent(mover, "sync");
    await waitFor(() => watcher.others().length === 1, "the watcher to see the mover");

    // A mousemove handler: 100 calls, one every ~5 ms.
    const started = performance.now();
    for (let i = 1; i <= 100; i++) {
      mover.setState({ cursor: { x: i, y: 2 * i } });
      assert.deepEqual(mover.state, { cursor: { x: i, y: 2 * i } }, "shown at once");
      await delay(5);
    }
    const final = { cursor: { x: 100, y: 200 } };
    await waitFor(() => updates().at(-1)?.data.state?.cursor?.x === 100, "the trailing update", 2000);
    const elapsed = performance.now() - started;
    const sent = updates();
    assert.deepEqual(sent.at(-1).data, { action: "update", state: final });
    assert.ok(sent.length <= Math.ceil(elapsed / 50) + 1, `${sent.length} updates in ${Math.round(elapsed)} ms`);
    assert.ok(sent.length < 50, `far fewer than 100: ${sent.length}`);
    for (let i = 1; i < sent.length; i++) {
      const gap = sent[i].at - sent[i - 1].at;
      assert.ok(gap >= 49.5, `updates ${i - 1} and ${i} only ${gap} ms apart`);
    }
    // The watcher converges on the latest state.
    await waitFor(() => watcher.others()[0]?.state?.cursor?.x === 100, "the watcher to see the final state", 2000);
    assert.deepEqual(watcher.others()[0].state, final);
    // Nothing else is sent once it is out (three intervals of silence: the
    // absence of a send has no event to wait for).
    const count = updates().length;
    await delay(150);
    assert.equal(updates().length, count, "no update without a change");
  });

  it("a state given to connect is in the welcome and the others' join; an update reaches them, not the sender", async () => {
    const server = await startServer(stack, { label: "state" });
    const space = uniqueSpace("state");
    const ann = join(server.ws, space, { identity: "ann", state: { colour: "red" } });
    const [welcome] = [await nextEvent(ann, "sync")];
    assert.deepEqual(welcome[0].state, { colour: "red" });
    const annSeen = record(ann);
    const annUpdates = [];
    ann.on("update", (c, prev) => annUpdates.push([c, prev]));

    const bob = join(server.ws, space, { identity: "bob", username: "Bob B.", state: { colour: "blue" } });
    const bobSynced = nextEvent(bob, "sync");
    const joined = await nextEvent(ann, "join");
    assert.deepEqual(joined.state, { colour: "blue" }, "nobody sees a join without its state");
    assert.equal(joined.username, "Bob B.");
    await bobSynced;
    assert.deepEqual(bob.others(), [{ ...ann.clients()[0], state: { colour: "red" } }]);

    const bobUpdates = [];
    bob.on("update", (c) => bobUpdates.push(c));
    bob.setState({ colour: "green", typing: true });
    await waitFor(() => annUpdates.length === 1, "ann to see bob's update");
    const [now, before] = annUpdates[0];
    assert.equal(now.id, bob.id);
    assert.deepEqual(now.state, { colour: "green", typing: true });
    assert.deepEqual(before.state, { colour: "blue" });
    assert.equal(now.username, "Bob B.");
    assert.deepEqual(ann.others()[0].state, { colour: "green", typing: true });
    // Its own roster entry follows at once; nothing came back to it.
    assert.deepEqual(bob.clients().find((c) => c.id === bob.id).state, { colour: "green", typing: true });

    bob.setState(null);
    await waitFor(() => annUpdates.length === 2, "ann to see the state cleared");
    assert.equal("state" in annUpdates[1][0], false, "no state key once cleared");
    assert.deepEqual(bobUpdates, [], "the sender gets nothing back");
    assert.deepEqual(annSeen.leave, []);
  });

  it("close() with an update still held: the others see the leave with the latest state, reason left", async () => {
    const server = await startServer(stack, { label: "held" });
    const space = uniqueSpace("held");
    const ann = join(server.ws, space, { identity: "ann" });
    await nextEvent(ann, "sync");
    const bob = join(server.ws, space, { identity: "bob", updateIntervalMs: 10_000 });
    await nextEvent(bob, "sync");
    await waitFor(() => ann.others().length === 1, "ann to see bob");
    bob.setState({ step: 1 }); // goes at once
    bob.setState({ step: 2 }); // held for 10 s
    const left = new Promise((resolve) => ann.on("leave", (c, reason) => resolve({ c, reason })));
    bob.close();
    const { c, reason } = await left;
    assert.equal(reason, "left");
    assert.deepEqual(c.state, { step: 2 });
  });

  it("a resume keeps the state unseen; a state set while away goes once the connection is back", async () => {
    const server = await startServer(stack, { label: "resume-state" });
    const proxy = await startProxy(stack, server.port);
    const space = uniqueSpace("resume-state");
    const watcher = await rawJoin(stack, `${server.ws}/${space}?identity=watcher`);
    const { Recording, opened } = recordingSocket();
    const p = join(proxy.ws, space, { identity: "roamer", state: { page: 1 }, WebSocket: Recording, minBackoffMs: 20 });
    await nextEvent(p, "sync");
    const id = p.id;

    proxy.drop();
    await nextEvent(p, "sync");
    assert.equal(p.id, id);
    assert.match(opened.at(-1), /[?&]state=%7B%22page%22%3A1%7D/, "the resume carries the state");
    // A marker joins after the resume: events reach the watcher in order,
    // so anything the resume made would be seen before the marker's join.
    await rawJoin(stack, `${server.ws}/${space}?identity=marker`);
    await waitFor(
      () => watcher.messages.some((m) => m.event === "remote join" && m.client.identity === "marker"),
      "the marker's join",
    );
    assert.deepEqual(
      watcher.messages.filter((m) => m.event).map((m) => [m.event, m.client.identity]),
      [
        ["remote join", "roamer"],
        ["remote join", "marker"],
      ],
      "the resume made no event: no update, no leave",
    );

    // Dropped again; the state changes while it is away.
    const back = nextEvent(p, "status", (s) => s.status === "reconnecting");
    proxy.drop();
    await back;
    p.setState(null);
    await nextEvent(p, "sync");
    await waitFor(
      () => watcher.messages.some((m) => m.event === "remote update" && !("state" in m.client)),
      "the watcher to see the state cleared",
    );
    assert.equal(watcher.messages.filter((m) => m.event === "remote update").length, 1);
    assert.equal(watcher.messages.filter((m) => m.event === "remote leave").length, 0);
  });
});

/** An HS256 join token for `sub`, signed with `secret` (as the README mints them). */
function token(secret, claims) {
  const b64 = (x) => Buffer.from(JSON.stringify(x)).toString("base64url");
  const head = b64({ alg: "HS256", typ: "JWT" });
  const body = b64({ exp: Math.floor(Date.now() / 1000) + 300, ...claims });
  const sig = createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

describe("signed info", () => {
  it("a token's info claim shows in the others' client objects, beside the state", async () => {
    const secret = "test-auth-secret";
    const server = await startServer(stack, { env: { AUTH_SECRET: secret }, label: "info" });
    const space = uniqueSpace("info");
    const ann = join(server.ws, space, {
      token: token(secret, { sub: "ann", info: { name: "Ann A.", role: "editor" } }),
      state: { typing: false },
    });
    await nextEvent(ann, "sync");
    const bob = join(server.ws, space, { token: token(secret, { sub: "bob" }) });
    await nextEvent(bob, "sync");
    const [seen] = bob.others();
    assert.equal(seen.identity, "ann");
    assert.deepEqual(seen.info, { name: "Ann A.", role: "editor" });
    assert.deepEqual(seen.state, { typing: false });
    await waitFor(() => ann.others().length === 1, "ann to see bob");
    assert.equal("info" in ann.others()[0], false, "no info key without one");
  });
});

describe("catching up after a reconnect", () => {
  it("what changed while away is told as updates, leaves and member events from the new welcome", async () => {
    const server = await startServer(stack, { label: "catch-up" });
    const proxy = await startProxy(stack, server.port);
    const space = uniqueSpace("catch-up");
    const ann = join(server.ws, space, { identity: "ann", state: { page: 1 } });
    const bob = join(server.ws, space, { identity: "bob" });
    await Promise.all([nextEvent(ann, "sync"), nextEvent(bob, "sync")]);
    // Eve, connected all along, shows when the server has made the changes.
    const eve = join(server.ws, space, { identity: "eve" });
    await nextEvent(eve, "sync");
    // The watcher's connection goes through a proxy, which can keep it away
    // (retrying) while the others change.
    const watcher = join(proxy.ws, space, { identity: "watcher", minBackoffMs: 20, maxBackoffMs: 200 });
    await nextEvent(watcher, "sync");
    const seen = { update: [], leave: [], memberleave: [] };
    watcher.on("update", (c, before) => seen.update.push([c, before]));
    watcher.on("leave", (c, reason) => seen.leave.push([c.identity, reason]));
    watcher.on("memberleave", (m, reason) => seen.memberleave.push([m.identity, reason]));

    // Dropped, and its retries refused (the proxy points at a closed port)
    // until the others have changed.
    const away = nextEvent(watcher, "status", (st) => st.status === "reconnecting");
    proxy.upstream = await freePort();
    proxy.drop();
    await away;
    ann.setState({ page: 2 });
    bob.close();
    await waitFor(
      () => eve.others().length === 2 && eve.others().find((c) => c.identity === "ann")?.state?.page === 2,
      "eve to see ann's update and bob go",
    );
    assert.equal(watcher.status, "reconnecting");
    const back = nextEvent(watcher, "sync");
    proxy.upstream = server.port;
    await back;
    assert.equal(seen.update.length, 1);
    assert.equal(seen.update[0][0].identity, "ann");
    assert.deepEqual(seen.update[0][0].state, { page: 2 });
    assert.deepEqual(seen.update[0][1].state, { page: 1 });
    assert.deepEqual(seen.leave, [["bob", undefined]], "a leave whose reason the welcome cannot tell");
    assert.deepEqual(seen.memberleave, [["bob", undefined]]);
    assert.deepEqual(
      watcher.others().map((c) => [c.identity, c.state]),
      [
        ["ann", { page: 2 }],
        ["eve", undefined],
      ],
    );
  });
});

describe("members", () => {
  it("groups connections by identity: memberjoin on the first, memberleave on the last", async () => {
    const server = await startServer(stack, { label: "members" });
    const space = uniqueSpace("members");
    const ann = join(server.ws, space, { identity: "ann" });
    await nextEvent(ann, "sync");
    const memberJoins = [];
    const memberLeaves = [];
    ann.on("memberjoin", (m) => memberJoins.push(m));
    ann.on("memberleave", (m, reason) => memberLeaves.push({ m, reason }));

    const tabs = [];
    for (let i = 0; i < 3; i++) {
      const tab = join(server.ws, space, { identity: "bob" });
      await nextEvent(tab, "sync");
      tabs.push(tab);
    }
    await waitFor(() => ann.clients().length === 4, "ann to see three tabs");
    assert.equal(memberJoins.length, 1, "one memberjoin for three tabs");
    assert.equal(memberJoins[0].identity, "bob");
    assert.deepEqual(memberJoins[0].clients.map((c) => c.id), [tabs[0].id]);
    assert.equal(memberJoins[0].self, false);
    const members = ann.members();
    assert.deepEqual(
      members.map((m) => [m.identity, m.self, m.clients.map((c) => c.id)]),
      [
        ["ann", true, [ann.id]],
        ["bob", false, tabs.map((t) => t.id)],
      ],
    );
    assert.deepEqual(tabs[2].members().map((m) => [m.identity, m.self]), [
      ["ann", false],
      ["bob", true],
    ]);

    tabs[0].close();
    tabs[1].close();
    await waitFor(() => ann.clients().length === 2, "two tabs gone");
    assert.deepEqual(memberLeaves, [], "bob is still here");
    tabs[2].close();
    await waitFor(() => memberLeaves.length === 1, "bob's last tab gone");
    assert.equal(memberLeaves[0].m.identity, "bob");
    assert.deepEqual(memberLeaves[0].m.clients.map((c) => c.id), [tabs[2].id]);
    assert.equal(memberLeaves[0].reason, "left");
    assert.deepEqual(ann.members().map((m) => m.identity), ["ann"]);
  });
});

describe("broadcast", () => {
  it("reaches every other client in order with the sender, never the sender", async () => {
    const server = await startServer(stack, { label: "broadcast" });
    const space = uniqueSpace("broadcast");
    const ann = join(server.ws, space, { identity: "ann" });
    await nextEvent(ann, "sync");
    const bob = join(server.ws, space, { identity: "bob" });
    const cat = join(server.ws, space, { identity: "cat" });
    await Promise.all([nextEvent(bob, "sync"), nextEvent(cat, "sync")]);
    await waitFor(() => ann.others().length === 2 && bob.others().length === 2, "all three see each other");
    const got = { ann: [], bob: [], cat: [] };
    for (const [name, p] of Object.entries({ ann, bob, cat })) p.on("broadcast", (m) => got[name].push(m));

    const sent = [{ saved: true }, "text", 42, null, [1, 2]];
    for (const data of sent) assert.equal(ann.broadcast(data), true);
    await waitFor(() => got.bob.length === sent.length && got.cat.length === sent.length, "both to get all five");
    for (const name of ["bob", "cat"]) {
      assert.deepEqual(got[name].map((m) => m.data), sent, `${name}: all of them, in order`);
      assert.ok(got[name].every((m) => m.from === ann.id && m.client?.identity === "ann"));
    }
    // A marker from bob, to know ann has had time to get anything echoed.
    bob.broadcast("marker");
    await waitFor(() => got.ann.length === 1, "ann to get bob's marker");
    assert.deepEqual(got.ann.map((m) => [m.data, m.from]), [["marker", bob.id]], "no echo of ann's own");
  });

  it("a server broadcast (POST /{space}) arrives with from: null", async () => {
    const server = await startServer(stack, { env: { ADMIN_TOKEN: "admin-secret" }, label: "server-broadcast" });
    const space = uniqueSpace("server-broadcast");
    const ann = join(server.ws, space, { identity: "ann" });
    await nextEvent(ann, "sync");
    const got = nextEvent(ann, "broadcast");
    const r = await fetch(`${server.http}/${encodeURIComponent(space)}`, {
      method: "POST",
      headers: { Authorization: "Bearer admin-secret", "Content-Type": "application/json" },
      body: JSON.stringify({ data: { saved: "doc-1" } }),
    });
    assert.equal(r.status, 202);
    const m = await got;
    assert.equal(m.from, null);
    assert.deepEqual(m.data, { saved: "doc-1" });
    assert.equal(m.client, undefined);
  });
});

describe("removed by the server API (4003)", () => {
  it("stops with reason removed and the server's error, and does not come back by itself", async () => {
    const server = await startServer(stack, { env: { ADMIN_TOKEN: "admin-secret" }, label: "removed" });
    const space = uniqueSpace("removed");
    const ann = join(server.ws, space, { identity: "ann" });
    await nextEvent(ann, "sync");
    const { Recording, opened } = recordingSocket();
    const bob = join(server.ws, space, { identity: "bob", WebSocket: Recording, minBackoffMs: 1, maxBackoffMs: 5 });
    await nextEvent(bob, "sync");
    await waitFor(() => ann.others().length === 1, "ann to see bob");
    const leave = new Promise((resolve) => ann.on("leave", (c, reason) => resolve({ c, reason })));
    const memberLeave = new Promise((resolve) => ann.on("memberleave", (m, reason) => resolve({ m, reason })));
    const closed = nextEvent(bob, "status", (s) => s.status === "closed");
    const r = await fetch(`${server.http}/${encodeURIComponent(space)}?identity=bob`, {
      method: "DELETE",
      headers: { Authorization: "Bearer admin-secret" },
    });
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { removed: 1 });
    const change = await closed;
    assert.equal(change.code, CloseCodes.REMOVED);
    assert.equal(change.code, 4003);
    assert.equal(change.reason, "removed");
    assert.equal(change.error, "Removed");
    assert.equal(bob.lastError, "Removed");
    assert.equal(bob.status, "closed");
    assert.equal((await leave).reason, "removed");
    assert.equal((await memberLeave).reason, "removed");
    // With a 1-5 ms back-off a reconnect would long have happened: the
    // server's roster is ann alone, and bob opened no other socket.
    await delay(200);
    assert.deepEqual(await trueRoster(stack, server.ws, space), [ann.id]);
    assert.equal(opened.length, 1, "one socket, never reopened");
    assert.equal(bob.status, "closed");
  });
});
