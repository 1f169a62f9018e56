/**
 * The read path: one DataLoader batch of ids in, their values out, with the cache in front of
 * PostgreSQL.
 *
 *   getMany ─▶ hits are answered
 *      │ misses
 *      ▼
 *   join an in-process flight for the key, or start one:
 *      acquireLocks ─▶ subscribe to the fills of keys another caller holds
 *      ─▶ getMany again (a fill may have landed since the first read)
 *      ─▶ load the keys we hold from PostgreSQL (one statement), fill (one round trip, fenced by
 *         version), release (which wakes the waiters)
 *      ─▶ wait for the fills of the keys others hold, at most `lockWaitMs`, then load them ourselves
 *
 * So a cold key is loaded once across all instances (the lock), and once per instance for however
 * many concurrent requests want it (the flight). A store that fails is never the client's problem:
 * the batch is answered from PostgreSQL ("bypass").
 */
import { randomUUID } from 'node:crypto';
import type { CacheConfig } from '../config.js';
import { DatabaseUnavailableError } from '../db/errors.js';
import type { Logger } from '../observability/logger.js';
import type { Codec } from './codec.js';
import { isCacheStoreError } from './errors.js';
import { createEntryFactory } from './entries.js';
import type { CachedEntity } from './keys.js';
import type { CacheReport, LookupOutcome } from './report.js';
import type { CacheEntry, CacheStore, CacheWrite, Unsubscribe } from './store.js';

export interface EntitySpec<T> {
  readonly entity: CachedEntity;
  readonly keyOf: (id: number) => string;
  /** Logical TTL of a value, seconds (the configured default or volatile TTL). */
  readonly ttlSeconds: number;
  /** Loads the rows of ids from PostgreSQL in one statement; an id without a row is absent. */
  readonly load: (ids: readonly number[]) => Promise<Map<number, T>>;
  /** The version a value is fenced by: the row's `version`, a post list's newest id. */
  readonly versionOf: (value: T) => number;
  readonly codec: Codec<T>;
}

/** Things worth counting or logging that the engine notices; metrics hook in here. */
export interface CacheAsideEvents {
  /** Waiters gave up on another caller's fill after `lockWaitMs` and loaded the keys themselves. */
  lockWaitTimeout?(entity: CachedEntity, keys: number): void;
  /** A lookup's outcome, per key. */
  lookup?(entity: CachedEntity, outcome: LookupOutcome): void;
  /** The store failed; the batch went to PostgreSQL. */
  storeError?(error: unknown, operation: string): void;
}

export interface CacheAsideOptions {
  readonly store: CacheStore;
  readonly config: CacheConfig;
  readonly logger: Logger;
  readonly events?: CacheAsideEvents;
  /** @default Date.now */
  readonly now?: () => number;
  /** Source of the ±10 % TTL jitter. @default Math.random */
  readonly random?: () => number;
}

export interface CacheAside {
  /** Values of ids in order, `null` for ids without a row. Records every lookup in `report`. */
  read<T>(spec: EntitySpec<T>, ids: readonly number[], report: CacheReport): Promise<(T | null)[]>;
}

/** A resolved key: its value, how it was obtained, and its remaining logical TTL when cached. */
interface Resolution<T> {
  readonly value: T | null;
  readonly outcome: LookupOutcome;
  readonly ttlMs: number | undefined;
}

interface Miss {
  readonly id: number;
  readonly key: string;
  /** A logically expired entry still held within the grace period: served if PostgreSQL is down. */
  readonly stale: CacheEntry | undefined;
}

