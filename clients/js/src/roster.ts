/**
 * The roster a client keeps: connections by id in join order, and the
 * count of connections per identity that turns them into members. Pure:
 * each change returns the events it makes, and the connection emits them.
 *
 * Client objects are frozen (their state too) and kept as they are until
 * they change, so a UI can compare them by reference.
 */

import type { LeaveReason, PresenceClient, PresenceMember, PresenceState } from "./types.js";

/** One thing that changed, in the order it must be told. */
export type RosterEvent =
  | { kind: "join"; client: PresenceClient }
  | { kind: "leave"; client: PresenceClient; reason: LeaveReason | undefined }
  | { kind: "update"; client: PresenceClient; previous: PresenceClient }
  | { kind: "memberjoin"; member: PresenceMember }
  | { kind: "memberleave"; member: PresenceMember; reason: LeaveReason | undefined };

/** The roster of one space as this client sees it. */
export class Roster {
  private byId = new Map<string, PresenceClient>();
  private perIdentity = new Map<string, number>();
  private selfId: string | undefined;

  /** This connection's id in the roster, once welcomed. */
  get self(): string | undefined {
    return this.selfId;
  }

  /** Whether a welcome has filled it. */
  get synced(): boolean {
    return this.selfId !== undefined;
  }

  /**
   * A welcome replaces the roster. On the first one nothing is told (the
   * `sync` says it all); after a reconnect the differences are told as
   * leaves (reason unknown), joins and updates.
   */
  welcome(selfId: string, clients: PresenceClient[]): RosterEvent[] {
    const catchUp = this.synced;
    const previous = this.byId;
    const fresh = new Map(clients.map((c) => [c.id, c]));
    const events: RosterEvent[] = [];
    this.selfId = selfId;
    if (!catchUp) {
      this.byId = fresh;
      this.perIdentity = new Map();
      for (const c of fresh.values()) this.count(c.identity, 1);
      return events;
    }
    for (const [id, c] of previous) {
      if (!fresh.has(id)) events.push(...this.leave(c, undefined));
    }
    // Rebuild in the welcome's order, telling what is new or changed.
    const kept = this.byId;
    this.byId = new Map();
    for (const c of fresh.values()) {
      const before = kept.get(c.id);
      this.byId.set(c.id, c);
      if (!before) {
        this.count(c.identity, 1);
        events.push({ kind: "join", client: c });
        if (this.perIdentity.get(c.identity) === 1) events.push({ kind: "memberjoin", member: this.member(c.identity) });
      } else if (c.id !== selfId && !sameClient(before, c)) {
        events.push({ kind: "update", client: c, previous: before });
      }
    }
    return events;
  }

  /** Someone joined (ignored before the welcome, or when already there). */
  join(client: PresenceClient): RosterEvent[] {
    if (!this.synced || this.byId.has(client.id)) return [];
    this.byId.set(client.id, client);
    const events: RosterEvent[] = [{ kind: "join", client }];
    if (this.count(client.identity, 1) === 1) events.push({ kind: "memberjoin", member: this.member(client.identity) });
    return events;
  }

  /**
   * Someone left: the client as the server last described it (with its
   * latest state), or the roster's copy when the message was bare.
   */
  leave(client: PresenceClient, reason: LeaveReason | undefined): RosterEvent[] {
    if (!this.synced) return [];
    const known = this.byId.get(client.id);
    if (!known) return [];
    const last = known.identity === client.identity ? client : known;
    const member = this.member(known.identity);
    this.byId.delete(known.id);
    const events: RosterEvent[] = [{ kind: "leave", client: last, reason }];
    if (this.count(known.identity, -1) === 0) {
      member.clients = member.clients.map((c) => (c.id === last.id ? last : c));
      events.push({ kind: "memberleave", member, reason });
    }
    return events;
  }

  /** Someone's state or info changed (ignored for a client this roster does not hold). */
  update(client: PresenceClient): RosterEvent[] {
    const previous = this.byId.get(client.id);
    if (!previous || previous.identity !== client.identity) return [];
    this.byId.set(client.id, client);
    return [{ kind: "update", client, previous }];
  }

  /** This connection's own entry follows its state as set, at once. */
  setSelfState(state: PresenceState | null): void {
    const id = this.selfId;
    const me = id === undefined ? undefined : this.byId.get(id);
    if (!me) return;
    this.byId.set(me.id, withState(me, state));
  }

  /** Everyone, in join order. */
  clients(): PresenceClient[] {
    return [...this.byId.values()];
  }

  /** Everyone but this connection. */
  others(): PresenceClient[] {
    return this.clients().filter((c) => c.id !== this.selfId);
  }

  /** Connections grouped by identity, in order of each identity's first connection. */
  members(): PresenceMember[] {
    const groups = new Map<string, PresenceMember>();
    for (const c of this.byId.values()) {
      let m = groups.get(c.identity);
      if (!m) {
        m = { identity: c.identity, clients: [], self: false };
        groups.set(c.identity, m);
      }
      m.clients.push(c);
      if (c.id === this.selfId) m.self = true;
    }
    return [...groups.values()];
  }

  private member(identity: string): PresenceMember {
    const clients = this.clients().filter((c) => c.identity === identity);
    return { identity, clients, self: clients.some((c) => c.id === this.selfId) };
  }

  private count(identity: string, delta: number): number {
    const n = (this.perIdentity.get(identity) ?? 0) + delta;
    if (n > 0) this.perIdentity.set(identity, n);
    else this.perIdentity.delete(identity);
    return n;
  }
}

/** The same client with another state (or none), frozen. */
export function withState(client: PresenceClient, state: PresenceState | null): PresenceClient {
  const next: PresenceClient = { id: client.id, identity: client.identity, joinedAt: client.joinedAt };
  if (state !== null) next.state = state;
  if (client.info !== undefined) next.info = client.info;
  if (client.username !== undefined) next.username = client.username;
  return Object.freeze(next);
}

/** Whether two descriptions of one client say the same (state and info as JSON values). */
export function sameClient(a: PresenceClient, b: PresenceClient): boolean {
  return (
    a.id === b.id &&
    a.identity === b.identity &&
    a.joinedAt === b.joinedAt &&
    a.username === b.username &&
    jsonEqual(a.state, b.state) &&
    jsonEqual(a.info, b.info)
  );
}

/** Deep equality of JSON values (object key order does not matter). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== "object" || typeof b !== "object") return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((v, i) => jsonEqual(v, bb[i]));
  }
  const ka = Object.keys(a);
  const ob = b as Record<string, unknown>;
  if (ka.length !== Object.keys(ob).length) return false;
  const oa = a as Record<string, unknown>;
  return ka.every((k) => Object.prototype.hasOwnProperty.call(ob, k) && jsonEqual(oa[k], ob[k]));
}
