/**
 * The cache tier, assembled from its parts in the order a request meets them:
 *
 *   store (Redis | memory) ─▶ circuit breaker ─▶ instrumentation ─▶ L1 layer (optional)
 *        ▲                                                             │
 *        │ relay, subscriber, readiness: the store itself              ▼
 *   write path: write-through ─┐                              read path: cache-aside ─▶ readers
 *               outbox relay ──┴─▶ tombstones + events ─▶ invalidation subscriber ─▶ L1
 *
 * Requests reach the store through the breaker (skip Redis while it fails; close only after the
 * relay applied what the outage held back) and the instrumentation (round trips per request). The
 * relay and the event subscriber use the store itself: they must reach Redis as soon as it is back,
 * and the relay is what the breaker waits for before it closes.
 *
 * `close()` undoes it in reverse: the relay finishes its batch while the store is still up, then the
 * subscriber stops, then the store closes (unless it was handed in, and so is the caller's).
 */
import type { Config } from '../config.js';
import type { Db } from '../db/client.js';
import type { OutboxRepository } from '../db/outbox-repository.js';
import type { Repositories } from '../db/repositories.js';
import type { Logger } from '../observability/logger.js';
import { createEntryFactory } from './entities/entries.js';
import { createCacheKeys, type CacheKeys } from './entities/keys.js';
import { createEntitySpecs } from './entities/specs.js';
import {
  createInvalidationSubscriber,
  type InvalidationSubscriber,
} from './events/invalidation-subscriber.js';
import {
  createConsistencyMonitor,
  type ConsistencyMonitor,
  type ConsistencyMonitorOptions,
} from './monitor/consistency-monitor.js';
import { createCacheAside } from './read/cache-aside.js';
import { createResponseMemo } from './response/response-memo.js';
import { createResponseTier, type ResponseTier } from './response/response-tier.js';
import { createCachedReaders, type EntityReaders } from './read/cached-readers.js';
import { createPageReader } from './read/page-reader.js';
import { connectL1, l1Layer } from './read/l1-layer.js';
import { createL1TierFromConfig, type L1Tier } from './read/l1-tier.js';
import type { ReadEvents } from './read/read-events.js';
import type { CacheStore } from './store/contract.js';
import { createStoreFromConfig } from './store/from-config.js';
import {
  createCircuitBreaker,
  type BreakerState,
  type BreakerStore,
  type CircuitBreakerOptions,
} from './store/layers/circuit-breaker.js';
import { instrumentStore } from './store/layers/instrumentation.js';
import type { CacheWriter } from './write/cache-writer.js';
import { createOutboxRelay, type OutboxRelay, type OutboxRelayOptions } from './write/outbox-relay.js';
import { createPropagationWait, type Propagation } from './write/propagation.js';
import { createWriteThrough } from './write/write-through.js';

export interface CacheTierDeps {
  readonly db: Db;
  readonly repositories: Repositories;
  /** Repositories of the consistency monitor's own: no request counts them, no test hook holds them. */
  readonly monitorRepositories: Repositories;
  readonly outbox: OutboxRepository;
  readonly logger: Logger;
  /** A store to use instead of the configured one (a chaos double, a shared one); not closed here. */
  readonly store?: CacheStore;
  /** Breaker settings (tests shorten the open period); `beforeClose` is always the relay's drain. */
  readonly breaker?: Omit<CircuitBreakerOptions, 'beforeClose'>;
  /** Hooks for what the tier notices: metrics plug in here (src/observability/metric-adapters.ts). */
  readonly events?: {
    readonly read?: ReadEvents;
    readonly onBreakerTransition?: (from: BreakerState, to: BreakerState) => void;
    readonly relay?: Pick<OutboxRelayOptions, 'onApplied' | 'onError' | 'onRun'>;
    /** A Redis connection reported an error (one per failed reconnect attempt). */
    readonly onStoreConnectionError?: (error: unknown) => void;
    /** How each mutation's cache side ended: written through, applied by a relay, or pending. */
    readonly onPropagation?: (outcome: Propagation) => void;
    readonly monitor?: Pick<ConsistencyMonitorOptions, 'onCheck' | 'onViolation'>;
  };
}

export interface CacheTier {
  readonly keys: CacheKeys;
  /** The store as requests see it: breaker, instrumentation (the L1 layer, when on, is above it). */
  readonly store: CacheStore;
  /** The configured store itself, without layers: what the relay, the subscriber and readiness use. */
  readonly origin: CacheStore;
  readonly breaker: BreakerStore['breaker'];
  /** The in-process tier, when CACHE_L1_MAX_ENTRIES > 0. */
  readonly l1: L1Tier | undefined;
  /** DataLoader batches answered through the cache. */
  readonly readers: EntityReaders;
  /** Whole answers validated by versions (RESPONSE_CACHE), when on. */
  readonly response: ResponseTier | undefined;
  /** What mutations call after they commit. */
  readonly writer: CacheWriter;
  readonly relay: OutboxRelay;
  readonly invalidations: InvalidationSubscriber;
  /** The consistency monitor, unless CONSISTENCY_SAMPLE_INTERVAL_MS is 0. */
  readonly monitor: ConsistencyMonitor | undefined;
  /**
   * Subscribes to invalidation events (Redis down at startup is not fatal: it keeps retrying in the
   * background) and, unless `relay` is false, starts the relay's polling loop.
   */
  start(options?: { readonly relay?: boolean }): Promise<void>;
  /** Stops the relay (after its batch) and the subscriber, then closes the store if it is ours. Idempotent. */
  close(): Promise<void>;
}

