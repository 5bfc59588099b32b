// SPDX-License-Identifier: Apache-2.0
/**
 * streamhub browser client: live subscriptions to stream groups and items over the stream port, with
 * automatic reconnect and gap-free resume.
 *
 * One ES module, no dependencies, served by the engine at `/client.js` (types at `/client.d.ts`):
 *
 *     import { Client } from "http://localhost:3112/client.js";
 *     const client = new Client("ws://localhost:3112", { token });
 *     const sub = client.stream.subscribe("todos", "user_123", (event) => { ... });
 *     sub.unsubscribe();
 *
 * Why it looks the way it does:
 * - Every subscribe() is its own subscription on the wire. The answer to a join (`sync`, `unauthorized`, or an
 *   `error` when its snapshot could not be read) echoes its `subscriptionId`; engines that do not echo answer
 *   joins in order, so there the answer belongs to the oldest subscription of that address still waiting.
 *   Events are routed by (stream, group, item); overlapping subscriptions get a copy each, and the offset
 *   every event carries lets each subscription drop the copies it has already applied.
 * - Each subscription remembers the last position it applied (epoch from `sync`, offset from events) and sends
 *   it when it re-joins after a reconnect. The engine then replays exactly the missed events
 *   (`recovered: true`) or sends a fresh snapshot (`recovered: false`): never a silent gap.
 * - Callbacks get the wire fields plus the documentation's shape (`event.event.create.data`, `event.id`,
 *   `event.event_type`), so the documented examples run as written. A refused join arrives as an `unauthorized`
 *   event whose `reason` says why: `refused` by a join trigger, or `guard_failed` / `guard_timeout` /
 *   `guard_unavailable` when no join trigger could judge it (join guards fail closed; a later re-join, e.g.
 *   after a reconnect, may succeed).
 * - Presence (`{presence: true}`): the engine sends the subscription a presence `sync` (the members) after its
 *   `sync`, then `join` / `leave` as connections come and go. Each connection's sync REPLACES the member list, so
 *   after a reconnect nobody from before lingers; join/leave change it only when they change something (copies
 *   sent to overlapping subscriptions are dropped). `client.stream.presence()` asks once, without subscribing.
 */

const DEFAULT_RECONNECT = Object.freeze({ minDelay: 250, maxDelay: 10000, factor: 2, jitter: 0.5 });
const DEFAULT_REQUEST_TIMEOUT = 10000; // ms a presence() request waits for its answer, across reconnects
const GONE_MEMORY = 1000; // connections remembered as left while a truncated member list is kept
const OPEN = 1;
const SOCKET_SCHEMES = Object.freeze({ "http:": "ws:", "https:": "wss:" });

/** A connection to the stream port that keeps every subscription alive across reconnects. */
export class Client {
  /**
   * @param {string} [url] the stream port, e.g. "ws://localhost:3112" or "wss://streams.example.com"; http(s) URLs
   *   and paths relative to the page are turned into ws(s) ones (an https page gets wss). Default: the engine this
   *   module was loaded from.
   * @param {object} [options] token, tokenParam, protocols, reconnect, WebSocket (see ClientOptions in client.d.ts)
   */
  constructor(url, options = {}) {
    if (!options.WebSocket && typeof globalThis.WebSocket !== "function") {
      // Node.js before 22 has no global WebSocket: say what to do instead of failing every reconnect attempt.
      throw new TypeError(
        "streamhub: this runtime has no global WebSocket (Node.js before 22?): pass one, e.g. " +
          'new Client(url, { WebSocket: (await import("ws")).WebSocket })',
      );
    }
    this.url = socketBase(url);
    this.options = options;
    this.status = "connecting";
    this.stream = new Streams(this);
    this._backoff = { ...DEFAULT_RECONNECT, ...(options.reconnect || {}) };
    this._subs = new Map(); // subscriptionId -> Subscription, in join order
    this._requests = new Map(); // requestId -> pending presence() request, re-sent after a reconnect
    this._listeners = { status: new Set(), error: new Set() };
    this._socket = null;
    this._attempt = 0;
    this._timer = null;
    this._closed = false;
    this._nextId = 0;
    this._idPrefix = Math.random().toString(36).slice(2, 10);
    this._connect();
  }

