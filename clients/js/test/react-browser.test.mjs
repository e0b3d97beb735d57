// The React hooks in headless Chromium (Debian's `chromium`, driven by
// playwright-core): a small React app (test/react-app, built by esbuild as
// a development build, so strict mode mounts it twice) against the
// packaged client installed with React into a scratch project, in two
// isolated browser contexts ("two browsers") in one space. It checks strict
// mode leaves one socket, state (cursors, status), members (a second tab),
// broadcast, and reconnection after the server restarts. Saves
// test-artifacts/react-hooks.png and react-hooks-after-restart.png.
// Run: node --experimental-websocket --test test/react-browser.test.mjs (after `cargo build -p longhouse-native`).

import assert from "node:assert/strict";
import { copyFileSync, createReadStream, existsSync, mkdirSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, it } from "node:test";

import { build } from "esbuild";
import { chromium } from "playwright-core";

import { freePort, root, startServer, trueRoster, uniqueSpace, unwind } from "./harness.mjs";
import { installPackaged } from "./packaged.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const artifacts = path.join(root, "test-artifacts");
const stack = [];
let site; // the static server of the built app
let browser;

/** Serves `dir`'s files (index.html, app.js) on a loopback port. */
async function serveStatic(dir) {
  const types = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8" };
  const server = http.createServer((req, res) => {
    const name = path.basename(new URL(req.url, "http://x").pathname) || "index.html";
    const file = path.join(dir, name);
    if (!types[path.extname(name)] || !existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "Content-Type": types[path.extname(name)], "Cache-Control": "no-store" });
    createReadStream(file).pipe(res);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  stack.push(() => new Promise((resolve) => server.close(resolve)));
  return `http://127.0.0.1:${server.address().port}`;
}

before(async () => {
  if (!existsSync(executablePath)) return;
  const packaged = installPackaged({ react: true });
  stack.push(() => packaged.cleanup());
  // The app lives in the scratch project, so that its imports resolve to
  // the installed package and React, as in a user's project.
  copyFileSync(path.join(here, "react-app/app.jsx"), path.join(packaged.app, "app.jsx"));
  const out = path.join(packaged.dir, "site");
  mkdirSync(out);
  copyFileSync(path.join(here, "react-app/index.html"), path.join(out, "index.html"));
  await build({
    absWorkingDir: packaged.app,
    entryPoints: ["app.jsx"],
    outfile: path.join(out, "app.js"),
    bundle: true,
    format: "esm",
    jsx: "automatic",
    define: { "process.env.NODE_ENV": '"development"' },
    logLevel: "warning",
  });
  site = await serveStatic(out);
  browser = await chromium.launch({
    executablePath,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking"],
  });
  stack.push(() => browser.close());
});

after(() => unwind(stack));

/** A browser context of its own (its own storage, as another browser), counting the page's live sockets. */
async function newBrowser() {
  const context = await browser.newContext({ viewport: { width: 900, height: 560 } });
  stack.push(() => context.close());
  await context.addInitScript(() => {
    const Native = window.WebSocket;
    window.__live = 0;
    window.__opened = 0;
    window.WebSocket = class extends Native {
      constructor(url) {
        super(url);
        window.__opened += 1;
        let open = false;
        this.addEventListener("open", () => {
          open = true;
          window.__live += 1;
        });
        this.addEventListener("close", () => {
          if (open) window.__live -= 1;
        });
      }
    };
  });
  return context;
}

async function openApp(context, server, space, name, colour) {
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e));
  const q = new URLSearchParams({ server: server.ws, space, name, colour });
  await page.goto(`${site}/index.html?${q}`);
  await page.locator(`#avatars li.me[data-identity="${name}"]`).waitFor({ timeout: 10_000 });
  return { page, errors };
}

const avatar = (page, name) => page.locator(`#avatars li[data-identity="${name}"]`);

