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
  packaged = installPackaged();
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
import type { Presence, PresenceClient, PresenceStatus, StatusChange } from "@longhouse/client";

const presence: Presence = connect(spaceUrl("wss://presence.example.com", "team/42"), {
  identity: "ann@example.com",
  ttlMs: 60000,
});
presence.on("join", (c: PresenceClient) => console.log(c.id, c.identity, c.joinedAt));
presence.on("status", (s: StatusChange) => {
  const status: PresenceStatus = s.status;
  console.log(status);
});
const everyone: PresenceClient[] = presence.clients();
console.log(everyone.length, PING.length, CloseCodes);
// @ts-expect-error: the options are required
connect("wss://presence.example.com/x");
// @ts-expect-error: no such event
presence.on("no such event", () => {});
// @ts-expect-error: an identity is a string
connect("wss://presence.example.com/x", { identity: 42 });
presence.close();
`,
  );
  const tsc = path.join(packageDir, "node_modules/typescript/bin/tsc");
  run(process.execPath, [tsc, "-p", packaged.app], packaged.app);
});
