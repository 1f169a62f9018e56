/**
 * The composition root: the one place that turns a Config into running parts and wires them
 * together (config → database → store → cache → loaders → yoga). Every other module exports a
 * factory and receives what it needs. Tests build the same graph through `createApp` with their own
 * database, store or hooks; `node dist/server.js` runs `main()`.
 */
import { createServer, type Server } from 'node:http';
import { pathToFileURL } from 'node:url';
import type { CacheStore } from './cache/store/contract.js';
import { loadConfig, type Config } from './config.js';
import { createDatabase, type Database } from './db/client.js';
import { migrateDatabase } from './db/migrate.js';
import { createRepositories, type RepositoryOptions } from './db/repositories.js';
import { ensureDemoData } from './db/demo-data.js';
import { createCachesideYoga, type CachesideYoga } from './graphql/create-yoga.js';
import type { Resolvers } from './graphql/generated/resolvers-types.js';
import { createDirectReaders } from './loaders/direct-readers.js';
import type { Plugin } from 'graphql-yoga';
import { useHttpMetrics } from './graphql/plugins/use-http-metrics.js';
import { useMetricsEndpoint } from './graphql/plugins/use-metrics-endpoint.js';
import { useReadiness } from './graphql/plugins/use-readiness.js';
import { useRequestId } from './graphql/plugins/use-request-id.js';
import { createMetrics, type Metrics } from './observability/metrics.js';
import { createLogger, type Logger } from './observability/logger.js';
import { createReadinessProbe } from './app/readiness.js';
import { createServices } from './services/create-services.js';
import { createCacheAside } from './cache/read/cache-aside.js';
import { createCachedReaders, createEntitySpecs } from './cache/read/cached-readers.js';
import { createStoreFromConfig, describeStore } from './cache/store/from-config.js';
import { createEntryFactory } from './cache/entities/entries.js';
import { instrumentStore } from './cache/store/layers/instrumentation.js';
import { createCacheKeys } from './cache/entities/keys.js';
import { connectL1, createL1TierFromConfig, type L1Tier } from './cache/read/l1-tier.js';
import {
  createInvalidationSubscriber,
  type InvalidationSubscriber,
} from './cache/events/invalidation-subscriber.js';
import { createOutboxRelay, type OutboxRelay } from './cache/write/outbox-relay.js';
import {
  createCircuitBreaker,
  type BreakerStore,
  type CircuitBreakerOptions,
} from './cache/store/layers/circuit-breaker.js';
import { createWriteThrough } from './cache/write/write-through.js';
import { createOutboxRepository } from './db/outbox-repository.js';
import { createLoadLimiter } from './db/load-limiter.js';
import { createDrainingTracker } from './graphql/plugins/use-draining.js';
import { shutDown } from './app/shutdown.js';

export interface AppOverrides {
  /** An already open (and migrated) database; the app does not close it. */
  readonly database?: Database;
  /** A store to use instead of the configured one (a chaos wrapper, a shared one); not closed by the app. */
  readonly store?: CacheStore;
  readonly logger?: Logger;
  /** Test hooks that hold or slow SQL loads. */
  readonly repositoryOptions?: RepositoryOptions;
  /** Circuit breaker settings (tests shorten the open period). */
  readonly breaker?: Omit<CircuitBreakerOptions, 'beforeClose'>;
  /** Start the outbox relay's polling loop. Tests that drive it by hand (`relay.runOnce()`) pass false. @default true */
  readonly startRelay?: boolean;
  /** Answer reads from PostgreSQL through the DataLoaders, without the cache (the benchmark's "DataLoaders only"). @default false */
  readonly directReads?: boolean;
  /** Resolvers to serve instead of ours, over the same schema and plugins (the benchmark's naive and static variants). */
  readonly resolvers?: Resolvers;
  /** Extra yoga plugins, after ours (the benchmark's response-cache variant). */
  readonly plugins?: readonly Plugin[];
}

