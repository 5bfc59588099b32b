// SPDX-License-Identifier: Apache-2.0
// Types of the streamhub browser client (served at /client.d.ts beside /client.js).

/** Where a group's history stands: offsets compare only within one epoch. */
export interface Position {
  epoch: string;
  offset: number;
}

export type EventType = "sync" | "create" | "update" | "delete" | "event" | "unauthorized" | "presence";

/** One connection in a group (presence): all its subscriptions to the group or its items are one member. */
export interface PresenceMember<I = any> {
  connection_id: string;
  /** Its subscriptions to the group (or its items), as its client named them. */
  subscription_ids: string[];
  /** The item of each subscription (null for a group subscription), in the same order. */
  item_ids: (string | null)[];
  /** When its first subscription to the group opened, ms since the Unix epoch. */
  joined_at: number;
  /** The `presence` field of the connection's auth context (never the rest of it), else null. */
  info: I | null;
}

/** `sync` (the whole list, after every (re)join), `join` (a connection arrived) or `leave` (it is gone). */
export type PresenceAction = "sync" | "join" | "leave";

/** What `client.stream.presence()` resolves to. */
export interface PresenceAnswer<I = any> {
  members: PresenceMember<I>[];
  /** Exact, even when the engine cut `members` at its limit. */
  count: number;
  /** Present (true) when the engine cut `members` at its `max_presence_members`. */
  truncated?: true;
}

export interface PresenceOptions {
  /** How long to wait for the answer, in ms, across reconnects (default 10000). */
  timeout?: number;
}

/**
 * Why `client.stream.presence()` was rejected: `code` is the engine's (`unauthorized` when a join guard refused the
 * group, `invalid_name`, ...) or `timeout` / `closed`; `reason` the refusal's reason (as for a refused join).
 */
export interface PresenceError extends Error {
  code: string;
  reason: UnauthorizedReason | null;
}

/**
 * Why a join was refused: a join trigger said no (`refused`), or no join trigger could judge it (join guards fail
 * closed): it failed or gave no verdict (`guard_failed`), timed out (`guard_timeout`) or nothing serves it
 * (`guard_unavailable`). Engines may add reasons; null when the engine sent none.
 */
export type UnauthorizedReason = "refused" | "guard_failed" | "guard_timeout" | "guard_unavailable" | (string & {});

/** The `event` part of a stream event: the wire's `{type, data}` plus the documentation's `{[type]: {data}}`. */
export interface EventBody<T = any> {
  type: EventType;
  /** The value (sync: the group's values or the item's value; delete: the old value). */
  data?: any;
  sync?: { data: any };
  create?: { data: T };
  update?: { data: T };
  delete?: { data: T };
  /** A custom event from `stream.send`: the wire's `{type, data}` plus the documentation's `event_type`. */
  event?: { type: string; event_type: string; data: any };
  unauthorized?: { data: undefined };
  /** On an `unauthorized` event: why the join was refused. */
  reason?: UnauthorizedReason;
  /** On a `presence` event: the wire's fields. */
  presence?: { action: PresenceAction; members?: PresenceMember[]; member?: PresenceMember; count?: number;
    truncated?: boolean };
  action?: PresenceAction;
  member?: PresenceMember;
  members?: PresenceMember[];
  count?: number;
  truncated?: boolean;
}

/** What a subscription callback receives: the wire wrapper plus the documentation's field names. */
export interface StreamEvent<T = any> {
  type: "stream";
  /** Milliseconds since the Unix epoch, taken when the engine built the event. */
  timestamp: number;
  streamName: string;
  groupId: string;
  /** The item id (null for a group sync and for group-wide custom events). */
  id: string | null;
  event: EventBody<T>;
  /** The change's offset in its group (streamhub engines). */
  offset?: number;
  /** On a sync: the position its snapshot (or replay) reaches. */
  position?: Position;
  /** On a sync: true when the engine replays the missed events that follow; false for a fresh snapshot. */
  recovered?: boolean;
  /** The subscription this event was delivered to. */
  subscriptionId: string;
  stream_name: string;
  group_id: string;
  /** The kind of change: `event.event.type` (sync, create, update, delete, event, unauthorized). */
  event_type: EventType;
  /** The value of the change (for a custom event, its data). */
  data: any;
  /** True for events the engine replays after a reconnect (they happened while this page was disconnected). */
  replayed: boolean;
  /** On an `unauthorized` event: why the engine refused the join (null when it sent no reason). */
  reason?: UnauthorizedReason | null;
  /** On a `presence` event: what happened. */
  action?: PresenceAction;
  /** On a `presence` join or leave: the member as it was at that moment. */
  member?: PresenceMember;
  /** On a `presence` event: the subscription's member list after it (the same as `subscription.members`). */
  members?: PresenceMember[];
  /** On a `presence` event: how many members the group has after it. */
  count?: number;
}