  /**
   * Listen to "status" (connecting/open/reconnecting/closed, with close details) or "error" (error frames
   * from the engine, failed connection attempts, exceptions thrown by callbacks).
   * @returns {() => void} a function that removes the listener
   */
  on(name, listener) {
    const set = this._listeners[name];
    if (!set) throw new TypeError(`streamhub Client.on: unknown event "${name}" (use "status" or "error")`);
    set.add(listener);
    return () => set.delete(listener);
  }

  /** Close the connection for good: no reconnect, every subscription ends. */
  close() {
    this._closed = true;
    clearTimeout(this._timer);
    for (const sub of this._subs.values()) sub.active = false;
    this._subs.clear();
    for (const request of [...this._requests.values()]) {
      request.fail(Object.assign(new Error("streamhub presence: the client was closed before the answer came"),
        { code: "closed", reason: null }));
    }
    const socket = this._socket;
    this._socket = null;
    if (socket) socket.close(1000);
    this._setStatus("closed", {});
  }

  // Internals used by Streams and Subscription

  _newId() {
    this._nextId += 1;
    return `${this._idPrefix}-${this._nextId}`;
  }

  _add(sub) {
    if (this._closed) throw new Error("streamhub Client: subscribe after close()");
    this._subs.set(sub.id, sub);
    if (this._isOpen()) sub._join();
  }

  _remove(sub) {
    this._subs.delete(sub.id);
    if (this._isOpen()) this._send({ type: "leave", data: sub._address() });
  }

  _request(streamName, groupId, waitMs) {
    if (this._closed) return Promise.reject(new Error("streamhub presence: called after close()"));
    return new Promise((resolve, reject) => {
      const requestId = `${this._idPrefix}-r${++this._nextId}`;
      const frame = { type: "presence", data: { requestId, streamName, groupId } };
      const done = () => {
        clearTimeout(timer);
        this._requests.delete(requestId);
      };
      const request = {
        frame,
        resolve: (value) => { done(); resolve(value); },
        fail: (error) => { done(); reject(error); },
      };
      const timer = setTimeout(() => request.fail(Object.assign(new Error(
        `streamhub presence: no answer for ${streamName}/${groupId} within ${waitMs} ms (client ${this.status})`),
        { code: "timeout", reason: null })), waitMs);
      this._requests.set(requestId, request);
      this._send(frame); // not open yet: sent by _opened
    });
  }

  _send(message) {
    if (!this._isOpen()) return false;
    this._socket.send(JSON.stringify(message));
    return true;
  }

  _report(error) {
    if (this._listeners.error.size === 0) {
      console.error("streamhub:", error);
      return;
    }
    for (const listener of this._listeners.error) {
      try {
        listener(error);
      } catch (err) {
        console.error("streamhub: error listener threw", err);
      }
    }
  }

  // Connection

  _isOpen() {
    return this._socket !== null && this._socket.readyState === OPEN;
  }

  async _connect() {
    this._timer = null;
    let url;
    try {
      url = await this._socketUrl();
    } catch (err) {
      this._report(new Error(`streamhub: the token function failed: ${err && err.message ? err.message : err}`));
      this._retry({ code: 0, reason: "token function failed" });
      return;
    }
    if (this._closed) return;
    const Impl = this.options.WebSocket || globalThis.WebSocket;
    let socket;
    try {
      socket = new Impl(url, this.options.protocols);
    } catch (err) {
      this._report(err);
      this._retry({ code: 0, reason: String(err && err.message ? err.message : err) });
      return;
    }
    this._socket = socket;
    socket.onopen = () => socket === this._socket && this._opened();
    socket.onmessage = (message) => socket === this._socket && this._received(message.data);
    socket.onclose = (event) => socket === this._socket && this._lost(event);
  }

  async _socketUrl() {
    const { token, tokenParam = "token" } = this.options;
    const value = typeof token === "function" ? await token() : token;
    if (value === undefined || value === null || value === "") return this.url;
    const url = new URL(this.url);
    url.searchParams.set(tokenParam, String(value));
    return url.toString();
  }

