// The packaged client: what `npm pack` ships, installed from the tarball
// into a scratch project that imports it by name, runs it against a real
// server, and type-checks a program against the shipped declarations.
// Run: node --experimental-websocket --test test/package.test.mjs

import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, before, it } from "node:test";

import { startServer, uniqueSpace, unwind } from "./harness.mjs";
import { installPackaged, packageDir, run } from "./packaged.mjs";

let packaged;
const stack = [];
before(() => {
  packaged = installPackaged({ react: true });
  stack.push(() => packaged.cleanup());
});
after(() => unwind(stack));

it("the tarball holds the ES modules (client, hooks), their types, the README and the licence, nothing else", () => {
  assert.deepEqual(packaged.files, [
    "LICENSE",
    "README.md",
    "dist/connection.d.ts",
    "dist/index.d.ts",
    "dist/index.js",
    "dist/react.d.ts",
    "dist/react.js",
    "dist/roster.d.ts",
    "dist/store.d.ts",
    "dist/throttle.d.ts",
    "dist/types.d.ts",
    "dist/wire.d.ts",
    "package.json",
  ]);
});

it("the installed package.json names the entry points; React is an optional peer, nothing else is needed", () => {
  const installed = path.join(packaged.app, "node_modules/@longhouse/client");
  const pkg = JSON.parse(readFileSync(path.join(installed, "package.json"), "utf8"));
  assert.equal(pkg.name, "@longhouse/client");
  assert.match(pkg.version, /^\d+\.\d+\.\d+/);
  assert.equal(pkg.license, "MIT");
  assert.equal(pkg.type, "module");
  assert.deepEqual(pkg.exports["."], { types: "./dist/index.d.ts", import: "./dist/index.js" });
  assert.deepEqual(pkg.exports["./react"], { types: "./dist/react.d.ts", import: "./dist/react.js" });
  assert.equal(pkg.types, "./dist/index.d.ts");
  for (const key of ["dependencies", "optionalDependencies", "bundleDependencies"]) {
    assert.equal(pkg[key], undefined, `${key} in the packed package.json`);
  }
  assert.deepEqual(pkg.peerDependencies, { react: ">=18" });
  assert.deepEqual(pkg.peerDependenciesMeta, { react: { optional: true } });
  // The client's module imports nothing; the hooks' imports React and the client's module.
  const imports = (file) =>
    [...readFileSync(path.join(installed, file), "utf8").matchAll(/^\s*(?:import|export)\b[^;]*?from\s*"([^"]+)"/gms)].map(
      (m) => m[1],
    );
  assert.deepEqual(imports("dist/index.js"), []);
  assert.deepEqual([...new Set(imports("dist/react.js"))].sort(), ["./index.js", "react"]);
  assert.equal(packaged.moduleUrl, new URL("dist/index.js", `file://${installed}/`).href);
});

it("a project imports it by name (ESM) and is welcomed by a real server", async () => {
  const server = await startServer(stack, { label: "packaged" });
  const space = uniqueSpace("packaged");
  const program = `
    import { connect, spaceUrl } from "@longhouse/client";
    const presence = connect(spaceUrl(process.env.BASE, process.env.SPACE), { identity: "ann", ttlMs: 20000 });
    const timer = setTimeout(() => { console.error("no welcome in 5 s"); process.exit(1); }, 5000);
    presence.on("sync", (clients) => {
      clearTimeout(timer);
      console.log(JSON.stringify(clients.map((c) => c.identity)));
      presence.close();
    });
  `;
  const out = run(
    process.execPath,
    ["--experimental-websocket", "--no-warnings", "--input-type=module", "-e", program],
    packaged.app,
    { BASE: server.ws, SPACE: space },
  );
  assert.deepEqual(JSON.parse(out.trim()), ["ann"]);
});