it(
  "a React app on the hooks: strict mode leaves one socket; state, members, broadcast; back after the server restarts",
  { skip: !existsSync(executablePath) && `${executablePath} is not installed (scripts/setup.sh installs it)` },
  async () => {
    const port = await freePort();
    let server = await startServer(stack, { port, label: "react" });
    const space = uniqueSpace("react");
    const adaBrowser = await newBrowser();
    const graceBrowser = await newBrowser();
    const ada = await openApp(adaBrowser, server, space, "Ada Lovelace", "#c2410c");
    const grace = await openApp(graceBrowser, server, space, "Grace Hopper", "#1d4ed8");
    await avatar(ada.page, "Grace Hopper").waitFor({ timeout: 5_000 });
    await avatar(grace.page, "Ada Lovelace").waitFor({ timeout: 5_000 });

    // Strict mode mounted the app twice (two connects), and one socket is
    // left: the page's, and the server's roster.
    for (const { page } of [ada, grace]) {
      assert.equal(await page.evaluate(() => window.__connects), 2, "a development build in strict mode");
      await page.waitForFunction(() => window.__live === 1, null, { timeout: 5_000 });
      assert.ok((await page.evaluate(() => window.__opened)) <= 2);
      assert.equal(await page.locator("#status").textContent(), "open");
    }
    assert.equal((await trueRoster(stack, server.ws, space)).length, 2, "one connection each");

    // Ada's mouse over her board: Grace's app draws her cursor there.
    const inside = (page) =>
      page.locator("#board").evaluate((b) => {
        const r = b.getBoundingClientRect();
        return { x: r.left + b.clientLeft, y: r.top + b.clientTop, width: b.clientWidth, height: b.clientHeight };
      });
    const adaBoard = await inside(ada.page);
    await ada.page.mouse.move(adaBoard.x + 20, adaBoard.y + 20);
    await ada.page.mouse.move(adaBoard.x + 250, adaBoard.y + 100, { steps: 20 });
    const graceBoard = await inside(grace.page);
    const expected = {
      x: graceBoard.x + (250 / adaBoard.width) * graceBoard.width,
      y: graceBoard.y + (100 / adaBoard.height) * graceBoard.height,
    };
    const cursorAt = (page, { x, y }) =>
      page.waitForFunction(
        ({ x, y }) => {
          const el = document.querySelector('#board .cursor[data-identity="Ada Lovelace"]');
          if (!el) return false;
          const r = el.getBoundingClientRect();
          return Math.abs(r.left - x) <= 1.5 && Math.abs(r.top - y) <= 1.5;
        },
        { x, y },
        { timeout: 5_000 },
      );
    await cursorAt(grace.page, expected);
    assert.equal(await grace.page.locator('#board .cursor[data-identity="Ada Lovelace"] span').textContent(), "Ada Lovelace");
    assert.equal(await ada.page.locator("#board .cursor").count(), 0, "her own cursor is not drawn as another's");

    // useMyState's setter: Ada is typing.
    await ada.page.selectOption("#picker", "typing");
    await avatar(grace.page, "Ada Lovelace").and(grace.page.locator('[data-status="typing"]')).waitFor({ timeout: 5_000 });

    // useBroadcast: Grace gets Ada's wave, Ada does not get her own.
    await ada.page.click("#wave");
    await grace.page.locator("#waves li", { hasText: "Ada Lovelace waved" }).waitFor({ timeout: 5_000 });
    await grace.page.click("#wave");
    await ada.page.locator("#waves li", { hasText: "Grace Hopper waved" }).waitFor({ timeout: 5_000 });
    assert.equal(await ada.page.locator("#waves li").count(), 1, "no echo");
    // Clicking took Ada's mouse off the board, so her cursor went (no
    // ghost); she comes back to where it was.
    await grace.page.locator('#board .cursor[data-identity="Ada Lovelace"]').waitFor({ state: "detached", timeout: 5_000 });
    await ada.page.mouse.move(adaBoard.x + 250, adaBoard.y + 100, { steps: 5 });
    await cursorAt(grace.page, expected);

    // useMembers: Ada on a second device is one avatar with two
    // connections. (Another context, not another tab of hers: a tab hidden
    // behind a new one gets a pointerleave, which clears her cursor.)
    const adaLaptop = await newBrowser();
    const adaTab = await openApp(adaLaptop, server, space, "Ada Lovelace", "#c2410c");
    await grace.page.locator('#avatars li[data-identity="Ada Lovelace"][data-tabs="2"]').waitFor({ timeout: 5_000 });
    assert.equal(await grace.page.locator("#avatars li").count(), 2);
    mkdirSync(artifacts, { recursive: true });
    await grace.page.screenshot({ path: path.join(artifacts, "react-hooks.png"), fullPage: true });

    // The server restarts (SIGTERM: 1012, then a new process on the same
    // port; in memory, the roster went with the old one). Every app comes
    // back by itself, with its state: Ada typing, her cursor where it was.
    const stopped = await server.stop("SIGTERM");
    assert.equal(stopped.code, 0);
    server = await startServer(stack, { port, label: "react-restarted" });
    for (const { page } of [ada, grace, adaTab]) {
      await page.waitForFunction(() => document.querySelector("#status")?.textContent === "open" && window.__statuses.includes("reconnecting"), null, {
        timeout: 10_000,
      });
    }
    await grace.page.locator('#avatars li[data-identity="Ada Lovelace"][data-tabs="2"][data-status="typing"]').waitFor({ timeout: 5_000 });
    await cursorAt(grace.page, expected);
    await avatar(ada.page, "Grace Hopper").waitFor({ timeout: 5_000 });
    assert.equal((await trueRoster(stack, server.ws, space)).length, 3, "all three back on the new server");
    for (const { page } of [ada, grace, adaTab]) {
      await page.waitForFunction(() => window.__live === 1, null, { timeout: 5_000 });
    }
    await grace.page.screenshot({ path: path.join(artifacts, "react-hooks-after-restart.png"), fullPage: true });
    assert.deepEqual([...ada.errors, ...grace.errors, ...adaTab.errors], [], "no script errors on the pages");
  },
);
