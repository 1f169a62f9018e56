/**
 * The read path: one DataLoader batch of ids in, their values out, with the cache in front of
 * PostgreSQL.
 *
 *   getMany ─▶ hits (and negative entries) are answered
 *      │ misses
 *      ▼
 *   join this instance's flight for the key, or start one ─▶ miss-resolver.ts (locks, one SQL
 *   statement for the keys we hold, fenced fills, waiting for other instances' fills)
 *
 * So a cold key is loaded once across all instances (the lock), and once per instance for however
 * many concurrent requests want it (the flight). A store that fails is never the client's problem:
 * the batch is answered from PostgreSQL ("bypass").
 */
import type { CacheConfig } from '../../config.js';
import type { CacheReport, LookupOutcome } from '../../observability/cache-report.js';
import type { Logger } from '../../observability/logger.js';
import type { EntryFactory } from '../entities/entries.js';
import type { EntitySpec } from '../entities/entity-spec.js';
import type { CacheEntry, CacheStore } from '../store/contract.js';
import { isCacheStoreError } from '../store/errors.js';
import type { L1Tier } from './l1-tier.js';
import { createBypassLoads } from './bypass.js';
import { createMissResolver } from './miss-resolver.js';
import type { ReadEvents } from './read-events.js';
import { freshValue, type Miss, type Resolution } from './resolution.js';

export interface CacheAsideOptions {
  /** The store; with an L1 tier, `l1Layer(store, l1)`, so that what it reads and fills reaches L1. */
  readonly store: CacheStore;
  /** The optional in-process tier, consulted before the store. @default none */
  readonly l1?: L1Tier;
  readonly config: CacheConfig;
  /** Builds the fills (the same factory the write path uses, so both jitter and expire alike). */
  readonly entries: EntryFactory;
  readonly logger: Logger;
  readonly events?: ReadEvents;
  /** The clock entries' `staleAt` is read against, epoch ms. @default Date.now */
  readonly now?: () => number;
}

export interface CacheAside {
  /**
   * Values of ids in order, `null` for ids without a row, an Error for an id that could not be
   * answered (DataLoader rejects just that key). Records every lookup in `report`.
   */
  read<T>(spec: EntitySpec<T>, ids: readonly number[], report: CacheReport): Promise<(T | null | Error)[]>;
}

interface Joined {
  readonly id: number;
  readonly key: string;
  readonly flight: Promise<Resolution<unknown>>;
  /** When this request joined (read clock): the flight's read must have been issued at or after it. */
  readonly joinedAt: number;
}

