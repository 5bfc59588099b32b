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
 */

const DEFAULT_RECONNECT = Object.freeze({ minDelay: 250, maxDelay: 10000, factor: 2, jitter: 0.5 });
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
    }
  }

  _engineError(frame) {
    const { code = "error", message = "" } = frame.error || {};
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
    for (const sub of [...this._subs.values()]) {
      if (sub.live && sub._matches(frame)) sub._event(frame);
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
    const sub = new Subscription(this.client, streamName, groupId, itemId, onEvent, options.view || null);
    this.client._add(sub);
    return sub;
  }

  /** Subscribe to one item: its value in `sync`, then its changes. */
  subscribeItem(streamName, groupId, itemId, onEvent) {
    return this.subscribe(streamName, groupId, onEvent, { itemId });
  }

  /**
   * Subscribe and keep the current state, so a page can render without reducing events itself: an array of
   * the group's values (reconciled by item id) or the item's value (null when missing). `onChange(state,
   * event)` runs after each event has been applied; `subscription.state` always holds the latest state.
   */
  live(streamName, groupId, onChange, options = {}) {
    if (typeof onChange !== "function") throw new TypeError("streamhub live: onChange must be a function");
    const itemId = options.itemId ?? null;
    const view = itemId === null ? new GroupState(options.key || keyOfValue) : new ItemState();
    return this.subscribe(streamName, groupId, (event) => onChange(view.value, event), { itemId, view });
  }
}

/** One live subscription; `unsubscribe()` ends it. */
export class Subscription {
  constructor(client, streamName, groupId, itemId, onEvent, view) {
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
    this._onEvent = onEvent;
    this._replayedUpTo = -1; // events up to this offset after a recovered sync are replayed ones
    this._retryTimer = undefined;
  }

  /** The current state kept by `client.stream.live` (undefined for a plain subscription). */
  get state() {
    return this.view ? this.view.value : undefined;
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
    this.client._send({ type: "join", data });
  }

  _answers(frame) {
    return frame.streamName === this.streamName && frame.groupId === this.groupId
      && (frame.id ?? null) === this.itemId;
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

  _deliver(frame, replayed) {
    const event = toEvent(frame, this.id, replayed);
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

function checkName(field, value) {
  if (typeof value !== "string" || value === "") {
    throw new TypeError(`streamhub subscribe: ${field} must be a non-empty string, got ${JSON.stringify(value)}`);
  }
}
