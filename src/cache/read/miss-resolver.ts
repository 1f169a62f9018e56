/**
 * Resolves the keys of a batch that missed, across instances. Each round:
 *
 *   acquire ─▶ the locks of pending keys (one round trip)
 *   watch   ─▶ subscribe to the fills of keys another caller holds
 *   re-read ─▶ getMany again: a fill may have landed since the first read
 *   load    ─▶ the keys we hold, from PostgreSQL in one statement; fill (fenced by version, one round
 *              trip); release (compare-and-delete, which wakes the waiters)
 *   wait    ─▶ for the fills of the keys others hold, until `lockWaitMs` has passed since the start;
 *              then load them ourselves
 *
 * The naive pattern (sleep, then load anyway; DEL the lock in `finally`) sends every caller to the
 * database once a load outlasts the sleep, and lets a caller delete a lock it never held. Here a
 * waiter is woken by the fill itself, and only the token that took a lock can release it.
 */
import type { CacheConfig } from '../../config.js';
import { DatabaseUnavailableError } from '../../db/errors.js';
import type { CacheReport } from '../../observability/cache-report.js';
import type { Logger } from '../../observability/logger.js';
import type { EntryFactory } from '../entities/entries.js';
import type { EntitySpec } from '../entities/entity-spec.js';
import type { CacheStore, CacheWrite } from '../store/contract.js';
import { isCacheStoreError } from '../store/errors.js';
import { createFillWatch } from './fill-watch.js';
import { createHeldLocks, type HeldLocks } from './held-locks.js';
import type { ReadEvents } from './read-events.js';
import { decodeEntry, freshValue, type Miss, type Resolution } from './resolution.js';

export interface MissResolverDeps {
  readonly store: CacheStore;
  readonly config: CacheConfig;
  readonly logger: Logger;
  readonly events: ReadEvents;
  readonly entries: EntryFactory;
  readonly now: () => number;
}

export interface MissResolver {
  /** Resolves misses with locks, waits, loads and fenced fills. */
  resolve<T>(
    spec: EntitySpec<T>,
    misses: readonly Miss[],
    report: CacheReport,
  ): Promise<Map<number, Resolution<T>>>;
  /** Loads ids from PostgreSQL with no cache at all: the store is unavailable. */
  bypass<T>(spec: EntitySpec<T>, ids: readonly number[]): Promise<Map<number, Resolution<T>>>;
}

