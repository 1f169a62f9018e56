/**
 * Resolves the keys of a batch that missed, across instances:
 *
 *   acquireLocks ─▶ subscribe to the fills of keys another caller holds
 *   ─▶ getMany again (a fill may have landed since the first read)
 *   ─▶ load the keys we hold from PostgreSQL (one statement), fill (one round trip, fenced by
 *      version), release (compare-and-delete, which wakes the waiters)
 *   ─▶ wait for the fills of the keys others hold, at most `lockWaitMs`, then load them ourselves
 *
 * The naive pattern (sleep, then load anyway; DEL the lock in `finally`) sends every caller to the
 * database once a load outlasts the sleep, and lets a caller delete a lock it never held. Here a
 * waiter is woken by the fill itself, and only the token that took a lock can release it.
 */
import { randomUUID } from 'node:crypto';
import type { CacheConfig } from '../../config.js';
import { DatabaseUnavailableError } from '../../db/errors.js';
import type { Logger } from '../../observability/logger.js';
import type { CacheAsideEvents } from './cache-aside.js';
import type { EntryFactory } from '../entities/entries.js';
import { decodeEntry, freshValue, type EntitySpec, type Miss, type Resolution } from '../entities/entity-spec.js';
import { isCacheStoreError } from '../store/errors.js';
import type { CacheReport } from '../../observability/cache-report.js';
import type { CacheStore, CacheWrite, Unsubscribe } from '../store/contract.js';

export interface MissResolverDeps {
  readonly store: CacheStore;
  readonly config: CacheConfig;
  readonly logger: Logger;
  readonly events: CacheAsideEvents;
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
  /** Loads ids from PostgreSQL with no cache at all: the store is unavailable. */
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

  async function resolve<T>(spec: EntitySpec<T>, misses: readonly Miss[], report: CacheReport) {
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
    const settle = (loaded: Map<number, Resolution<T>>, done: readonly Miss[]) => {
      for (const [id, resolution] of loaded) resolved.set(id, resolution);
      for (const miss of done) pending.delete(miss.key);
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
        subscriptions.push(...(await Promise.all(toWatch.map((key) => store.onFill(key, onSignal)))));
        toWatch.forEach((key) => subscribed.add(key));
        if (toWatch.length > 0) events.lockWait?.(spec.entity, toWatch.length);

        // The holder re-reads too: another instance may have filled the key between our first read
        // and our lock (its lock expired or was released just before we asked).
        signalled = false;
        const found = await store.getMany(keys);
        const at = now();
        const filledByOthers: string[] = [];
        const toLoad: Miss[] = [];
        keys.forEach((key, i) => {
          const miss = pending.get(key)!;
          const hit = freshValue(spec, found[i], at, logger);
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
          settle(await loadAndFill(spec, toLoad, report), toLoad);
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
          settle(await loadAndFill(spec, late, report), late);
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
      settle(
        await bypass(
          spec,
          rest.map((m) => m.id),
        ),
        rest,
      );
    } finally {
      await release([...held]);
      await Promise.all(subscriptions.map((unsubscribe) => unsubscribe().catch(() => {})));
    }
    return resolved;
  }

  return { resolve, bypass };
}
