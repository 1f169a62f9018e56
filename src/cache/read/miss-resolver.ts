/**
 * Resolves the keys of a batch that missed, across instances. Each round:
 *
 *   acquire ─▶ the locks of pending keys, and what each key holds right after (one round trip): a
 *              fill may have landed since the first read
 *   watch   ─▶ subscribe to the fills of keys another caller holds, then re-read those (a fill may
 *              have landed between the acquire and the subscription); only when contended
 *   load    ─▶ the keys we hold, from PostgreSQL in one statement; fill under the grant the lock is
 *              (fenced by version; the grant is released, which wakes the waiters; one round trip)
 *   wait    ─▶ for the fills of the keys others hold, until `lockWaitMs` has passed since the start;
 *              then load them ourselves, and answer without filling
 *
 * So an uncontended cold batch costs three round trips: cache-aside's read, the acquire, the fill
 * (test/read-path/miss-resolver.test.ts counts them).
 *
 * The naive pattern (sleep, then load anyway; DEL the lock in `finally`) sends every caller to the
 * database once a load outlasts the sleep, and lets a caller delete a lock it never held. Here a
 * waiter is woken by the fill itself, and only the token that took a lock can release it.
 *
 * A fill lands only under its grant, which every write to the key revokes: a fill that read the row
 * before a write can never land after it, even if Redis lost that write (flushed, restarted empty,
 * evicted) — the version fence alone cannot stop that, since the newer version is gone with the key.
 * So a caller without a grant (its wait timed out) does not fill: it could be exactly that late fill.
 * test/resilience/late-fill.test.ts makes the race happen with each fault.
 */
import type { CacheConfig } from '../../config.js';
import { DatabaseUnavailableError } from '../../db/errors.js';
import type { CacheReport } from '../../observability/cache-report.js';
import type { Logger } from '../../observability/logger.js';
import type { EntryFactory } from '../entities/entries.js';
import type { EntitySpec } from '../entities/entity-spec.js';
import type { CacheEntry, CacheStore } from '../store/contract.js';
import { isCacheStoreError } from '../store/errors.js';
import type { BypassLoads } from './bypass.js';
import { createFillWatch, type FillWatch } from './fill-watch.js';
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
  /** The instance's read clock (cache-aside.ts): stamps each resolution's `readAt`. */
  readonly tick: () => number;
  /** Where what the store cannot answer goes (shared with cache-aside). */
  readonly bypass: BypassLoads;
}

/**
 * Most negative entries (unknown ids) one request may add to the store: an anonymous client asking
 * for unknown ids can make Redis hold at most this many ~100-byte entries per request, each for the
 * negative TTL (docs/operations.md, "Memory"). The other unknown ids of the request are answered, not
 * cached.
 */
export const MAX_NEGATIVE_FILLS_PER_REQUEST = 20;

export interface MissResolver {
  /** Resolves misses with locks, waits, loads and fenced fills. */
  resolve<T>(
    spec: EntitySpec<T>,
    misses: readonly Miss[],
    report: CacheReport,
  ): Promise<Map<number, Resolution<T>>>;
}

