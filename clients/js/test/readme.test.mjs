// The README's webhook signature checks, as printed there (the code blocks
// after `<!-- tested: webhook-node -->` and `<!-- tested: webhook-python
// -->`): a known answer of the server's signer, refusals (another secret,
// body or time, malformed headers), and a real webhook POSTed by a native
// server to a receiver on loopback, checked by both.
// Run: node --experimental-websocket --test test/readme.test.mjs

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { after, describe, it } from "node:test";

import { root, startServer, uniqueSpace, unwind, waitFor } from "./harness.mjs";

/** The code block that follows the marker `<!-- tested: NAME … -->` in the README. */
function snippet(name) {
  const readme = readFileSync(path.join(root, "README.md"), "utf8");
  const at = readme.indexOf(`<!-- tested: ${name} `);
  assert.ok(at >= 0, `README.md has no block marked ${name}`);
  const block = readme.slice(at).match(/```\w*\n([\s\S]*?)```/);
  assert.ok(block, `no code block after the ${name} marker`);
  return block[1];
}

const scratch = mkdtempSync(path.join(os.tmpdir(), "longhouse-readme-"));
const stack = [() => rmSync(scratch, { recursive: true, force: true })];
after(() => unwind(stack));

const nodeFile = path.join(scratch, "verify.mjs");
writeFileSync(nodeFile, snippet("webhook-node"));
const { verifyLonghouse } = await import(pathToFileURL(nodeFile).href);

const pythonSource = snippet("webhook-python");
const hasPython = spawnSync("python3", ["--version"]).status === 0;

/** Runs the README's Python check over `cases` ([secret, header, body, tolerance]), one verdict each. */
function verifyInPython(cases) {
  const driver = `${pythonSource}
import json, sys
cases = json.load(sys.stdin)
print(json.dumps([verify_longhouse(s, h, b.encode(), t) for s, h, b, t in cases]))
`;
  const r = spawnSync("python3", ["-c", driver], { input: JSON.stringify(cases), encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

// The core's known answer (crates/core/src/webhook/sign.rs).
const KNOWN = {
  secret: "whsec_test",
  header: "t=1700000000,v1=4f6f9b7a41398ad124e52a1320534f978e522923f3f2b2724e31d7a9dbf78a7f",
  body: '{"events":[]}',
};
const FOREVER = 1e12;

function sign(secret, t, body) {
  return `t=${t},v1=${createHmac("sha256", secret).update(`${t}.${body}`).digest("hex")}`;
}

/** [secret, header, body, tolerance, expected verdict, what]. */
function cases() {
  const now = Math.floor(Date.now() / 1000);
  const body = '{"events":[{"id":"e1","type":"member.joined"}]}';
  return [
    [KNOWN.secret, KNOWN.header, KNOWN.body, FOREVER, true, "the server signer's known answer"],
    [KNOWN.secret, KNOWN.header, KNOWN.body, 300, false, "the same, 2023's time, too old"],
    ["whsec_other", KNOWN.header, KNOWN.body, FOREVER, false, "another secret"],
    [KNOWN.secret, KNOWN.header, '{"events":[ ]}', FOREVER, false, "another body"],
    [KNOWN.secret, KNOWN.header.replace("t=1700000000", "t=1700000001"), KNOWN.body, FOREVER, false, "another time"],
    ["s", sign("s", now, body), body, 300, true, "fresh"],
    ["s", sign("s", now - 3600, body), body, 300, false, "an hour old"],
    ["s", sign("s", now, body).toUpperCase().replace("T=", "t=").replace("V1=", "v1="), body, 300, false, "upper-case hex"],
    ["s", `v1=${sign("s", now, body).split("v1=")[1]}`, body, 300, false, "no time"],
    ["s", `t=${now}`, body, 300, false, "no signature"],
    ["s", `t=${now},v1=abc`, body, 300, false, "a short signature"],
    ["s", "", body, 300, false, "an empty header"],
  ];
}

describe("the README's webhook checks", () => {
  it("Node: the known answer passes; another secret, body or time, or a malformed header fails", () => {
    for (const [secret, header, body, tolerance, expected, what] of cases()) {
      assert.equal(verifyLonghouse(secret, header, Buffer.from(body), tolerance), expected, what);
    }
    assert.equal(verifyLonghouse("s", undefined, Buffer.from("x")), false, "no header at all");
  });

  it("Python: the same verdicts", { skip: !hasPython && "python3 is not installed" }, () => {
    const all = cases();
    const verdicts = verifyInPython(all.map(([s, h, b, t]) => [s, h, b, t]));
    all.forEach(([, , , , expected, what], i) => assert.equal(verdicts[i], expected, what));
  });

  it("both accept a real webhook from the native server, and refuse it tampered", async () => {
    const secret = "whsec_readme_test";
    const received = [];
    const receiver = http.createServer((req, res) => {
      const chunks = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", () => {
        received.push({ header: req.headers["longhouse-signature"], body: Buffer.concat(chunks) });
        res.writeHead(204).end();
      });
    });
    await new Promise((resolve) => receiver.listen(0, "127.0.0.1", resolve));
    stack.push(() => new Promise((resolve) => receiver.close(resolve)));
    const server = await startServer(stack, {
      env: { WEBHOOK_URL: `http://127.0.0.1:${receiver.address().port}/hooks`, WEBHOOK_SECRET: secret },
      label: "readme-webhook",
    });
    const space = uniqueSpace("readme");
    const socket = new WebSocket(`${server.ws}/${encodeURIComponent(space)}?identity=ann`);
    const closed = new Promise((resolve) => socket.addEventListener("close", resolve));
    stack.push(() => {
      if (socket.readyState < 2) socket.close();
      return closed;
    });
    await waitFor(() => received.length > 0, "a webhook", 10_000);
    const [{ header, body }] = received;
    const events = JSON.parse(body.toString()).events;
    assert.ok(
      events.some((e) => e.type === "member.joined" && e.identity === "ann" && e.space === space),
      JSON.stringify(events),
    );
    assert.equal(verifyLonghouse(secret, header, body), true, "Node accepts it");
    assert.equal(verifyLonghouse(secret, header, Buffer.concat([body, Buffer.from(" ")])), false, "Node refuses it tampered");
    if (hasPython) {
      assert.deepEqual(
        verifyInPython([
          [secret, header, body.toString(), 300],
          [secret, header, `${body.toString()} `, 300],
        ]),
        [true, false],
        "Python accepts it, and refuses it tampered",
      );
    }
  });
});