export function createCacheTier(config: Config, deps: CacheTierDeps): CacheTier {
  const { db, repositories, outbox, logger, events = {} } = deps;
  const owned = deps.store === undefined;
  const keys = createCacheKeys(config.cache.prefix);
  const origin =
    deps.store ??
    createStoreFromConfig(config, logger, {
      dependentKeys: keys.dependents,
      ...(events.onStoreConnectionError && { onConnectionError: events.onStoreConnectionError }),
    });
  const entries = createEntryFactory({ config: config.cache });
  const specs = createEntitySpecs({ keys, repositories, config: config.cache });

  // The relay first: the breaker in front of the store closes only once the relay has drained.
  const relay = createOutboxRelay({
    db,
    outbox,
    store: origin,
    keys,
    specs,
    entries,
    logger,
    intervalMs: config.outbox.pollIntervalMs,
    ...events.relay,
  });
  const breakerStore = createCircuitBreaker(origin, {
    ...deps.breaker,
    beforeClose: () => relay.drain(),
    onTransition: (from, to) => {
      events.onBreakerTransition?.(from, to);
      deps.breaker?.onTransition?.(from, to);
    },
  });
  // Lost and regained its connection to Redis: Redis may have restarted, even with data older than
  // writes made meanwhile (persistence, a failover). Until the relay has applied what the outbox
  // holds, reads go to PostgreSQL — also on an instance that made no call during the outage, and so
  // never saw its circuit open. test/resilience/redis-faults.test.ts, "Redis back with its old data".
  origin.onReconnect?.(() => breakerStore.breaker.trip());
  const store = instrumentStore(breakerStore);
  // The optional in-process tier: the read path consults it first, and it sees what the read path
  // and the write-through read and store (docs/scaling.md, "The L1 tier").
  const l1 = createL1TierFromConfig(config.cache);
  const layered = l1 ? l1Layer(store, l1) : store;

  const cacheAside = createCacheAside({
    store: layered,
    l1,
    config: config.cache,
    entries,
    logger,
    ...(events.read && { events: events.read }),
  });
  const writer = createWriteThrough({
    store: layered,
    specs,
    entries,
    propagation: createPropagationWait({
      db,
      outbox,
      logger,
      timeoutMs: config.outbox.propagationTimeoutMs,
    }),
    logger,
    // Redis may still hold the value this write replaced: reads go to PostgreSQL until the relay
    // has applied the write's tombstone (docs/consistency.md).
    onError: () => breakerStore.breaker.trip(),
    ...(events.onPropagation && { onPropagation: events.onPropagation }),
  });
  const invalidations = createInvalidationSubscriber({ store: origin, keys, logger });
  if (l1) connectL1(l1, { invalidations, store: layered, keys });
  // It samples what requests would be served: through the breaker, not through L1.
  const monitor =
    config.monitor.intervalMs > 0
      ? createConsistencyMonitor({
          store,
          specs: createEntitySpecs({ keys, repositories: deps.monitorRepositories, config: config.cache }),
          loadPage: deps.monitorRepositories.userPage,
          keys,
          logger,
          intervalMs: config.monitor.intervalMs,
          graceMs: config.monitor.graceMs,
          ...events.monitor,
        })
      : undefined;

  // Pages of user ids: dependent entries of the directory, checked like stored answers — through the
  // breaker, never through L1. They live no longer than a tombstone (why: page-reader.ts).
  const pages = createPageReader({
    store,
    keys,
    readDirectory: (ids, report) => cacheAside.read(specs.userDirectory, ids, report),
    loadPage: repositories.userPage,
    ttlMs: Math.min(entries.tombstoneTtlMs, config.cache.volatileTtlSeconds * 1000),
    logger,
  });

  const memo =
    l1 && config.cache.response.enabled && config.cache.response.l1MaxBytes > 0
      ? createResponseMemo({ feed: l1, maxBytes: config.cache.response.l1MaxBytes })
      : undefined;

  let closed: Promise<void> | undefined;
  return {
    keys,
    store,
    origin,
    breaker: breakerStore.breaker,
    l1,
    readers: createCachedReaders(cacheAside, specs, pages),
    response: config.cache.response.enabled
      ? createResponseTier({
          // Through the breaker like every request's call, never through L1's layer: a stored answer
          // is checked against what Redis holds. Only a copy of one Redis vouched for is served on
          // L1's word, within L1's window (response-memo.ts).
          store,
          keys,
          config: config.cache.response,
          tombstoneTtlMs: entries.tombstoneTtlMs,
          ...(memo && { memo }),
        })
      : undefined,
    writer,
    relay,
    invalidations,
    monitor,
    async start(options = {}) {
      await invalidations.start().catch((error: unknown) => {
        // The cache is not primary storage: the app starts anyway, and the subscriber keeps retrying.
        logger.warn({ err: error }, 'could not subscribe to invalidation events yet; retrying');
      });
      if (options.relay !== false) relay.start();
      monitor?.start();
    },
    close: () =>
      (closed ??= (async () => {
        await monitor?.stop();
        await relay.stop();
        await invalidations.stop();
        memo?.close();
        if (owned) await origin.close();
      })()),
  };
}
