// The demo page in headless Chromium (Debian's `chromium`, driven by
// playwright-core): two pages in one space see each other, and closing one
// shows the leave in the other; the mouse moved over one page's board is
// drawn as that person's cursor, at that position, on the other's; the
// status picker and a second tab show on the avatars, grouped by member.
// Saves test-artifacts/demo.png and demo-cursors.png.
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

/** Opens the demo page joined to `space` as `name`; resolves once it sees itself. */
async function openDemo(space, name, extra = {}) {
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e));
  const query = new URLSearchParams({ space, name, join: "1", ...extra });
  await page.goto(`${server.http}/?${query}`);
  await person(page, name).waitFor({ timeout: 10_000 });
  return { page, errors };
}

it(
  "two pages in one space see each other; closing one shows the leave in the other",
  { skip: !existsSync(executablePath) && `${executablePath} is not installed (scripts/setup.sh installs it)` },
  async () => {
    const space = uniqueSpace("browser");
    const open = (name) => openDemo(space, name);
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

it(
  "the mouse moved over one page's board is drawn as that person's cursor, at that position, on the other's",
  { skip: !existsSync(executablePath) && `${executablePath} is not installed (scripts/setup.sh installs it)` },
  async () => {
    const space = uniqueSpace("cursors");
    const ada = await openDemo(space, "Ada Lovelace", { colour: "#c2410c" });
    const grace = await openDemo(space, "Grace Hopper", { colour: "#1d4ed8" });
    await person(ada.page, "Grace Hopper").waitFor({ timeout: 5_000 });
    await person(grace.page, "Ada Lovelace").waitFor({ timeout: 5_000 });

    // A second tab of Ada: still one avatar for her, with two tabs.
    const adaTab = await openDemo(space, "Ada Lovelace", { colour: "#c2410c" });
    await person(grace.page, "Ada Lovelace").locator(".tabs", { hasText: "2 tabs" }).waitFor({ timeout: 5_000 });
    assert.equal(await grace.page.locator("#people li").count(), 2, "two members for three connections");
    // Ada was there before Grace came, and a second tab is no new arrival.
    assert.equal(await grace.page.locator("#log li.join", { hasText: "Ada Lovelace joined" }).count(), 0);
    assert.equal(await ada.page.locator("#log li.join", { hasText: "Grace Hopper joined" }).count(), 1);

    // Ada's first tab in front again; her mouse crosses its board and stops
    // 300 px right of and 120 px below its inside corner.
    await ada.page.bringToFront();
    const inside = (page) =>
      page.locator("#board").evaluate((b) => {
        const r = b.getBoundingClientRect();
        return { x: r.left + b.clientLeft, y: r.top + b.clientTop, width: b.clientWidth, height: b.clientHeight };
      });
    const adaBoard = await inside(ada.page);
    await ada.page.mouse.move(adaBoard.x + 40, adaBoard.y + 30);
    await ada.page.mouse.move(adaBoard.x + 300, adaBoard.y + 120, { steps: 25 });

    // Grace's page draws Ada's cursor (her name, her colour) there.
    const graceBoard = await inside(grace.page);
    const cursor = grace.page.locator('#board .cursor[data-identity="Ada Lovelace"]');
    await cursor.waitFor({ timeout: 5_000 });
    const expected = {
      x: graceBoard.x + (300 / adaBoard.width) * graceBoard.width,
      y: graceBoard.y + (120 / adaBoard.height) * graceBoard.height,
    };
    await grace.page.waitForFunction(
      ({ x, y }) => {
        const el = document.querySelector('#board .cursor[data-identity="Ada Lovelace"]');
        if (!el) return false;
        const r = el.getBoundingClientRect();
        return Math.abs(r.left - x) <= 1.5 && Math.abs(r.top - y) <= 1.5;
      },
      expected,
      { timeout: 5_000 },
    );
    const box = await cursor.boundingBox();
    assert.ok(Math.abs(box.x - expected.x) <= 1.5 && Math.abs(box.y - expected.y) <= 1.5, `${JSON.stringify(box)}`);
    assert.equal(await cursor.locator(".label").textContent(), "Ada Lovelace");
    assert.equal(await cursor.locator("path").getAttribute("fill"), "#c2410c");
    assert.equal(await grace.page.locator("#board .cursor").count(), 1, "only the other's cursor, not her own");

    // Ada picks "typing" in that tab: Grace's avatar of Ada says so (her
    // other tab is merely active).
    await ada.page.selectOption("#presence", "typing");
    await person(grace.page, "Ada Lovelace").and(grace.page.locator('[data-status="typing"]')).waitFor({ timeout: 5_000 });
    assert.equal(await person(grace.page, "Ada Lovelace").locator(".doing").textContent(), "typing");

    mkdirSync(artifacts, { recursive: true });
    await grace.page.screenshot({ path: path.join(artifacts, "demo-cursors.png"), fullPage: true });

    // Ada leaves the board: her cursor goes; the tabs closing leave no ghost.
    await ada.page.mouse.move(adaBoard.x + 300, adaBoard.y - 60);
    await cursor.waitFor({ state: "detached", timeout: 5_000 });
    await adaTab.page.close({ runBeforeUnload: true });
    await person(grace.page, "Ada Lovelace").locator(".tabs").waitFor({ state: "detached", timeout: 5_000 });
    await ada.page.close({ runBeforeUnload: true });
    await person(grace.page, "Ada Lovelace").waitFor({ state: "detached", timeout: 5_000 });
    await grace.page.locator("#log li.leave", { hasText: "Ada Lovelace left" }).waitFor({ timeout: 5_000 });
    await grace.page.close();
    assert.deepEqual([...ada.errors, ...grace.errors, ...adaTab.errors], [], "no script errors on the pages");
  },
);