export function createMissResolver({
  store,
  config,
  logger,
  events,
  entries,
  now,
  tick,
  bypass,
}: MissResolverDeps): MissResolver {
  /**
   * Loads the rows of misses from PostgreSQL and, under `grant` (the locks this caller holds on
   * them), fills them. A fill that does not land (fenced: something newer is cached; revoked: a write
   * came after our read) is not stored: the value we read was current when this request read it, and
   * the newer one reaches the cache by its own writer. Without a grant nothing is filled.
   */
  async function loadAndFill<T>(
    spec: EntitySpec<T>,
    misses: readonly Miss[],
    report: CacheReport,
    grant: HeldLocks | undefined,
  ) {
    let rows: Map<number, T>;
    const readAt = tick();
    try {
      rows = await spec.load(misses.map((m) => m.id));
    } catch (error) {
      if (error instanceof DatabaseUnavailableError) return staleOrFail(spec, misses, error);
      throw error;
    }
    const resolved = new Map<number, Resolution<T>>();
    for (const miss of misses) {
      resolved.set(miss.id, { value: rows.get(miss.id) ?? null, outcome: 'miss', ttlMs: undefined, readAt });
    }
    if (grant === undefined) return resolved;

    const filled: Miss[] = [];
    const unfilled: string[] = [];
    for (const miss of misses) {
      const negative = resolved.get(miss.id)!.value === null;
      if (negative && report.negativeFills >= MAX_NEGATIVE_FILLS_PER_REQUEST) unfilled.push(miss.key);
      else {
        if (negative) report.negativeFills += 1;
        filled.push(miss);
      }
    }
    await grant.release(unfilled);
    if (filled.length === 0) return resolved;
    const filledAt = tick();
    try {
      const outcomes = await store.fillMany(
        filled.map((miss) => entries.fill(spec, miss.key, resolved.get(miss.id)!.value)),
        grant.token,
      );
      // Each of these locks is gone now: released by the fill, or lost before it.
      grant.forget(filled.map((miss) => miss.key));
      filled.forEach((miss, i) => {
        // Renewed: the key held this version already and now holds it with the fill's expiry. For a
        // request that joined this flight it is as good as stored (contract.ts, FillOutcome): without
        // it, every request that joined a refill of an unchanged row (an entry past its staleAt)
        // would resolve again (cache-aside.ts; test/read-path/cache-aside.test.ts, "a refill of an
        // unchanged row …").
        if (outcomes[i] !== 'stored' && outcomes[i] !== 'renewed') return;
        report.stored += 1;
        resolved.set(miss.id, { ...resolved.get(miss.id)!, filledAt });
      });
    } catch (error) {
      // The values are correct; only caching them failed. Answer, and let the next reader fill (the
      // locks are still ours: released in `resolve`'s finally).
      events.storeError?.(error, 'fillMany');
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
          : {
              value: decoded.value,
              outcome: 'stale',
              ttlMs: miss.stale!.staleAt - at,
              ...(miss.staleReadAt !== undefined && { readAt: miss.staleReadAt }),
            },
      );
    }
    return resolved;
  }

  /**
   * A round's reads, sorted: keys that are fresh now were filled by another caller (for us, a wait
   * for a fill: `collapsed`); of the rest, the ones we hold are ours to load, the others we wait for.
   */
  function sortReads<T>(
    spec: EntitySpec<T>,
    pending: ReadonlyMap<string, Miss>,
    found: ReadonlyMap<string, CacheEntry | undefined>,
    readAt: number,
    locks: HeldLocks,
  ) {
    const at = now();
    const filled: { miss: Miss; resolution: Resolution<T> }[] = [];
    const filledWhileHeld: string[] = [];
    const toLoad: Miss[] = [];
    for (const [key, miss] of pending) {
      const entry = found.get(key);
      const hit = freshValue(spec, entry, at, logger);
      if (hit !== undefined) {
        const ttlMs = entry!.staleAt - at;
        const resolution = { value: hit.value, outcome: 'collapsed', ttlMs, readAt } as const;
        filled.push({ miss, resolution });
        if (locks.has(key)) filledWhileHeld.push(key);
      } else if (locks.has(key)) {
        toLoad.push(miss);
      }
    }
    return { filled, filledWhileHeld, toLoad };
  }

  /**
   * The reads of a round: lock and read every pending key in one round trip; then, for keys another
   * caller holds that we did not watch yet, subscribe and read them again — a fill that landed
   * between the first read and the subscription would otherwise be waited for until the deadline.
   * Keys watched in an earlier round need no second read: their subscription was active before the
   * first, and `rearm()` came before it, so a fill after it wakes the wait at once.
   */
  async function readRound<T>(
    spec: EntitySpec<T>,
    pending: ReadonlyMap<string, Miss>,
    locks: HeldLocks,
    fills: FillWatch,
  ) {
    fills.rearm();
    const readAt = tick();
    const found = await locks.acquire([...pending.keys()]);
    const at = now();
    const contended = [...found]
      .filter(([key, entry]) => !locks.has(key) && freshValue(spec, entry, at, logger) === undefined)
      .map(([key]) => key);
    const newlyWatched = await fills.watch(contended);
    if (newlyWatched.length > 0) {
      events.lockWait?.(spec.entity, newlyWatched.length);
      const again = await store.getMany(newlyWatched);
      newlyWatched.forEach((key, i) => found.set(key, again[i]));
    }
    return sortReads(spec, pending, found, readAt, locks);
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
        // The holder reads too: another instance may have filled the key between our first read and
        // our lock (its lock expired or was released just before we asked).
        const { filled, filledWhileHeld, toLoad } = await readRound(spec, pending, locks, fills);
        for (const { miss, resolution } of filled) {
          resolved.set(miss.id, resolution);
          pending.delete(miss.key);
        }
        await locks.release(filledWhileHeld);

        if (toLoad.length > 0) {
          settle(await loadAndFill(spec, toLoad, report, locks), toLoad);
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
          settle(await loadAndFill(spec, late, report, undefined), late);
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
        await bypass.load(
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

  return { resolve };
}