export function createCacheAside(options: CacheAsideOptions): CacheAside {
  const { store, l1, config, entries, logger, events = {} } = options;
  const now = options.now ?? Date.now;
  // The read clock: orders, within this process, when reads were issued and when requests joined
  // them. A counter, not a timestamp, so that two events of one millisecond are still ordered.
  let clock = 0;
  const tick = () => ++clock;
  const bypass = createBypassLoads(tick);
  const misses = createMissResolver({ store, config, logger, events, entries, now, tick, bypass });

  // In-process single flight: concurrent batches (other requests) that miss a key another batch of
  // this instance is already resolving wait for that result instead of taking the lock themselves.
  const flights = new Map<string, Promise<Resolution<unknown>>>();

  function startFlights<T>(spec: EntitySpec<T>, mine: readonly Miss[], report: CacheReport) {
    const work = misses.resolve(spec, mine, report);
    // Registered before the first await, so batches arriving meanwhile join instead of racing.
    for (const miss of mine) {
      const flight = work.then((resolved) => resolved.get(miss.id)!);
      flights.set(miss.key, flight);
      // Forget the flight once settled; its result lives on in the cache.
      const forget = () => flights.get(miss.key) === flight && flights.delete(miss.key);
      void flight.then(forget, forget);
    }
    return work;
  }

  async function read<T>(spec: EntitySpec<T>, asked: readonly number[], report: CacheReport) {
    const resolutions = new Map<number, Resolution<T>>();
    const take = (resolved: Map<number, Resolution<T>>) => {
      for (const [id, r] of resolved) resolutions.set(id, r);
    };
    // The in-process tier first, when on: the ids it answers go no further.
    if (l1) {
      report.l1Tier = l1.tier;
      take(l1.resolve(spec, asked, logger));
      if (resolutions.size === asked.length)
        return finish(spec, asked, asked.map(spec.keyOf), resolutions, report);
    }
    const ids = resolutions.size === 0 ? asked : asked.filter((id) => !resolutions.has(id));
    const keys = ids.map(spec.keyOf);

    let cached: (CacheEntry | undefined)[];
    const readAt = tick();
    try {
      cached = await bypass.track(keys, () => store.getMany(keys));
    } catch (error) {
      if (!isCacheStoreError(error)) throw error;
      events.storeError?.(error, 'getMany');
      take(await bypass.load(spec, ids));
      return finish(spec, asked, asked.map(spec.keyOf), resolutions, report);
    }

    const at = now();
    const mine: Miss[] = [];
    const joined: Joined[] = [];
    ids.forEach((id, i) => {
      const entry = cached[i];
      const key = keys[i]!;
      const hit = freshValue(spec, entry, at, logger);
      if (hit !== undefined) {
        const outcome = hit.value === null ? 'negative_hit' : 'hit';
        resolutions.set(id, { value: hit.value, outcome, ttlMs: entry!.staleAt - at });
        return;
      }
      const flight = flights.get(key);
      const stale = entry?.kind === 'tombstone' ? undefined : entry;
      if (flight !== undefined) joined.push({ id, key, flight, joinedAt: tick() });
      else mine.push({ id, key, stale, staleReadAt: readAt });
    });

    if (mine.length > 0) take(await startFlights(spec, mine, report));

    // A flight's result counts for a request that joined it only if that request was already
    // waiting when the read behind it was issued, or when the fill that stored it (under its grant)
    // was sent. Otherwise a write may have returned before this request began and after that read:
    // a load sent earlier can predate it, and so can a fill that landed just before the write revoked
    // its grant while the flight was still settling. Such a request resolves again.
    // Proven by test/write-path/stale-set-race.test.ts and test/resilience/late-fill.test.ts.
    const tooOld: Miss[] = [];
    for (const { id, key, flight, joinedAt } of joined) {
      const r = (await flight) as Resolution<T>;
      if (!((r.readAt ?? -1) >= joinedAt || (r.filledAt ?? -1) >= joinedAt)) {
        tooOld.push({ id, key, stale: undefined });
        continue;
      }
      // Another request of this instance did the work: for this one it was a wait for a fill.
      const outcome = r.outcome === 'miss' || r.outcome === 'hit' ? 'collapsed' : r.outcome;
      resolutions.set(id, { ...r, outcome });
    }
    if (tooOld.length > 0) take(await misses.resolve(spec, tooOld, report));

    return finish(spec, asked, ids === asked ? keys : asked.map(spec.keyOf), resolutions, report);
  }

  function finish<T>(
    spec: EntitySpec<T>,
    ids: readonly number[],
    keys: readonly string[],
    resolutions: Map<number, Resolution<T>>,
    report: CacheReport,
  ): (T | null | Error)[] {
    const tally = new Map<LookupOutcome, number>();
    const values = ids.map((id, i) => {
      const r = resolutions.get(id)!;
      report.record({
        entity: spec.entity,
        key: keys[i]!,
        tier: r.tier ?? store.tier,
        outcome: r.outcome,
        ttlMs: r.ttlMs,
        version: r.error ? undefined : r.value === null ? 0 : spec.versionOf(r.value),
        absent: r.value === null,
        // A value read from the store has a remaining TTL; a load has one only once its fill landed.
        cached: r.ttlMs !== undefined || r.filledAt !== undefined,
      });
      tally.set(r.outcome, (tally.get(r.outcome) ?? 0) + 1);
      return r.error ?? r.value;
    });
    // One counter update per outcome and batch: labelled increments per key were ~1 % of the hit path.
    if (events.lookup) for (const [outcome, count] of tally) events.lookup(spec.entity, outcome, count);
    return values;
  }

  return { read };
}