export interface ReconnectOptions {
  /** First delay in ms (default 250). */
  minDelay?: number;
  /** Longest delay in ms (default 10000). */
  maxDelay?: number;
  /** Growth per failed attempt (default 2). */
  factor?: number;
  /** Fraction of the delay taken off at random, 0..1 (default 0.5), so many pages do not reconnect at once. */
  jitter?: number;
}

export interface ClientOptions {
  /**
   * Sent as the query parameter `tokenParam` (default `token`) of every connection; the engine hands it to
   * its `auth_function` in `query_params`. A function is called before each (re)connect, for expiring tokens.
   * The value is URL-encoded; tokens made of URL-safe characters (JWT, hex, base64url) arrive unchanged.
   */
  token?: string | (() => string | Promise<string>);
  tokenParam?: string;
  /** WebSocket subprotocols to offer; the engine accepts the first and passes the header to `auth_function`. */
  protocols?: string | string[];
  reconnect?: ReconnectOptions;
  /** A WebSocket implementation for environments without a global one (Node.js before 22: `ws`'s WebSocket);
   *  without one there, the constructor throws a TypeError saying so. */
  WebSocket?: typeof WebSocket;
}

export type Status = "connecting" | "open" | "reconnecting" | "closed";

export interface StatusDetail {
  /** Close code of the connection that was lost (1006 when the browser gives none). */
  code?: number;
  reason?: string;
  /** Milliseconds until the next attempt. */
  delay?: number;
  attempt?: number;
}

export interface SubscribeOptions {
  /** Subscribe to this item only. */
  itemId?: string;
  /**
   * Ask for presence: after each sync a `presence` event with action `sync` (it replaces `members`), then `join` /
   * `leave` as connections come and go; `subscription.members` stays current. Needs a streamhub engine.
   */
  presence?: boolean;
}

export interface LiveOptions extends SubscribeOptions {
  /**
   * Names a value of the group's snapshot (the wire gives snapshot values without their item ids). Default:
   * the value's own `id` field. Events are always matched by their item id.
   */
  key?: (value: any) => string | undefined;
}

export declare class Subscription<S = undefined> {
  readonly id: string;
  readonly streamName: string;
  readonly groupId: string;
  readonly itemId: string | null;
  /** The last position this subscription applied; sent with the join after a reconnect. */
  readonly position: Position | null;
  /** True once the current connection's sync has arrived. */
  readonly live: boolean;
  /** False after `unsubscribe()` or `client.close()`. */
  readonly active: boolean;
  /** With `client.stream.live`: the group's values or the item's value, after every event. */
  readonly state: S;
  /** True when it asked for presence. */
  readonly presence: boolean;
  /**
   * With `presence: true`: the group's members (this connection included: its `subscription_ids` hold this
   * subscription's `id`), replaced by every presence sync, so nobody from before a reconnect lingers. A new array
   * after each change; empty until the first presence sync and without presence.
   */
  readonly members: PresenceMember[];
  /** With `presence: true`: how many members the group has (exact even when the engine cut the list). */
  readonly memberCount: number;
  unsubscribe(): void;
}

export declare class Streams {
  subscribe<T = any>(
    streamName: string,
    groupId: string,
    onEvent: (event: StreamEvent<T>) => void,
    options?: SubscribeOptions,
  ): Subscription;
  subscribeItem<T = any>(
    streamName: string,
    groupId: string,
    itemId: string,
    onEvent: (event: StreamEvent<T>) => void,
  ): Subscription;
  /** Group form: the state is the group's values, reconciled by item id. */
  live<T = any>(
    streamName: string,
    groupId: string,
    onChange: (state: T[], event: StreamEvent<T>) => void,
    options?: LiveOptions & { itemId?: undefined },
  ): Subscription<T[]>;
  /** Item form: the state is the item's value, null while it does not exist. */
  live<T = any>(
    streamName: string,
    groupId: string,
    onChange: (state: T | null, event: StreamEvent<T>) => void,
    options: LiveOptions & { itemId: string },
  ): Subscription<T | null>;
  /**
   * Who is in the group now, without subscribing. Rejects with a `PresenceError`: `unauthorized` when a join guard
   * refuses the group (and the connection has no open subscription to it), `timeout` after `options.timeout` ms.
   */
  presence<I = any>(streamName: string, groupId: string, options?: PresenceOptions): Promise<PresenceAnswer<I>>;
}

export declare class Client {
  /**
   * @param url the stream port: ws://, wss://, http(s):// (mapped to ws(s)://) or a path relative to the page;
   *   default: the engine this module was loaded from (wss when it was loaded over https).
   */
  constructor(url?: string, options?: ClientOptions);
  readonly url: string;
  readonly status: Status;
  readonly stream: Streams;
  on(name: "status", listener: (status: Status, detail: StatusDetail) => void): () => void;
  /**
   * Error frames from the engine (`code`, and `subscription` when a join failed, e.g. `too_many_subscriptions`:
   * that join is retried with backoff), connection and callback errors.
   */
  on(name: "error", listener: (error: Error & { code?: string; subscription?: Subscription<any> }) => void): () => void;
  close(): void;
}
