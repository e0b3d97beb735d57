// The demo page in headless Chromium (Debian's `chromium`, driven by
// playwright-core): two pages in one space see each other, and closing one
// shows the leave in the other. Saves test-artifacts/demo.png.
// Run: node --test test/browser.test.mjs (after `cargo build -p longhouse-native`).

import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, it } from "node:test";

import { chromium } from "playwright-core";

import { root, startServer, uniqueSpace, unwind } from "./harness.mjs";

const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const artifacts = path.join(root, "test-artifacts");
const stack = [];
let server;
let context;

before(async () => {
  if (!existsSync(executablePath)) return;
  server = await startServer(stack, { label: "browser" });
  const userDataDir = mkdtempSync(path.join(os.tmpdir(), "longhouse-chromium-"));
  stack.push(() => rmSync(userDataDir, { recursive: true, force: true }));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 1100, height: 640 },
  });
  stack.push(() => context.close());
});

after(async () => {
  await unwind(stack);
});

const person = (page, name) => page.locator(`#people li[data-identity="${name}"]`);

it(
  "two pages in one space see each other; closing one shows the leave in the other",
  { skip: !existsSync(executablePath) && `${executablePath} is not installed (scripts/setup.sh installs it)` },
  async () => {
    const space = uniqueSpace("browser");
    const open = async (name) => {
      const page = await context.newPage();
      const errors = [];
      page.on("pageerror", (e) => errors.push(e));
      const query = new URLSearchParams({ space, name, join: "1" });
      await page.goto(`${server.http}/?${query}`);
      await person(page, name).waitFor({ timeout: 10_000 });
      return { page, errors };
    };
    const ada = await open("Ada Lovelace");
    const grace = await open("Grace Hopper");

    await person(ada.page, "Grace Hopper").waitFor({ timeout: 5_000 });
    await person(grace.page, "Ada Lovelace").waitFor({ timeout: 5_000 });
    assert.equal(await ada.page.locator("#people li").count(), 2);
    assert.equal(await person(ada.page, "Grace Hopper").locator(".avatar").textContent(), "GH");
    assert.match(await person(ada.page, "Grace Hopper").locator(".since").textContent(), /^since /);
    await ada.page.locator("#log li.join", { hasText: "Grace Hopper joined" }).waitFor({ timeout: 5_000 });
    assert.match(await ada.page.locator("#status").textContent(), /connected/);

    mkdirSync(artifacts, { recursive: true });
    await ada.page.screenshot({ path: path.join(artifacts, "demo.png"), fullPage: true });

    // Closing the tab sends a close frame: the leave shows well within the
    // lease (60 s), so it was not an expiry.
    const closedAt = Date.now();
    await grace.page.close({ runBeforeUnload: true });
    await ada.page.locator("#log li.leave", { hasText: "Grace Hopper left" }).waitFor({ timeout: 5_000 });
    await person(ada.page, "Grace Hopper").waitFor({ state: "detached", timeout: 1_000 });
    assert.ok(Date.now() - closedAt < 5_000);
    assert.equal(await ada.page.locator("#people li").count(), 1);
    await ada.page.screenshot({ path: path.join(artifacts, "demo-after-leave.png"), fullPage: true });
    assert.deepEqual([...ada.errors, ...grace.errors], [], "no script errors on the pages");
  },
);
