/**
 * The contract between the cache-aside engine and a key-value store (Redis or in-process memory).
 *
 * The store knows nothing about users or posts: it holds versioned entries under string keys,
 * short-lived locks beside them, and fill notifications. Both drivers pass one conformance suite
 * (test/support/store-contract.ts, run by one test file per driver in test/store/), so the engine above cannot tell them apart except
 * by `tier`.
 *
 * Invariants every driver keeps:
 * - Every key it writes has a physical TTL. Nothing is stored forever.
 * - A write never replaces a newer version (the "fence"); see `setMany`.
 * - Each method is one round trip to the server, whatever the number of keys, so that the engine's
 *   cost per DataLoader batch is fixed. On Redis Cluster a call may fan out to one command per slot,
 *   auto-pipelined, which is still one round trip per node.
 * - Methods reject (never hang) when the server is unreachable; the engine decides what to do.
 */

/** What a key holds. */
export type EntryKind =
  /** A cached entity (or id list) in `payload`. */
  | 'value'
  /** The id is known not to exist (as of `version`); served as a hit so unknown ids do not reach SQL. */
  | 'negative'
  /**
   * An invalidation marker: "versions older than `version` are stale". It is never served; it only
   * fences fills that started before the invalidation, so they cannot land after it.
   */
  | 'tombstone';

export interface CacheEntry {
  readonly kind: EntryKind;
  /**
   * The version the entry was read or written at (a profile's `version` column, a post list's
   * version counter, 0 for "never existed"). Non-negative integer, at most 2^53 - 1.
   */
  readonly version: number;
  /**
   * Logical expiry, epoch milliseconds. After it the entry is stale: the engine reloads it, and may
   * serve it only while PostgreSQL is down and `staleAt + grace` has not passed. The physical TTL of
   * the key is the logical TTL plus that grace.
   */
  readonly staleAt: number;
  /** Encoded entity for `kind: 'value'`; empty for the other kinds. */
  readonly payload: Uint8Array;
}

export interface CacheWrite {
  readonly key: string;
  readonly entry: CacheEntry;
  /** Physical time-to-live of the key in milliseconds (> 0). */
  readonly ttlMs: number;
}

/**
 * What became of a fill (`fillMany`):
 * - `stored`: the caller held the key's grant and the fence admitted the entry;
 * - `renewed`: the caller held the grant and the key already held this very version (a refill of an
 *   unchanged row, e.g. of an entry past its `staleAt`): the held entry stays, with the fill's
 *   `staleAt` and TTL. As good as `stored` for whoever waited for this fill: the key holds an entry
 *   of the version the fill read, and no write came between that read and the fill (the grant);
 * - `fenced`: the caller held the grant, but the key holds something newer: nothing stored;
 * - `revoked`: the caller no longer held the grant — a write revoked it, or the lock expired, or the
 *   store lost it (flushed, restarted empty, evicted): nothing stored, nothing touched.
 * In the first three cases the grant is released and the key's waiters are woken.
 */
export type FillOutcome = 'stored' | 'renewed' | 'fenced' | 'revoked';

/**
 * What a dependent entry (`setDependent`) was computed from: a key and the kind and version of the
 * entry it held then. The dependent entry is served only while each of them still holds exactly that.
 */
export interface Dependency {
  readonly key: string;
  readonly kind: 'value' | 'negative';
  readonly version: number;
}

/** Where a store keeps what it knows about its dependent entries as a whole (`CacheKeys.dependents`). */
export interface DependentKeys {
  /** Moved by every write to an entry (Redis: the write stamp, redis/write-stamp.ts). */
  readonly writeStamp: string;
  /** Moved by `invalidateDependents`: every dependent entry of an older generation is absent. */
  readonly generation: string;
}

export interface DependentWrite {
  readonly key: string;
  /**
   * The generation `getDependent` answered *before* the payload was computed (the read that sent the
   * caller to compute it): an entry begun before an `invalidateDependents` is absent even if it is
   * written after it, since what it was computed from may be what the purge was for.
   */
  readonly generation: string;
  /** Opaque bytes (a serialized GraphQL response). */
  readonly payload: Uint8Array;
  readonly dependencies: readonly Dependency[];
  /** Physical time-to-live in milliseconds (> 0). */
  readonly ttlMs: number;
}

/**
 * What `getDependent` found: the payload while every dependency is current; otherwise why not —
 * `absent` (no dependent entry under the key, or one of an older generation), or the first dependency
 * that no longer holds its kind and version fresh (missing, a tombstone, another version, past its
 * logical TTL) — each with the generation a payload computed now must be written under.
 */
