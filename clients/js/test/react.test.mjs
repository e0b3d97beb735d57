// The React hooks under server rendering (react-dom/server's
// renderToString), from the packaged client installed with React into a
// scratch project: a server render opens no socket and shows the
// connection as it will start (nobody yet, connecting, the initial state).
// The hooks in a browser are react-browser.test.mjs.
// Run: node --experimental-websocket --test test/react.test.mjs

import assert from "node:assert/strict";
import { after, it } from "node:test";

import { installPackaged } from "./packaged.mjs";

const packaged = installPackaged({ react: true });
after(() => packaged.cleanup());
const { createElement: h } = await import(packaged.resolve("react"));
const { renderToString } = await import(packaged.resolve("react-dom/server"));
const { PresenceProvider, useBroadcast, useMembers, useMyState, useOthers, usePresence, useStatus } = await import(
  packaged.resolve("@longhouse/client/react")
);

function Status() {
  return h("p", { id: "status" }, useStatus());
}
function Me() {
  const [me] = useMyState();
  return h("p", { id: "me" }, JSON.stringify(me));
}
function Counts() {
  const others = useOthers();
  const members = useMembers();
  useBroadcast(() => {});
  return h("p", { id: "counts" }, `${others.length} others, ${members.length} members`);
}

it("a server render opens no socket and shows nobody, connecting and the initial state", async () => {
  const opened = [];
  const connects = [];
  const savedWebSocket = globalThis.WebSocket;
  globalThis.WebSocket = class extends savedWebSocket {
    constructor(url) {
      opened.push(url);
      super(url);
    }
  };
  try {
    function App() {
      const presence = usePresence(
        "ws://127.0.0.1:9/space",
        { identity: "ann", state: { name: "Ann", colour: "#123456" } },
        (url, options) => {
          connects.push(url);
          throw new Error(`connect(${url}, ${JSON.stringify(options)}) during a server render`);
        },
      );
      return h(PresenceProvider, { value: presence }, h(Status), h(Me), h(Counts));
    }
    const html = renderToString(h(App));
    assert.match(html, /<p id="status">connecting<\/p>/);
    assert.match(html, /<p id="me">\{&quot;name&quot;:&quot;Ann&quot;,&quot;colour&quot;:&quot;#123456&quot;\}<\/p>/);
    assert.match(html, /<p id="counts">0 others, 0 members<\/p>/);
    // Whatever a render might have deferred has had its turn.
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(connects, [], "no connection was asked for");
    assert.deepEqual(opened, [], "no socket was opened");
  } finally {
    globalThis.WebSocket = savedWebSocket;
  }
});

it("a hook outside a provider, without a store, says what is missing", () => {
  assert.throws(() => renderToString(h(Status)), /PresenceProvider/);
});
