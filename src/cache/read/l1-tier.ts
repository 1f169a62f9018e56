/**
 * The optional in-process tier ("L1", `CACHE_L1_MAX_ENTRIES` > 0): a size-bounded LRU of cache
 * entries in front of the store, so the hottest keys are answered without a network round trip.
 *
 *   DataLoader ─▶ L1 (this file) ─▶ store (Redis) ─▶ PostgreSQL
 *
 * L1 is a copy of a copy. It only ever holds what the store held or accepted a moment ago — entries
 * reach it through `l1Layer(store, l1)` (l1-layer.ts), which watches the store's reads and fenced writes — and keeps each
 * for at most `CACHE_L1_TTL_MS`, never past the entry's logical expiry. Coherence across instances:
 *
 * - an invalidation event (the relay publishes one per committed change) evicts every entry older
 *   than the version it names, and that version is remembered as a *fence*: a read that was in flight
 *   when the event arrived cannot put the older version back (the L1 twin of the store's fence);
 * - a tombstone read from the store, and a write the store refused, are fences too;
 * - when a connection to Redis comes back after a loss (the event subscription, or the command
 *   connection: Redis may have restarted), events may have been missed: L1 is
 *   cleared, and reads that started before the clear are not allowed to refill it (`generation`).
 *
 * So after a mutation returns, another instance may serve the older version until the event reaches
 * it (the relay's poll interval plus a publish), and never longer than `CACHE_L1_TTL_MS` even if the
 * event is lost: the coherence window of docs/scaling.md, measured by test/read-path/l1-coherence.test.ts.
 * The writing instance itself never lags: its write-through passes through that layer.
 */
import { LRUCache } from 'lru-cache';
import type { CacheConfig } from '../../config.js';
import type { Logger } from '../../observability/logger.js';
import type { EntitySpec } from '../entities/entity-spec.js';
import { freshValue, type Resolution } from './resolution.js';
import type { CacheEntry } from '../store/contract.js';

/** The RFC 9211 cache name of this tier in `Cache-Status`. */
export const L1_TIER = 'cacheside-l1';

export interface L1Options {
  /** Most entries held at once; the least recently used go first. A positive integer. */
  readonly maxEntries: number;
  /** Longest an entry is served from L1 after the store held it, ms. A positive integer. */
  readonly ttlMs: number;
  /**
   * How long the version of an invalidation is remembered as a fence, ms: longer than any store call
   * can be in flight, so that a reply read before the event cannot land after it. @default 60_000
   */
  readonly fenceTtlMs?: number;
  /** The clock, epoch ms (entries' `staleAt` is epoch ms). Tests pass a fake one. @default Date.now */
  readonly now?: () => number;
}

export interface L1Tier {
  readonly tier: typeof L1_TIER;
  /** Entries currently held (fences not counted). */
  readonly size: number;
  /**
   * Answers the ids L1 holds fresh, as resolutions (outcome `hit` or `negative_hit`, tier
   * `cacheside-l1`); ids absent from the result go on to the store. No I/O.
   */
  resolve<T>(spec: EntitySpec<T>, ids: readonly number[], logger: Logger): Map<number, Resolution<T>>;
  /** A servable entry for `key`, or undefined. */
  get(key: string): CacheEntry | undefined;
  /**
   * Offers an entry the store held (or accepted) at `since`, epoch ms. Kept unless L1 knows a newer
   * version (held or fenced) or was cleared since; kept until `since + ttlMs` or its `staleAt`,
   * whichever is first. A tombstone is a fence, never an entry.
   */
  offer(key: string, entry: CacheEntry, since: number, generation?: number): void;
  /**
   * `key` changed at `version`: evicts a held entry older than that and fences older ones out for
   * `fenceTtlMs`. Idempotent and order-tolerant: a duplicate or an older event changes nothing.
   */
  invalidate(key: string, version: number): void;
  /** Forgets every entry (events may have been missed); reads in flight may not refill it. */
  clear(): void;
  /** Bumped by `clear()`; an offer made for an older generation is dropped. */
  readonly generation: number;
  /**
   * Calls `listener` each time L1 learns that `key` is at `version` or newer: an invalidation, a
   * fence, an entry offered (kept or not). What keeps copies of its own built from entries — the
   * response tier's answers (src/cache/response/response-memo.ts) — drops the older ones then, as L1
   * drops its entries. Returns a function that stops the calls.
   */
  onNewer(listener: (key: string, version: number) => void): () => void;
  /** `ttlMs` of the options: the longest anything is served from L1 after the store vouched for it. */
  readonly ttlMs: number;
  /** The tier's clock, epoch ms: entries' lives are measured by it. */
  readonly now: () => number;
}