export function createMissResolver({
  store,
  config,
  logger,
  events,
  entries,
  now,
}: MissResolverDeps): MissResolver {
  async function bypass<T>(spec: EntitySpec<T>, ids: readonly number[]): Promise<Map<number, Resolution<T>>> {
    const rows = await spec.load(ids);
    return new Map(
      ids.map((id) => [id, { value: rows.get(id) ?? null, outcome: 'bypass', ttlMs: undefined }]),
    );
  }

  /**
   * Loads the rows of keys this caller may load, and fills them. A fill refused by the fence (a newer
   * version or tombstone landed since we read the row) is not stored: the value we read was current
   * when this request read it, and the newer one is already in the cache.
   */
  async function loadAndFill<T>(spec: EntitySpec<T>, misses: readonly Miss[], report: CacheReport) {
    let rows: Map<number, T>;
    try {
      rows = await spec.load(misses.map((m) => m.id));
    } catch (error) {
      if (error instanceof DatabaseUnavailableError) return staleOrFail(spec, misses, error);
      throw error;
    }
    const writes: CacheWrite[] = [];
    const resolved = new Map<number, Resolution<T>>();
    for (const miss of misses) {
      const value = rows.get(miss.id) ?? null;
      writes.push(entries.fill(spec, miss.key, value));
      resolved.set(miss.id, { value, outcome: 'miss', ttlMs: undefined });
    }
    try {
      for (const landed of await store.setMany(writes)) if (landed) report.stored += 1;
    } catch (error) {
      // The values are correct; only caching them failed. Answer, and let the next reader fill.
      events.storeError?.(error, 'setMany');
    }
    return resolved;
  }

  /**
   * PostgreSQL is down: an expired entry still within its grace beats an error. Keys with nothing to
   * serve fail alone, so one uncached id does not take the cached ones of its batch down with it.
   */
  function staleOrFail<T>(spec: EntitySpec<T>, misses: readonly Miss[], cause: DatabaseUnavailableError) {
    const at = now();
    const resolved = new Map<number, Resolution<T>>();
    for (const miss of misses) {
      const decoded = miss.stale ? decodeEntry(spec, miss.stale, logger) : undefined;
      resolved.set(
        miss.id,
        decoded === undefined
          ? { value: null, outcome: 'miss', ttlMs: undefined, error: cause }
          : { value: decoded.value, outcome: 'stale', ttlMs: miss.stale!.staleAt - at },
      );
    }
    return resolved;
  }

  /**
   * The re-read of a round: keys that are fresh now were filled by another caller (for us, a wait for
   * a fill: `collapsed`); of the rest, the ones we hold are ours to load, the others we wait for.
   */
  async function reread<T>(spec: EntitySpec<T>, pending: ReadonlyMap<string, Miss>, locks: HeldLocks) {
    const keys = [...pending.keys()];
    const found = await store.getMany(keys);
    const at = now();
    const filled: { miss: Miss; resolution: Resolution<T> }[] = [];
    const filledWhileHeld: string[] = [];
    const toLoad: Miss[] = [];
    keys.forEach((key, i) => {
      const miss = pending.get(key)!;
      const hit = freshValue(spec, found[i], at, logger);
      if (hit !== undefined) {
        const resolution = { value: hit.value, outcome: 'collapsed', ttlMs: found[i]!.staleAt - at } as const;
        filled.push({ miss, resolution });
        if (locks.has(key)) filledWhileHeld.push(key);
      } else if (locks.has(key)) {
        toLoad.push(miss);
      }
    });
    return { filled, filledWhileHeld, toLoad };
  }

  async function resolve<T>(spec: EntitySpec<T>, misses: readonly Miss[], report: CacheReport) {
    const resolved = new Map<number, Resolution<T>>();
    const pending = new Map(misses.map((m) => [m.key, m]));
    const settle = (answers: ReadonlyMap<number, Resolution<T>>, done: readonly Miss[]) => {
      for (const [id, resolution] of answers) resolved.set(id, resolution);
      for (const miss of done) pending.delete(miss.key);
    };
    const locks = createHeldLocks(store, config.lockTtlMs, (error) =>
      events.storeError?.(error, 'releaseLocks'),
    );
    const fills = createFillWatch(store);
    const deadline = now() + config.lockWaitMs;

    try {
      while (pending.size > 0) {
        const keys = [...pending.keys()];
        await locks.acquire(keys);
        const watched = await fills.watch(keys.filter((key) => !locks.has(key)));
        if (watched > 0) events.lockWait?.(spec.entity, watched);

        // The holder re-reads too: another instance may have filled the key between our first read
        // and our lock (its lock expired or was released just before we asked).
        fills.rearm();
        const { filled, filledWhileHeld, toLoad } = await reread(spec, pending, locks);
        for (const { miss, resolution } of filled) {
          resolved.set(miss.id, resolution);
          pending.delete(miss.key);
        }
        await locks.release(filledWhileHeld);

        if (toLoad.length > 0) {
          settle(await loadAndFill(spec, toLoad, report), toLoad);
          await locks.release(toLoad.map((m) => m.key));
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
          settle(await loadAndFill(spec, late, report), late);
          break;
        }
        await fills.wait(remaining);
      }
    } catch (error) {
      if (!isCacheStoreError(error)) throw error;
      // The store failed mid-way: whatever is still unresolved comes from PostgreSQL.
      events.storeError?.(error, 'resolveMisses');
      const rest = [...pending.values()];
      settle(
        await bypass(
          spec,
          rest.map((m) => m.id),
        ),
        rest,
      );
    } finally {
      await locks.releaseAll();
      await fills.close();
    }
    return resolved;
  }

  return { resolve, bypass };
}