it("TypeScript checks a program against the shipped declarations", () => {
  writeFileSync(
    path.join(packaged.app, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        target: "ES2022",
        module: "NodeNext",
        moduleResolution: "NodeNext",
        lib: ["ES2022", "DOM"],
        types: [],
        strict: true,
        noEmit: true,
        skipLibCheck: false,
      },
      files: ["check.ts"],
    }),
  );
  // Each @ts-expect-error fails the check if the line type-checks, so a
  // package whose types were missing (any) fails too.
  writeFileSync(
    path.join(packaged.app, "check.ts"),
    `
import { connect, spaceUrl, PING, CloseCodes } from "@longhouse/client";
import type {
  BroadcastMessage,
  LeaveReason,
  Presence,
  PresenceClient,
  PresenceMember,
  PresenceState,
  PresenceStatus,
  StatusChange,
} from "@longhouse/client";
import {
  PresenceProvider,
  PresenceStore,
  useBroadcast,
  useMembers,
  useMyState,
  useOthers,
  usePresence,
  useStatus,
} from "@longhouse/client/react";
import { createElement } from "react";

const presence: Presence = connect(spaceUrl("wss://presence.example.com", "team/42"), {
  identity: "ann@example.com",
  username: "Ann",
  state: { name: "Ann", cursor: { x: 0.5, y: 0.25 } },
  updateIntervalMs: 50,
  ttlMs: 60000,
});
presence.on("join", (c: PresenceClient) => console.log(c.id, c.identity, c.joinedAt, c.state, c.info, c.username));
presence.on("leave", (c: PresenceClient, reason: LeaveReason | undefined) => console.log(c.id, reason));
presence.on("update", (now: PresenceClient, before: PresenceClient) => console.log(now.state, before.state));
presence.on("memberjoin", (m: PresenceMember) => console.log(m.identity, m.clients.length, m.self));
presence.on("memberleave", (m: PresenceMember, reason: LeaveReason | undefined) => console.log(m.identity, reason));
presence.on("broadcast", (m: BroadcastMessage) => console.log(m.data, m.from, m.client?.identity));
presence.on("status", (s: StatusChange) => {
  const status: PresenceStatus = s.status;
  console.log(status, s.reason === "removed" && s.code === CloseCodes.REMOVED);
});
const everyone: PresenceClient[] = presence.clients();
const others: PresenceClient[] = presence.others();
const members: PresenceMember[] = presence.members();
const mine: PresenceState | null = presence.state;
presence.setState({ typing: true, selection: [1, 2], nested: { ok: null } });
presence.setState(null);
const sent: boolean = presence.broadcast({ saved: "doc-1" });
console.log(everyone.length, others.length, members.length, mine, sent, PING.length, CloseCodes.REMOVED);
// @ts-expect-error: the options are required
connect("wss://presence.example.com/x");
// @ts-expect-error: no such event
presence.on("no such event", () => {});
// @ts-expect-error: an identity is a string
connect("wss://presence.example.com/x", { identity: 42 });
// @ts-expect-error: a state is an object, not a string
presence.setState("typing");
// @ts-expect-error: a leave listener's reason is a LeaveReason
presence.on("leave", (_c: PresenceClient, reason: number) => console.log(reason));
presence.close();

export function Cursors() {
  const others: readonly PresenceClient[] = useOthers();
  const members: readonly PresenceMember[] = useMembers();
  const [me, setMe] = useMyState();
  const status: PresenceStatus = useStatus();
  const broadcast = useBroadcast((m: BroadcastMessage) => console.log(m.data));
  setMe((s) => ({ ...s, cursor: { x: 1, y: 1 } }));
  setMe(null);
  // @ts-expect-error: the setter takes a state
  setMe(42);
  broadcast({ wave: true });
  return createElement("p", null, others.length, members.length, JSON.stringify(me), status);
}
export function App() {
  const store: PresenceStore = usePresence("wss://presence.example.com/team", { identity: "ann" });
  return createElement(PresenceProvider, { value: store }, createElement(Cursors));
}
`,
  );
  const tsc = path.join(packageDir, "node_modules/typescript/bin/tsc");
  run(process.execPath, [tsc, "-p", packaged.app], packaged.app);
});