export type DependentRead =
  | {
      readonly status: 'current';
      readonly payload: Uint8Array;
      readonly dependencies: number;
      readonly generation: string;
      /**
       * The earliest logical expiry (staleAt, epoch ms) among the dependencies: whoever keeps the
       * payload past this read (the response tier's in-process copies) keeps it no longer.
       */
      readonly freshUntil: number;
      /**
       * The dependencies the entry names, decoded on demand: only a caller that keeps the payload
       * needs them, and decoding them is garbage on every other read.
       */
      listDependencies(): readonly Dependency[];
    }
  | { readonly status: 'absent'; readonly generation: string }
  | { readonly status: 'outdated'; readonly failed: Dependency; readonly generation: string };

/** What `acquireLocks` did for one key. */
export interface LockAttempt {
  /** True when `token` took the lock: the caller holds the key's fill grant. */
  readonly acquired: boolean;
  /** What the key held right after the attempt; `undefined` when absent or expired. */
  readonly entry: CacheEntry | undefined;
}

/** Called with the key whose fill notification arrived. */
export type FillListener = (key: string) => void;
/** Called with a message published on a channel. */
export type MessageListener = (channel: string, message: string) => void;
export type Unsubscribe = () => Promise<void>;

export interface CacheStore {
  /** The RFC 9211 cache name this store reports in `Cache-Status`. */
  readonly tier: 'cacheside-redis' | 'cacheside-memory';

  /** Entries for keys, in order; a missing (or expired) key is `undefined`. One round trip. */
  getMany(keys: readonly string[]): Promise<(CacheEntry | undefined)[]>;

  /**
   * Stores each write unless the key holds something newer, and returns which landed.
   * The fence, per key, against what the key currently holds:
   * - nothing: store;
   * - a value or negative entry: store if `write.version > held.version`; at an equal version the
   *   held entry stays but its TTL and `staleAt` are renewed (a refill of the same row);
   * - a tombstone: store if `write.version >= held.version` (the tombstone names the newest version
   *   committed, so a fill that read it is current); a tombstone replaces a tombstone only if newer.
   * Writing a tombstone follows the same rules with kind 'tombstone', except that a tombstone at the
   * held version leaves the held entry untouched (nothing is renewed: it is a duplicated invalidation).
   *
   * These are the invalidations (write-throughs, tombstones): each also **revokes the key's fill
   * grant** — deletes its stampede lock, waking its waiters — so that a fill that read the row before
   * this write cannot land after it, even once the store has lost this write (`fillMany`). They must
   * not fail for lack of memory: a driver runs them even when a memory limit refuses other writes.
   * One round trip.
   */
  setMany(writes: readonly CacheWrite[]): Promise<boolean[]>;

  /**
   * Stores fills under a grant: each write lands only while `token` still holds the key's stampede
   * lock (the grant `acquireLocks` gave) and the fence admits it, and the grant is then released
   * (waking the waiters), in one atomic step per key. Every invalidation of the key revokes the grant,
   * and so does anything that loses the lock (a flush, an empty restart, an eviction, its expiry):
   * a fill that began before a write can never land after it, whatever the store lost in between —
   * Facebook's memcache leases. Fills may fail for lack of memory. One round trip.
   */
  fillMany(fills: readonly CacheWrite[], token: string): Promise<FillOutcome[]>;

  /**
   * Stores a dependent entry: bytes computed from the entries `dependencies` name (the response
   * tier's answers). Not fenced — two writers of one key both wrote something correct when they
   * wrote it, and `getDependent` checks it against the dependencies on every read. One round trip.
   */
  setDependent(write: DependentWrite): Promise<void>;

  /**
   * Reads a dependent entry and checks, in the same step, that each of its dependencies still holds
   * the kind and version it named, and is fresh at `at` (epoch ms): the payload then, else why not.
   * The check reads the entries' headers only, never their payloads. One round trip on a single
   * server; on a cluster, the entry and then its dependencies (one pipeline per node): two.
   */
  getDependent(key: string, at: number): Promise<DependentRead>;

  /**
   * Starts a new generation: every dependent entry written under an older one — stored already, or
   * being computed now and written later — is absent from now on. For operators' purges
   * (src/cache/write/purge.ts), which exist for rows changed behind the cache's back: such a row keeps
   * its version, so no check of versions can tell an answer computed from the old row from one
   * computed from the new. Call it once the purge's tombstones have landed, so that an answer begun
   * after it reads them. Never fails for lack of memory. One round trip.
   */
  invalidateDependents(): Promise<void>;

  /** Remaining physical TTL of each key in ms, or -1 when absent. One round trip. Diagnostics only. */
  ttlMany(keys: readonly string[]): Promise<number[]>;