export interface App {
  readonly config: Config;
  readonly yoga: CachesideYoga;
  readonly database: Database;
  readonly store: CacheStore;
  readonly logger: Logger;
  readonly relay: OutboxRelay;
  readonly invalidations: InvalidationSubscriber;
  /** This instance's Prometheus registry and metrics. */
  readonly metrics: Metrics;
  /** The in-process tier, when CACHE_L1_MAX_ENTRIES > 0. */
  readonly l1: L1Tier | undefined;
  /** The breaker in front of the store: its state and the calls it refused. */
  readonly breaker: BreakerStore['breaker'];
  /** True once `beginDraining()` was called: /ready answers 503 so no new traffic is routed here. */
  readonly draining: boolean;
  /** Marks the instance as shutting down (readiness 503); in-flight and new requests are still served. */
  beginDraining(): void;
  /** Closes what the app opened itself. Idempotent. */
  close(): Promise<void>;
}

export async function createApp(config: Config, overrides: AppOverrides = {}): Promise<App> {
  const logger = overrides.logger ?? createLogger(config.logLevel);
  const owned: (() => Promise<void>)[] = [];

  try {
    let database = overrides.database;
    if (database === undefined) {
      database = await createDatabase(config.database);
      owned.push(database.close);
      await migrateDatabase(config.database, database);
      if (config.database.kind === 'pglite') await ensureDemoData(database.db, logger);
    }

    let rawStore = overrides.store;
    if (rawStore === undefined) {
      rawStore = createStoreFromConfig(config, logger);
      owned.push(rawStore.close);
    }
    const outbox = createOutboxRepository();
    const metrics = createMetrics({ outboxBacklog: () => outbox.backlog(database.db) });
    // Requests reach the store through the breaker (skip Redis while it fails; close only after the
    // relay applied what the outage held back) and the instrumentation (round trips per request).
    // The relay and the event subscriber use the raw store: they must reach Redis as soon as it is back.
    const breakerStore = createCircuitBreaker(rawStore, {
      ...overrides.breaker,
      beforeClose: () => relay.drain(),
      onTransition: (from, to) => {
        logger.warn({ from, to }, `cache circuit ${to}`);
        metrics.breakerMoved(to);
        overrides.breaker?.onTransition?.(from, to);
      },
    });
    const store = instrumentStore(breakerStore);
    // The optional in-process tier: the read path consults it first, and it sees what the read path
    // and the write-through read and store (docs/scaling.md, "The L1 tier").
    const l1 = createL1TierFromConfig(config.cache);
    const cacheStore = l1 ? l1.over(store) : store;

    const repositories = createRepositories(database.db, {
      limiter: createLoadLimiter(config.db.maxConcurrentLoads),
      onQuery: (query, seconds, result) => {
        metrics.sqlStatements.inc({ query, result });
        metrics.sqlDuration.observe({ query }, seconds);
      },
      ...overrides.repositoryOptions,
    });
    const keys = createCacheKeys(config.cache.prefix);
    const entries = createEntryFactory({ config: config.cache });
    const specs = createEntitySpecs({ keys, repositories, config: config.cache });
    const cacheAside = createCacheAside({
      store: cacheStore,
      l1,
      config: config.cache,
      logger,
      events: {
        lookup: (entity, result, count) => metrics.lookups.inc({ entity, result }, count),
        lockWait: (entity, keys) => metrics.lockWaits.inc({ entity }, keys),
        lockWaitTimeout: (entity, keys) => metrics.lockWaitTimeouts.inc({ entity }, keys),
        storeError: (_error, operation) => metrics.storeErrors.inc({ operation }),
      },
    });
    const readers = overrides.directReads
      ? createDirectReaders(repositories)
      : createCachedReaders({ cacheAside, keys, repositories, config: config.cache });
    const cacheWriter = createWriteThrough({
      store: cacheStore,
      specs,
      entries,
      logger,
      onError: () => breakerStore.breaker.trip(),
    });
    const services = createServices({ db: database.db, repositories, cacheWriter });

    const relay = createOutboxRelay({
      db: database.db,
      outbox,
      store: rawStore,
      keys,
      specs,
      entries,
      logger,
      intervalMs: config.outbox.pollIntervalMs,
      onApplied: (events) => metrics.relayPublished.inc(events.length),
      onError: () => metrics.relayErrors.inc(),
    });
    const invalidations = createInvalidationSubscriber({ store: rawStore, keys, logger });
    if (l1) connectL1(l1, { invalidations, store: rawStore, keys });
    // Stopped first on close: the relay finishes its batch while the store and database are still up.
    owned.push(async () => {
      await relay.stop();
      await invalidations.stop();
    });
    await invalidations.start().catch((error: unknown) => {
      // Redis may be down at startup; the cache is not primary storage, so the app starts anyway and
      // the subscriber keeps retrying in the background.
      logger.warn({ err: error }, 'could not subscribe to invalidation events yet; retrying');
    });
    if (overrides.startRelay !== false) relay.start();

    let draining = false;
    const readiness = createReadinessProbe({
      db: database.db,
      store: rawStore,
      breaker: breakerStore.breaker,
      probeKey: `${keys.namespace}ready-probe`,
      isDraining: () => draining,
    });

    const yoga = createCachesideYoga({
      readers,
      repositories,
      services,
      authSecret: config.auth.secret,
      logger,
      cacheTier: store.tier,
      cacheHeaders: config.cache.headers,
      cacheDebug: config.cache.debug,
      introspection: config.graphql.introspection,
      plugins: [
        useRequestId(),
        useHttpMetrics({ metrics, logger }),
        useMetricsEndpoint({ registry: metrics.registry }),
        useReadiness({ probe: readiness }),
        ...(overrides.plugins ?? []),
      ],
      resolvers: overrides.resolvers,
    });

    let closed: Promise<void> | undefined;
    return {
      config,
      yoga,
      database,
      store,
      logger,
      relay,
      invalidations,
      metrics,
      l1,
      breaker: breakerStore.breaker,
      get draining() {
        return draining;
      },
      beginDraining() {
        draining = true;
      },
      close: () => (closed ??= closeAll(owned)),
    };
  } catch (error) {
    await closeAll(owned);
    throw error;
  }
}

