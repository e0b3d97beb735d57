// A small React app on the hooks (`@longhouse/client/react`): live avatars
// grouped by member, live cursors over a board, a status picker, a wave
// broadcast and the connection's status. Built by esbuild in the browser
// test; the query gives it the server, the space, a name and a colour.

import { StrictMode, useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import { connect } from "@longhouse/client";
import {
  PresenceProvider,
  useBroadcast,
  useMembers,
  useMyState,
  useOthers,
  usePresence,
  useStatus,
} from "@longhouse/client/react";

const q = new URLSearchParams(location.search);
// What the test reads: how often the hook connected (strict mode mounts twice).
window.__connects = 0;
const countingConnect = (url, options) => {
  window.__connects += 1;
  return connect(url, options);
};

function App() {
  const name = q.get("name");
  const presence = usePresence(
    `${q.get("server")}/${encodeURIComponent(q.get("space"))}`,
    { identity: name, state: { name, colour: q.get("colour"), status: "active" }, minBackoffMs: 50, maxBackoffMs: 250 },
    countingConnect,
  );
  return (
    <PresenceProvider value={presence}>
      <Status />
      <Picker />
      <Avatars />
      <Board />
      <Waves />
    </PresenceProvider>
  );
}

function Status() {
  const status = useStatus();
  useEffect(() => {
    window.__statuses = [...(window.__statuses ?? []), status];
  }, [status]);
  return <p id="status" data-status={status}>{status}</p>;
}

function Picker() {
  const [me, setMe] = useMyState();
  return (
    <select id="picker" value={me?.status ?? "active"} onChange={(e) => setMe((s) => ({ ...s, status: e.target.value }))}>
      {["active", "away", "typing"].map((s) => <option key={s}>{s}</option>)}
    </select>
  );
}

function Avatars() {
  const members = useMembers();
  return (
    <ul id="avatars">
      {members.map((m) => {
        const s = m.clients.find((c) => c.state)?.state ?? {};
        // Typing in one tab and idle in another is typing.
        const status = ["typing", "active", "away"].find((x) => m.clients.some((c) => c.state?.status === x));
        return (
          <li key={m.identity} data-identity={m.identity} data-status={status} data-tabs={m.clients.length} className={m.self ? "me" : ""}>
            <span className="avatar" style={{ background: s.colour }}>{(s.name ?? m.identity).slice(0, 1)}</span>
            {s.name ?? m.identity} · {status}{m.clients.length > 1 ? ` · ${m.clients.length} tabs` : ""}
          </li>
        );
      })}
    </ul>
  );
}

function Board() {
  const others = useOthers();
  const [, setMe] = useMyState();
  const move = (e) => {
    const b = e.currentTarget;
    const r = b.getBoundingClientRect();
    const x = (e.clientX - r.left - b.clientLeft) / b.clientWidth;
    const y = (e.clientY - r.top - b.clientTop) / b.clientHeight;
    setMe((s) => ({ ...s, cursor: { x, y } }));
  };
  return (
    <div id="board" onPointerMove={move} onPointerLeave={() => setMe((s) => ({ ...s, cursor: null }))}>
      {others
        .filter((c) => c.state?.cursor)
        .map((c) => (
          <div
            key={c.id}
            className="cursor"
            data-identity={c.identity}
            style={{ left: `${c.state.cursor.x * 100}%`, top: `${c.state.cursor.y * 100}%`, color: c.state.colour }}
          >
            ➤ <span>{c.state.name}</span>
          </div>
        ))}
    </div>
  );
}

function Waves() {
  const [waves, setWaves] = useState([]);
  const broadcast = useBroadcast((m) => setWaves((w) => [...w, m.client?.state?.name ?? "server"]));
  return (
    <div>
      <button id="wave" onClick={() => broadcast({ wave: true })}>wave</button>
      <ul id="waves">{waves.map((w, i) => <li key={i}>{w} waved</li>)}</ul>
    </div>
  );
}

createRoot(document.getElementById("root")).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