/** The L1 tier the configuration asks for, or undefined when it is off (`CACHE_L1_MAX_ENTRIES=0`). */
export function createL1TierFromConfig(config: CacheConfig): L1Tier | undefined {
  if (config.l1MaxEntries === 0) return undefined;
  return createL1Tier({ maxEntries: config.l1MaxEntries, ttlMs: config.l1TtlMs });
}

export function createL1Tier(options: L1Options): L1Tier {
  const { maxEntries, ttlMs } = options;
  const fenceTtlMs = options.fenceTtlMs ?? 60_000;
  const now = options.now ?? Date.now;
  for (const [name, value] of [
    ['maxEntries', maxEntries],
    ['ttlMs', ttlMs],
    ['fenceTtlMs', fenceTtlMs],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new TypeError(`L1 ${name} must be a positive integer, got ${String(value)}`);
    }
  }
  // Our clock for lru-cache's TTLs too (ttlResolution 0: read it on every check, no timers), so an
  // entry's life and its `staleAt` are measured by one clock.
  const perf = { now };
  const entries = new LRUCache<string, CacheEntry>({ max: maxEntries, perf, ttlResolution: 0 });
  const fences = new LRUCache<string, number>({ max: maxEntries, ttl: fenceTtlMs, perf, ttlResolution: 0 });
  let generation = 0;
  const listeners = new Set<(key: string, version: number) => void>();
  const learned = (key: string, version: number) => {
    for (const listener of listeners) listener(key, version);
  };

  function get(key: string): CacheEntry | undefined {
    const entry = entries.get(key);
    // lru-cache expires by TTL; the logical expiry is checked too, for an entry offered at its edge.
    return entry !== undefined && entry.staleAt > now() ? entry : undefined;
  }

  function invalidate(key: string, version: number): void {
    if ((fences.get(key) ?? -1) < version) fences.set(key, version);
    const held = entries.peek(key);
    if (held !== undefined && held.version < version) entries.delete(key);
    learned(key, version);
  }

  function offer(key: string, entry: CacheEntry, since: number, offeredIn = generation): void {
    if (entry.kind === 'tombstone') return invalidate(key, entry.version);
    hold(key, entry, since, offeredIn);
    // Even when it was not kept (cleared since, its life over): the store held this version.
    learned(key, entry.version);
  }

  function hold(key: string, entry: CacheEntry, since: number, offeredIn: number): void {
    if (offeredIn !== generation) return;
    if (entry.version < (fences.get(key) ?? 0)) return;
    const held = entries.peek(key);
    if (held !== undefined && held.version > entry.version) return;
    const life = Math.floor(Math.min(since + ttlMs, entry.staleAt) - now());
    if (life < 1) return;
    // A copy: a Redis reply's payload is a view into a larger buffer we must not keep alive.
    entries.set(key, { ...entry, payload: entry.payload.slice() }, { ttl: life });
  }

  function resolve<T>(spec: EntitySpec<T>, ids: readonly number[], logger: Logger) {
    const at = now();
    const resolved = new Map<number, Resolution<T>>();
    for (const id of ids) {
      const entry = get(spec.keyOf(id));
      const hit = freshValue(spec, entry, at, logger);
      if (hit === undefined) continue;
      resolved.set(id, {
        value: hit.value,
        outcome: hit.value === null ? 'negative_hit' : 'hit',
        ttlMs: entry!.staleAt - at,
        tier: L1_TIER,
      });
    }
    return resolved;
  }

  const l1: L1Tier = {
    tier: L1_TIER,
    get size() {
      return entries.size;
    },
    get generation() {
      return generation;
    },
    ttlMs,
    resolve,
    get,
    offer,
    invalidate,
    onNewer(listener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
    clear() {
      generation += 1;
      entries.clear();
    },
    now,
  };
  return l1;
}