  _opened() {
    this._setStatus("open", {});
    for (const sub of this._subs.values()) sub._join();
    for (const request of this._requests.values()) this._send(request.frame); // its answer may have been lost
  }

  _lost(event) {
    this._socket = null;
    for (const sub of this._subs.values()) sub.live = false;
    if (!this._closed) this._retry({ code: event.code, reason: event.reason });
  }

  _retry(detail) {
    if (this._closed) return;
    const delay = this._delay(this._attempt);
    this._attempt += 1;
    this._setStatus("reconnecting", { ...detail, delay, attempt: this._attempt });
    this._timer = setTimeout(() => this._connect(), delay);
  }

  _setStatus(status, detail) {
    this.status = status;
    for (const listener of this._listeners.status) {
      try {
        listener(status, detail);
      } catch (err) {
        console.error("streamhub: status listener threw", err);
      }
    }
  }

  // Inbound frames

  _received(raw) {
    let frame;
    try {
      frame = JSON.parse(typeof raw === "string" ? raw : new TextDecoder().decode(raw));
    } catch (err) {
      this._report(new Error(`streamhub: undecodable frame from the engine: ${err.message}`));
      return;
    }
    this._attempt = 0; // the engine answers: the connection is healthy, the next loss starts a fresh backoff
    if (frame.type === "error") {
      this._engineError(frame);
    } else if (frame.type === "stream" && frame.event) {
      this._route(frame);
    } else if (frame.type === "presence") {
      const request = this._requests.get(frame.requestId);
      const members = Array.isArray(frame.members) ? frame.members : [];
      const answer = { members, count: typeof frame.count === "number" ? frame.count : members.length };
      if (frame.truncated === true) answer.truncated = true;
      if (request) request.resolve(answer);
    }
  }

  _engineError(frame) {
    const { code = "error", message = "" } = frame.error || {};
    const reason = frame.error?.reason ?? frame.reason ?? null;
    if (frame.requestId !== undefined) {
      const request = this._requests.get(frame.requestId);
      const text = `streamhub presence: ${code}${reason ? ` (${reason})` : ""}: ${message}`;
      if (request) request.fail(Object.assign(new Error(text), { code, reason }));
      return; // the answer to a request: its promise carries it (a late one is dropped)
    }
    const error = Object.assign(new Error(`streamhub engine: ${code}: ${message}`), { code });
    const sub = frame.subscriptionId === undefined ? undefined : this._subs.get(frame.subscriptionId);
    if (sub) {
      error.subscription = sub;
      sub._failed(this._delay(sub.failures));
    }
    this._report(error);
  }

  _route(frame) {
    const kind = frame.event.type;
    if (kind === "sync" || kind === "unauthorized") {
      const sub = this._answered(frame);
      if (sub) sub._first(frame);
      return;
    }
    if (kind === "presence") {
      this._presence(frame);
      return;
    }
    for (const sub of [...this._subs.values()]) {
      if (sub.live && sub._matches(frame)) sub._event(frame);
    }
  }

  _presence(frame) {
    if (frame.subscriptionId !== undefined) { // the sync after a join: that subscription only
      const sub = this._subs.get(frame.subscriptionId);
      if (sub && sub.live && sub.presence) sub._presenceEvent(frame);
      return;
    }
    for (const sub of [...this._subs.values()]) {
      if (sub.live && sub.presence && sub._answersGroup(frame)) sub._presenceEvent(frame);
    }
  }

  _answered(frame) {
    if (frame.subscriptionId !== undefined) {
      const sub = this._subs.get(frame.subscriptionId);
      return sub && !sub.live ? sub : undefined;
    }
    for (const sub of this._subs.values()) {
      if (!sub.live && sub._answers(frame)) return sub;
    }
    return undefined;
  }

  _delay(attempt) {
    const { minDelay, maxDelay, factor, jitter } = this._backoff;
    const ceiling = Math.min(maxDelay, minDelay * Math.pow(factor, attempt));
    return Math.round(ceiling * (1 - jitter * Math.random()));
  }
}

/** `client.stream`: the subscription API of the documentation. */
class Streams {
  constructor(client) {
    this.client = client;
  }