export function createCacheAside(options: CacheAsideOptions): CacheAside {
  const { store, config, logger, events = {} } = options;
  const now = options.now ?? Date.now;
  const entryFactory = createEntryFactory({
    config,
    now,
    ...(options.random ? { random: options.random } : {}),
  });

  // In-process single flight: concurrent batches (other requests) that miss a key another batch of
  // this instance is already resolving wait for that result instead of taking the lock themselves.
  const flights = new Map<string, Promise<Resolution<unknown>>>();

  /** A servable entry's value, or `undefined` if the entry must be treated as a miss. */
  function decodeEntry<T>(spec: EntitySpec<T>, entry: CacheEntry): { value: T | null } | undefined {
    if (entry.kind === 'negative') return { value: null };
    if (entry.kind !== 'value') return undefined;
    try {
      return { value: spec.codec.decode(entry.payload) };
    } catch (error) {
      // A value this code cannot read (corrupt, or written by an incompatible build) is a miss: the
      // fill that follows replaces it.
      logger.warn({ err: error, entity: spec.entity }, 'undecodable cache entry treated as a miss');
      return undefined;
    }
  }

  function fresh<T>(spec: EntitySpec<T>, entry: CacheEntry | undefined, at: number) {
    if (entry === undefined || entry.staleAt <= at) return undefined;
    return decodeEntry(spec, entry);
  }

  /** Loads ids from PostgreSQL with no cache at all: the store is unavailable. */
  async function bypass<T>(spec: EntitySpec<T>, ids: readonly number[]): Promise<Map<number, Resolution<T>>> {
    const rows = await spec.load(ids);
    return new Map(
      ids.map((id) => [id, { value: rows.get(id) ?? null, outcome: 'bypass', ttlMs: undefined }]),
    );
  }

  /**
   * Loads the rows of the keys this caller holds the locks of, and fills them. A fill refused by the
   * fence (a newer version or tombstone landed since we read the row) is simply not stored: the value
   * we read was current when this request read it, and the newer one is already in the cache.
   */
  async function loadAndFill<T>(
    spec: EntitySpec<T>,
    misses: readonly Miss[],
  ): Promise<{ resolved: Map<number, Resolution<T>>; stored: number }> {
    let rows: Map<number, T>;
    try {
      rows = await spec.load(misses.map((m) => m.id));
    } catch (error) {
      // PostgreSQL is down: an expired entry still within its grace beats an error.
      if (error instanceof DatabaseUnavailableError && misses.every((m) => m.stale !== undefined)) {
        return { resolved: serveStale(spec, misses, error), stored: 0 };
      }
      throw error;
    }
    const writes: CacheWrite[] = [];
    const resolved = new Map<number, Resolution<T>>();
    for (const miss of misses) {
      const value = rows.get(miss.id) ?? null;
      writes.push(entryFactory.fill(spec, miss.key, value));
      resolved.set(miss.id, { value, outcome: 'miss', ttlMs: undefined });
    }
    let stored = 0;
    try {
      for (const landed of await store.setMany(writes)) if (landed) stored += 1;
    } catch (error) {
      // The values are correct; only caching them failed. Answer, and let the next reader fill.
      events.storeError?.(error, 'setMany');
    }
    return { resolved, stored };
  }

  function serveStale<T>(
    spec: EntitySpec<T>,
    misses: readonly Miss[],
    cause: unknown,
  ): Map<number, Resolution<T>> {
    const at = now();
    const resolved = new Map<number, Resolution<T>>();
    for (const miss of misses) {
      const decoded = miss.stale ? decodeEntry(spec, miss.stale) : undefined;
      if (decoded === undefined) throw cause;
      resolved.set(miss.id, { value: decoded.value, outcome: 'stale', ttlMs: miss.stale!.staleAt - at });
    }
    return resolved;
  }

  /**
   * Resolves keys that missed, across instances: take the locks we can, wait for the fills of the
   * others. Returns a resolution per id.
   */
  async function resolveMisses<T>(spec: EntitySpec<T>, misses: readonly Miss[], report: CacheReport) {
    const resolved = new Map<number, Resolution<T>>();
    const pending = new Map(misses.map((m) => [m.key, m]));
    const token = randomUUID();
    const held = new Set<string>();
    const subscriptions: Unsubscribe[] = [];
    const subscribed = new Set<string>();
    const deadline = now() + config.lockWaitMs;
    // A notification can arrive while we are between the re-read and the wait; `signalled` keeps it,
    // so the wait that follows returns at once instead of sleeping to the deadline.
    let signalled = false;
    let wake: () => void = () => {};
    const onSignal = () => {
      signalled = true;
      wake();
    };

    const release = async (keys: string[]) => {
      if (keys.length === 0) return;
      for (const key of keys) held.delete(key);
      // Releasing notifies the waiters; a failure only costs them a wait up to the lock's TTL.
      await store
        .releaseLocks(keys, token)
        .catch((error: unknown) => events.storeError?.(error, 'releaseLocks'));
    };

    try {
      while (pending.size > 0) {
        const keys = [...pending.keys()];
        const free = keys.filter((k) => !held.has(k));
        if (free.length > 0) {
          const acquired = await store.acquireLocks(free, token, config.lockTtlMs);
          free.forEach((key, i) => acquired[i] && held.add(key));
        }
        // Subscribe before re-reading: a fill that lands between the re-read and the subscription
        // would otherwise go unnoticed until the deadline.
        const toWatch = keys.filter((k) => !held.has(k) && !subscribed.has(k));
        const unsubscribes = await Promise.all(toWatch.map((key) => store.onFill(key, onSignal)));
        toWatch.forEach((key) => subscribed.add(key));
        subscriptions.push(...unsubscribes);

        // The holder re-reads too: another instance may have filled the key between our first read
        // and our lock (its lock expired or was released just before we asked).
        signalled = false;
        const found = await store.getMany(keys);
        const at = now();
        const filledByOthers: string[] = [];
        const toLoad: Miss[] = [];
        keys.forEach((key, i) => {
          const miss = pending.get(key)!;
          const hit = fresh(spec, found[i], at);
          if (hit !== undefined) {
            resolved.set(miss.id, { value: hit.value, outcome: 'collapsed', ttlMs: found[i]!.staleAt - at });
            pending.delete(key);
            if (held.has(key)) filledByOthers.push(key);
          } else if (held.has(key)) {
            toLoad.push(miss);
          }
        });
        await release(filledByOthers);

        if (toLoad.length > 0) {
          const { resolved: loaded, stored } = await loadAndFill(spec, toLoad);
          report.stored += stored;
          for (const [id, resolution] of loaded) resolved.set(id, resolution);
          for (const miss of toLoad) pending.delete(miss.key);
          await release(toLoad.map((m) => m.key));
        }
        if (pending.size === 0) break;

        const remaining = deadline - now();
        if (remaining <= 0) {
          // The holder is slow or gone. Loading ourselves costs one more SQL statement; making the
          // client wait longer, or fail, would cost more.
          const late = [...pending.values()];
          events.lockWaitTimeout?.(spec.entity, late.length);
          logger.warn(
            { entity: spec.entity, keys: late.length, waitedMs: config.lockWaitMs },
            'lock wait timed out',
          );
          const { resolved: loaded, stored } = await loadAndFill(spec, late);
          report.stored += stored;
          for (const [id, resolution] of loaded) resolved.set(id, resolution);
          pending.clear();
          break;
        }
        if (!signalled) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, remaining);
            wake = () => {
              clearTimeout(timer);
              resolve();
            };
          });
          wake = () => {};
        }
      }
    } catch (error) {
      if (!isCacheStoreError(error)) throw error;
      // The store failed mid-way: whatever is still unresolved comes from PostgreSQL.
      events.storeError?.(error, 'resolveMisses');
      const rest = [...pending.values()];
      for (const [id, resolution] of await bypass(
        spec,
        rest.map((m) => m.id),
      ))
        resolved.set(id, resolution);
    } finally {
      await release([...held]);
      await Promise.all(subscriptions.map((unsubscribe) => unsubscribe().catch(() => {})));
    }
    return resolved;
  }

  return {
    async read<T>(spec: EntitySpec<T>, ids: readonly number[], report: CacheReport) {
      const keys = ids.map(spec.keyOf);
      const resolutions = new Map<number, Resolution<T>>();

      let cached: (CacheEntry | undefined)[];
      try {
        cached = await store.getMany(keys);
      } catch (error) {
        if (!isCacheStoreError(error)) throw error;
        events.storeError?.(error, 'getMany');
        for (const [id, r] of await bypass(spec, ids)) resolutions.set(id, r);
        return finish(spec, ids, keys, resolutions, report);
      }

      const at = now();
      const mine: Miss[] = [];
      const joined: { id: number; key: string; flight: Promise<Resolution<unknown>>; fence: number }[] = [];
      ids.forEach((id, i) => {
        const entry = cached[i];
        const hit = fresh(spec, entry, at);
        if (hit !== undefined) {
          const outcome = hit.value === null ? 'negative_hit' : 'hit';
          resolutions.set(id, { value: hit.value, outcome, ttlMs: entry!.staleAt - at });
          return;
        }
        const flight = flights.get(keys[i]!);
        // A tombstone we saw names a committed version the flight may predate (it may have read the
        // row before that commit): its result counts for us only if it is at least that new. This is
        // enough because a returned write always leaves the key holding a servable value at its
        // version (write-through) or a tombstone (relay, derived keys) — never nothing: a tombstone
        // at the held version leaves the value alone (store.ts). consistency.test.ts, race 2.
        if (flight !== undefined)
          joined.push({ id, key: keys[i]!, flight, fence: entry?.kind === 'tombstone' ? entry.version : 0 });
        else mine.push({ id, key: keys[i]!, stale: entry?.kind === 'tombstone' ? undefined : entry });
      });

      if (mine.length > 0) {
        // Registered before the first await, so batches arriving meanwhile join instead of racing.
        const work = resolveMisses(spec, mine, report);
        for (const miss of mine) {
          const flight = work.then((resolved) => resolved.get(miss.id)!);
          flights.set(miss.key, flight);
          // Forget the flight once settled; its result lives on in the cache.
          void flight.then(
            () => flights.get(miss.key) === flight && flights.delete(miss.key),
            () => flights.get(miss.key) === flight && flights.delete(miss.key),
          );
        }
        for (const [id, r] of await work) resolutions.set(id, r);
      }
      const tooOld: Miss[] = [];
      for (const { id, key, flight, fence } of joined) {
        const r = (await flight) as Resolution<T>;
        if ((r.value === null ? 0 : spec.versionOf(r.value)) < fence) {
          tooOld.push({ id, key, stale: undefined });
          continue;
        }
        // Another request of this instance did the work: for this one it was a wait for a fill.
        const outcome = r.outcome === 'miss' || r.outcome === 'hit' ? 'collapsed' : r.outcome;
        resolutions.set(id, { ...r, outcome });
      }
      if (tooOld.length > 0) {
        for (const [id, r] of await resolveMisses(spec, tooOld, report)) resolutions.set(id, r);
      }
      return finish(spec, ids, keys, resolutions, report);
    },
  };

  function finish<T>(
    spec: EntitySpec<T>,
    ids: readonly number[],
    keys: readonly string[],
    resolutions: Map<number, Resolution<T>>,
    report: CacheReport,
  ): (T | null)[] {
    return ids.map((id, i) => {
      const r = resolutions.get(id)!;
      report.record({
        entity: spec.entity,
        key: keys[i]!,
        tier: store.tier,
        outcome: r.outcome,
        ttlMs: r.ttlMs,
      });
      events.lookup?.(spec.entity, r.outcome);
      return r.value;
    });
  }
}