async function closeAll(closers: (() => Promise<void>)[]): Promise<void> {
  // Reverse order of opening: the store before the database it caches.
  for (const close of [...closers].reverse()) {
    await close().catch(() => {});
  }
}

/** Starts the HTTP server; resolves once it listens. */
export async function listen(app: App): Promise<Server> {
  const server = createServer(app.yoga);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(app.config.http.port, app.config.http.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}

async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger(config.logLevel);
  if (config.auth.usingDevSecret) {
    logger.warn(
      'AUTH_SECRET is not set: using the built-in development secret (never do this in production)',
    );
  }
  const draining = createDrainingTracker();
  const app = await createApp(config, { logger, plugins: [draining.plugin] });
  const server = await listen(app);
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.http.port;
  logger.info(
    { database: app.database.description, cache: describeStore(config) },
    `cacheside listening on http://${config.http.host === '0.0.0.0' ? 'localhost' : config.http.host}:${port}/graphql — database: ${app.database.description}; cache: ${describeStore(config)}`,
  );

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    const { delayMs } = config.shutdown;
    logger.info({ signal, delayMs }, 'shutting down: draining, then finishing in-flight requests');
    // /ready 503 → keep serving delayMs → stop accepting → in-flight finish → relay, store, database.
    void shutDown({ server, app, tracker: draining, logger, delayMs }).then(
      (clean) => {
        if (clean) logger.info('shut down cleanly');
        process.exit(clean ? 0 : 1);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

const isEntryPoint = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isEntryPoint) {
  main().catch((error: unknown) => {
    // Startup failures (bad config, unreachable database) end the process with a readable reason.
    console.error(error instanceof Error ? `cacheside failed to start: ${error.message}` : error);
    process.exit(1);
  });
}