  /**
   * Subscribe to a group (or, with `options.itemId`, one item). `onEvent` first gets a `sync`, then every
   * change; after a reconnect, a `sync` with `recovered: true` followed by the missed events, or a fresh
   * `sync` with `recovered: false` whose data replaces what the page had.
   */
  subscribe(streamName, groupId, onEvent, options = {}) {
    checkName("streamName", streamName);
    checkName("groupId", groupId);
    if (typeof onEvent !== "function") throw new TypeError("streamhub subscribe: onEvent must be a function");
    const itemId = options.itemId ?? null;
    if (itemId !== null) checkName("options.itemId", itemId);
    const sub = new Subscription(this.client, streamName, groupId, itemId, onEvent, options.view || null,
      options.presence === true);
    this.client._add(sub);
    return sub;
  }

  /**
   * Who is in the group now, asked once without subscribing: a Promise of `{members, count}` (`truncated: true`
   * when the engine cut the list; `count` stays exact). Rejected with an Error carrying `code` and `reason` when
   * the engine refuses (`unauthorized`: a join guard refused the group), or with `code: "timeout"` after
   * `options.timeout` ms (default 10000). A request pending while the connection is down is sent once it is back.
   */
  presence(streamName, groupId, options = {}) {
    checkName("streamName", streamName, "presence");
    checkName("groupId", groupId, "presence");
    const waitMs = options.timeout ?? DEFAULT_REQUEST_TIMEOUT;
    if (typeof waitMs !== "number" || !(waitMs > 0)) {
      throw new TypeError(`streamhub presence: options.timeout must be a positive number of ms, got ${
        JSON.stringify(waitMs)}`);
    }
    return this.client._request(streamName, groupId, waitMs);
  }

  /** Subscribe to one item: its value in `sync`, then its changes. */
  subscribeItem(streamName, groupId, itemId, onEvent) {
    return this.subscribe(streamName, groupId, onEvent, { itemId });
  }

  /**
   * Subscribe and keep the current state, so a page can render without reducing events itself: an array of
   * the group's values (reconciled by item id) or the item's value (null when missing). `onChange(state,
   * event)` runs after each event has been applied; `subscription.state` always holds the latest state. With
   * `options.presence`, `subscription.members` holds who is there and `onChange` also runs when it changes.
   */
  live(streamName, groupId, onChange, options = {}) {
    if (typeof onChange !== "function") throw new TypeError("streamhub live: onChange must be a function");
    const itemId = options.itemId ?? null;
    const view = itemId === null ? new GroupState(options.key || keyOfValue) : new ItemState();
    return this.subscribe(streamName, groupId, (event) => onChange(view.value, event),
      { itemId, view, presence: options.presence });
  }
}

/** One live subscription; `unsubscribe()` ends it. */
export class Subscription {
  constructor(client, streamName, groupId, itemId, onEvent, view, presence) {
    this.client = client;
    this.id = client._newId();
    this.streamName = streamName;
    this.groupId = groupId;
    this.itemId = itemId;
    this.position = null; // {epoch, offset} of the last change applied
    this.live = false; // true once this connection's sync (or unauthorized) arrived
    this.active = true;
    this.failures = 0; // joins in a row the engine could not answer with a snapshot
    this.view = view;
    this.presence = presence; // asked for presence events and keeps `members`
    this._members = presence ? new Members() : null;
    this._onEvent = onEvent;
    this._replayedUpTo = -1; // events up to this offset after a recovered sync are replayed ones
    this._retryTimer = undefined;
  }

  /** The current state kept by `client.stream.live` (undefined for a plain subscription). */
  get state() {
    return this.view ? this.view.value : undefined;
  }

  /** Who is in the group (one entry per connection, this one included), with `presence: true`; else empty. */
  get members() {
    return this._members ? this._members.list : [];
  }

  /** How many members the group has (exact even when the engine cut the list it sent). */
  get memberCount() {
    return this._members ? this._members.count : 0;
  }

  /** Stop receiving events; the engine is told with a `leave`. Calling it twice is harmless. */
  unsubscribe() {
    if (!this.active) return;
    this.active = false;
    this.live = false;
    clearTimeout(this._retryTimer);
    this.client._remove(this);
  }