  /**
   * Takes the stampede lock of each key (`<key>:lock`, `SET NX PX`) for `token` and, in the same
   * atomic step per key, reads what the key holds right after: whether the lock is this caller's now,
   * and the entry (as `getMany` would return it). One round trip. The read is what a caller that
   * missed must do once it holds the lock anyway — another caller may have filled the key between
   * its first read and its lock — so a cold batch costs a read, this, and a fill: three round trips.
   */
  acquireLocks(keys: readonly string[], token: string, ttlMs: number): Promise<LockAttempt[]>;

  /**
   * Releases the locks of keys held by `token` (compare-and-delete: a holder whose lock expired and
   * was taken by another caller cannot release the new holder's lock), and notifies the waiters of
   * every key whose lock it released. Returns which were released. One round trip.
   */
  releaseLocks(keys: readonly string[], token: string): Promise<boolean[]>;

  /**
   * Subscribes to fill notifications of `key`; resolves once the subscription is active on the
   * server, so a caller that re-reads the key afterwards cannot miss a fill that lands in between.
   */
  onFill(key: string, listener: FillListener): Promise<Unsubscribe>;

  /** Publishes a message on a channel (invalidation events). */
  publish(channel: string, message: string): Promise<void>;

  /** Subscribes to a channel; resolves once the subscription is active. */
  subscribe(channel: string, listener: MessageListener): Promise<Unsubscribe>;

  /**
   * Calls `listener` each time a connection to the store is back after a loss: the subscriber
   * connection, once its subscriptions were sent again (messages published meanwhile were missed:
   * the L1 tier clears itself), and the command connection — or, on a cluster, one master's — before
   * any call reads through it (the store may have restarted with data older than writes made
   * meanwhile: the breaker trips); a call that spanned such a return fails. Returns a function that
   * removes it. Absent from stores that cannot lose anything (memory).
   */
  onReconnect?(listener: () => void): () => void;

  /**
   * Visits every key under `prefix` (SCAN in batches, never `KEYS`), awaiting `onBatch` for each batch
   * of at most a few hundred keys. Keys written during the walk may or may not be visited. Returns the
   * number of keys visited. Operators' purge.
   */
  scanKeys(prefix: string, onBatch: (keys: string[]) => Promise<void>): Promise<number>;

  /**
   * Removes every key under `prefix` without blocking the server (SCAN + UNLINK in batches, never
   * `KEYS`). Operators' purge and test teardown; returns the number of keys removed.
   */
  purgePrefix(prefix: string): Promise<number>;

  /** Closes connections; pending calls reject. Idempotent. */
  close(): Promise<void>;
}

/**
 * Rejects a write that breaks the contract's value ranges, before any driver touches its server.
 * Shared by the drivers so that both refuse the same inputs with the same message; a bad value here
 * is a bug in the caller, so the call fails with a TypeError rather than with a store error (which
 * would send the engine to PostgreSQL and hide the bug).
 */
export function assertCacheWrite(write: CacheWrite): void {
  const { key, entry, ttlMs } = write;
  if (typeof key !== 'string' || key.length === 0) {
    throw new TypeError(`cache write key must be a non-empty string, got ${JSON.stringify(key)}`);
  }
  if (entry.kind !== 'value' && entry.kind !== 'negative' && entry.kind !== 'tombstone') {
    throw new TypeError(`cache entry kind of ${key} is unknown, got ${JSON.stringify(entry.kind)}`);
  }
  if (!Number.isSafeInteger(entry.version) || entry.version < 0) {
    throw new TypeError(
      `cache entry version of ${key} must be an integer in 0..2^53-1, got ${String(entry.version)}`,
    );
  }
  if (!Number.isSafeInteger(entry.staleAt) || entry.staleAt < 0) {
    throw new TypeError(
      `cache entry staleAt of ${key} must be epoch milliseconds, got ${String(entry.staleAt)}`,
    );
  }
  if (!(entry.payload instanceof Uint8Array)) {
    throw new TypeError(`cache entry payload of ${key} must be a Uint8Array`);
  }
  assertTtlMs(ttlMs, `ttlMs of ${key}`);
}

/** A TTL in ms must be a positive integer: Redis rejects 0 and fractions, and both mean a bug. */
export function assertTtlMs(ttlMs: number, what: string): void {
  if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0) {
    throw new TypeError(`${what} must be a positive integer of milliseconds, got ${String(ttlMs)}`);
  }
}

/** Lock owners are told apart by token; an empty one is a bug that would blur ownership. */
export function assertLockToken(token: string): void {
  if (typeof token !== 'string' || token.length === 0) {
    throw new TypeError(`lock token must be a non-empty string, got ${JSON.stringify(token)}`);
  }
}

/** An empty purge prefix would remove every key of the server, cacheside's or not. */
export function assertPurgePrefix(prefix: string): void {
  if (typeof prefix !== 'string' || prefix.length === 0) {
    throw new TypeError(`purge prefix must be a non-empty string, got ${JSON.stringify(prefix)}`);
  }
}
