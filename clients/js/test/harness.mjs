// Test support: real native servers and Redis processes started per test,
// a TCP proxy that can drop connections or switch its upstream, and waits
// on conditions with deadlines (never a fixed sleep standing in for one).

import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, createWriteStream } from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
/** The workspace root. */
export const root = path.resolve(here, "../../..");
/** The server binary: LONGHOUSE_BIN or target/debug/longhouse. */
export const bin = process.env.LONGHOUSE_BIN ?? path.join(root, "target/debug/longhouse");
const logDir = path.join(root, "target/js-test-logs");

/** A port nothing listens on right now. */
export async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Resolves when `check()` returns a truthy value, polling; rejects after `ms`. */
export async function waitFor(check, what, ms = 5000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Resolves with the listener's arguments at the next `event` matching `filter`. */
export function nextEvent(presence, event, filter = () => true, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timed out after ${ms} ms waiting for a ${event} event`));
    }, ms);
    const off = presence.on(event, (arg) => {
      if (!filter(arg)) return;
      clearTimeout(timer);
      off();
      resolve(arg);
    });
  });
}

/** Collects every event of `presence` into arrays, by name. */
export function record(presence) {
  const seen = { sync: [], join: [], leave: [], expired: [], status: [], error: [] };
  for (const name of Object.keys(seen)) presence.on(name, (arg) => seen[name].push(arg));
  return seen;
}

async function healthy(port) {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(1000) });
    return r.status === 200 && (await r.text()) === "ok";
  } catch {
    return false;
  }
}

/**
 * A native server on a free loopback port (or `port`), healthy when this
 * resolves. `env` adds to HOST, PORT and RUST_LOG. Registered with `stack`
 * so the test's cleanup stops it.
 */
export async function startServer(stack, { env = {}, port, label = "server" } = {}) {
  if (!existsSync(bin)) {
    throw new Error(`server binary ${bin} not found: build it with \`cargo build -p longhouse-native\` or set LONGHOUSE_BIN`);
  }
  port ??= await freePort();
  mkdirSync(logDir, { recursive: true });
  const logPath = path.join(logDir, `${label}-${port}.log`);
  const log = createWriteStream(logPath, { flags: "a" });
  const childEnv = { ...process.env, HOST: "127.0.0.1", PORT: String(port), RUST_LOG: "info", ...env };
  if (!("REDIS_URL" in env)) {
    delete childEnv.REDIS_URL;
    delete childEnv.REDISCLOUD_URL;
  }
  const child = spawn(bin, [], { env: childEnv, stdio: ["ignore", "pipe", "pipe"] });
  child.stdout.pipe(log, { end: false });
  child.stderr.pipe(log, { end: false });
  const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  const server = {
    port,
    logPath,
    http: `http://127.0.0.1:${port}`,
    ws: `ws://127.0.0.1:${port}`,
    exited,
    running: true,
    /** Sends `signal` and waits for the exit. */
    async stop(signal = "SIGTERM") {
      if (server.running) child.kill(signal);
      const result = await Promise.race([
        exited,
        new Promise((r) => setTimeout(() => r(null), 10_000)),
      ]);
      if (result === null) {
        child.kill("SIGKILL");
        await exited;
      }
      return result;
    },
  };
  exited.then(() => {
    server.running = false;
  });
  stack.push(() => server.stop("SIGKILL"));
  await waitFor(
    async () => {
      if (!server.running) throw new Error(`server exited at start; log ${logPath}`);
      return healthy(port);
    },
    `GET /health on port ${port}`,
    20_000,
  );
  return server;
}

/** Whether `redis-server` can be run here. */
export const hasRedis = spawnSync("redis-server", ["--version"]).status === 0;

/** A throwaway redis-server on a free loopback port; resolves with its URL. */
export async function startRedis(stack) {
  const port = await freePort();
  const child = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    { stdio: "ignore" },
  );
  const exited = new Promise((resolve) => child.on("exit", resolve));
  stack.push(async () => {
    child.kill("SIGKILL");
    await exited;
  });
  await waitFor(
    () =>
      new Promise((resolve) => {
        const s = net.connect(port, "127.0.0.1");
        s.once("connect", () => {
          s.write("PING\r\n");
        });
        s.once("data", (d) => {
          s.destroy();
          resolve(d.toString().startsWith("+PONG"));
        });
        s.once("error", () => resolve(false));
      }),
    `redis-server on port ${port}`,
    10_000,
  );
  return `redis://127.0.0.1:${port}`;
}

/**
 * A TCP proxy on a free port to `upstream` (a port, changeable later).
 * `drop()` cuts every connection without a WebSocket close frame.
 */
export async function startProxy(stack, upstream) {
  const sockets = new Set();
  const proxy = {
    upstream,
    port: 0,
    get ws() {
      return `ws://127.0.0.1:${proxy.port}`;
    },
    /** Destroys every proxied connection (a network drop, as seen by both ends). */
    drop() {
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
  };
  const server = net.createServer((client) => {
    const upstreamSocket = net.connect(proxy.upstream, "127.0.0.1");
    sockets.add(client);
    sockets.add(upstreamSocket);
    const end = () => {
      client.destroy();
      upstreamSocket.destroy();
      sockets.delete(client);
      sockets.delete(upstreamSocket);
    };
    client.on("error", end).on("close", end);
    upstreamSocket.on("error", end).on("close", end);
    client.pipe(upstreamSocket);
    upstreamSocket.pipe(client);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  proxy.port = server.address().port;
  stack.push(async () => {
    proxy.drop();
    await new Promise((resolve) => server.close(resolve));
  });
  return proxy;
}

/**
 * Joins with a plain WebSocket and resolves with `{ socket, welcome,
 * messages, closed }` once the welcome (or an error) arrives.
 */
export function rawJoin(stack, url) {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url);
    const messages = [];
    let settled = false;
    const closed = new Promise((r) => socket.addEventListener("close", (e) => r(e.code)));
    stack.push(() => {
      if (socket.readyState < 2) socket.close();
      return closed;
    });
    const timer = setTimeout(() => reject(new Error(`no welcome from ${url}`)), 5000);
    socket.addEventListener("message", (e) => {
      const msg = JSON.parse(e.data);
      messages.push(msg);
      if (!settled && (Array.isArray(msg.clients) || "error" in msg)) {
        settled = true;
        clearTimeout(timer);
        resolve({ socket, welcome: msg, messages, closed });
      }
    });
    socket.addEventListener("close", () => {
      if (!settled) {
        clearTimeout(timer);
        reject(new Error(`closed before the welcome: ${url}`));
      }
    });
  });
}

/** The space's true roster: ids of a fresh observer's welcome, itself left out. */
export async function trueRoster(stack, wsBase, space) {
  const local = [];
  const { socket, welcome, closed } = await rawJoin(
    local,
    `${wsBase}/${encodeURIComponent(space)}?identity=observer`,
  );
  socket.close();
  await closed;
  return welcome.clients.filter((c) => c.id !== welcome.id).map((c) => c.id).sort();
}

/** Runs every registered cleanup, newest first. */
export async function unwind(stack) {
  while (stack.length) {
    const f = stack.pop();
    try {
      await f();
    } catch {
      // keep going: everything else must stop too
    }
  }
}

/** A space name unique to this run. */
export function uniqueSpace(prefix) {
  return `${prefix}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}