  _address() {
    const data = { subscriptionId: this.id, streamName: this.streamName, groupId: this.groupId };
    if (this.itemId !== null) data.id = this.itemId;
    return data;
  }

  _join() {
    this.live = false;
    clearTimeout(this._retryTimer);
    const data = this._address();
    if (this.position && typeof this.position.epoch === "string") data.position = { ...this.position };
    if (this.presence) {
      data.presence = true;
      this._members.synced = false; // join/leave count again only after this connection's presence sync
    }
    this.client._send({ type: "join", data });
  }

  _answers(frame) {
    return frame.streamName === this.streamName && frame.groupId === this.groupId
      && (frame.id ?? null) === this.itemId;
  }

  _answersGroup(frame) {
    return frame.streamName === this.streamName && frame.groupId === this.groupId;
  }

  _matches(frame) {
    return frame.streamName === this.streamName && frame.groupId === this.groupId
      && (this.itemId === null || frame.id === this.itemId);
  }

  _failed(delay) {
    this.failures += 1;
    this._retryTimer = setTimeout(() => this.active && this.client._isOpen() && this._join(), delay);
  }

  _first(frame) {
    this.live = true;
    this.failures = 0;
    const position = frame.position;
    if (frame.event.type === "sync" && position && typeof position.offset === "number") {
      if (frame.recovered === true && this.position) {
        this._replayedUpTo = position.offset; // replayed events follow, starting after our own offset
      } else {
        this.position = { epoch: position.epoch, offset: position.offset };
        this._replayedUpTo = -1;
      }
    }
    this._deliver(frame, false);
  }

  _event(frame) {
    const offset = frame.offset;
    if (typeof offset === "number" && this.position) {
      if (offset <= this.position.offset) return; // a copy meant for an overlapping subscription
      this.position.offset = offset;
    }
    this._deliver(frame, typeof offset === "number" && offset <= this._replayedUpTo);
  }

  _presenceEvent(frame) {
    if (!this._members.apply(frame.event)) return; // a copy, or a change this list already holds
    const event = toEvent(frame, this.id, false);
    Object.assign(event, { action: frame.event.action, members: this.members, count: this.memberCount });
    if (frame.event.member !== undefined) event.member = frame.event.member;
    this._hand(event);
  }

  _deliver(frame, replayed) {
    this._hand(toEvent(frame, this.id, replayed));
  }

  _hand(event) {
    if (this.view) this.view.apply(event);
    try {
      this._onEvent(event);
    } catch (err) {
      this.client._report(err);
    }
  }
}

/** The group's values keyed by item id; insertion order is kept, updates stay in place. */
class GroupState {
  constructor(keyOf) {
    this.keyOf = keyOf;
    this.items = new Map();
    this._list = [];
  }

  get value() {
    if (this._list === null) this._list = Array.from(this.items.values());
    return this._list;
  }

  apply(event) {
    const kind = event.event_type;
    if (kind === "sync" && event.recovered !== true) {
      this.items = new Map();
      for (const value of Array.isArray(event.data) ? event.data : []) {
        this.items.set(this.keyOf(value) ?? Symbol("unkeyed"), value);
      }
    } else if (kind === "create" || kind === "update") {
      this.items.set(event.id, event.data);
    } else if (kind === "delete") {
      this.items.delete(event.id);
    } else {
      return; // custom events, a recovered sync and refusals leave the state as it is
    }
    this._list = null;
  }
}

/** One item's value, null while it does not exist. */
class ItemState {
  constructor() {
    this.value = null;
  }

  apply(event) {
    const kind = event.event_type;
    if (kind === "sync" && event.recovered !== true) this.value = event.data ?? null;
    else if (kind === "create" || kind === "update") this.value = event.data;
    else if (kind === "delete") this.value = null;
  }
}

/**
 * A group's members by connection id. A presence `sync` replaces them all (a reconnect must not leave members of a
 * dead connection behind); `join` / `leave` apply only when they change something, so the copies an overlapping
 * subscription causes, and changes the sync already holds, are dropped. `count` is the engine's exact count, kept
 * by the changes; while the list is truncated, connections that left are remembered (bounded) for the same reason.
 */
class Members {
  constructor() {
    this.byConnection = new Map();
    this.count = 0;
    this.synced = false;
    this.truncated = false;
    this.gone = new Set();
    this._list = [];
  }

  get list() {
    if (this._list === null) this._list = Array.from(this.byConnection.values());
    return this._list;
  }

  /** Apply one presence event; false when it changes nothing. */
  apply(inner) {
    if (inner.action === "sync") return this._sync(inner);
    const member = inner.member;
    if (!this.synced || !member || typeof member.connection_id !== "string") return false;
    const id = member.connection_id;
    const known = this.byConnection.get(id);
    if (inner.action === "join") {
      this.gone.delete(id);
      if (known !== undefined && JSON.stringify(known) === JSON.stringify(member)) return false;
      if (known === undefined) this.count += 1;
      this.byConnection.set(id, member);
    } else if (inner.action === "leave") {
      if (known === undefined && !this.truncated) return false; // left before the sync was taken
      if (this.truncated && !this._forget(id)) return false; // a copy of a leave already counted
      this.byConnection.delete(id);
      this.count = Math.max(0, this.count - 1);
    } else {
      return false;
    }
    this._list = null;
    return true;
  }

  _sync(inner) {
    this.byConnection = new Map();
    for (const member of Array.isArray(inner.members) ? inner.members : []) {
      if (member && typeof member.connection_id === "string") this.byConnection.set(member.connection_id, member);
    }
    this.count = typeof inner.count === "number" ? inner.count : this.byConnection.size;
    this.truncated = inner.truncated === true;
    this.gone = new Set();
    this.synced = true;
    this._list = null;
    return true;
  }

  /** While truncated (a member that left may not be listed): true the first time a connection leaves. */
  _forget(id) {
    if (this.gone.has(id)) return false;
    this.gone.add(id);
    if (this.gone.size > GONE_MEMORY) this.gone.delete(this.gone.values().next().value);
    return true;
  }
}

/** Snapshot values carry no item id on the wire; a value's own `id` field names it, as in the examples. */
function keyOfValue(value) {
  if (value === null || typeof value !== "object") return undefined;
  const id = value.id;
  return typeof id === "string" || typeof id === "number" ? String(id) : undefined;
}

/** The wire wrapper plus the documentation's fields (`event.event.create.data`, `event_type`, ...). */
function toEvent(frame, subscriptionId, replayed) {
  const inner = frame.event;
  const kind = inner.type;
  let data = inner.data;
  let body = { data };
  if (kind === "event") {
    const custom = inner.event || {};
    body = { ...custom, event_type: custom.type };
    data = custom.data;
  } else if (kind === "presence") {
    const { type: _type, ...presence } = inner;
    body = presence; // {action, members, count} for a sync, {action, member} for a join or leave
    data = inner.action === "sync" ? inner.members : inner.member;
  }
  const event = {
    ...frame,
    event: { ...inner, [kind]: body },
    subscriptionId,
    stream_name: frame.streamName,
    group_id: frame.groupId,
    event_type: kind,
    data,
    replayed,
  };
  if (kind === "unauthorized") event.reason = inner.reason ?? null; // why the engine refused the join
  return event;
}

/**
 * The WebSocket URL to connect to: `url` resolved against the page (or, without one, the engine that served this
 * module), with http: -> ws: and https: -> wss:, so a page served over https never falls back to plain ws.
 */
function socketBase(url) {
  let parsed = null;
  try {
    parsed = url === undefined ? new URL("/", import.meta.url) : new URL(url, globalThis.location?.href);
  } catch {
    // reported below
  }
  if (parsed && SOCKET_SCHEMES[parsed.protocol]) parsed.protocol = SOCKET_SCHEMES[parsed.protocol];
  if (!parsed || !["ws:", "wss:"].includes(parsed.protocol)) {
    throw new TypeError(`streamhub Client: url must be a ws://, wss://, http(s):// or page-relative URL such as ${
      "'wss://streams.example.com', got "}${JSON.stringify(url)}`);
  }
  return parsed.toString();
}

function checkName(field, value, where = "subscribe") {
  if (typeof value !== "string" || value === "") {
    throw new TypeError(`streamhub ${where}: ${field} must be a non-empty string, got ${JSON.stringify(value)}`);
  }
}
