/**
 * The composition root: the one place that turns a Config into running parts and wires them
 * together, in four steps —
 *
 *   database ─▶ cache tier ─▶ services ─▶ yoga
 *
 * Every other module exports a factory and receives what it needs. Tests and the benchmark build the
 * same graph through `createApp` with their own database, store or hooks; `src/server.ts` runs it.
 */
import type { Plugin } from 'graphql-yoga';
import { createCacheTier, type CacheTier, type CacheTierDeps } from '../cache/create-cache-tier.js';
import type { CacheStore } from '../cache/store/contract.js';
import type { Config } from '../config.js';
import { createDatabase, type Database } from '../db/client.js';
import { ensureDemoData } from '../db/demo-data.js';
import { waitForDatabase } from '../db/wait-for-database.js';
import { createLoadLimiter } from '../db/load-limiter.js';
import { migrateDatabase } from '../db/migrate.js';
import { createOutboxRepository } from '../db/outbox-repository.js';
import { createRepositories, type RepositoryOptions } from '../db/repositories.js';
import { createCachesideYoga, type CachesideYoga } from '../graphql/create-yoga.js';
import type { Resolvers } from '../graphql/generated/resolvers-types.js';
import { createDrainingTracker, type DrainingTracker } from '../graphql/plugins/use-draining.js';
import { createDirectReaders } from '../loaders/direct-readers.js';
import { createLogger, type Logger } from '../observability/logger.js';
import { createMetricHooks } from '../observability/metric-adapters.js';
import { createMetrics, type Metrics } from '../observability/metrics.js';
import { createServices } from '../services/create-services.js';
import { createReadinessProbe } from './readiness.js';

export interface AppOverrides {
  /** An already open (and migrated) database; the app does not close it. */
  readonly database?: Database;
  /** A store to use instead of the configured one (a chaos double, a shared one); not closed by the app. */
  readonly store?: CacheStore;
  readonly logger?: Logger;
  /** Test hooks that hold or slow SQL loads. */
  readonly repositoryOptions?: RepositoryOptions;
  /** Circuit breaker settings (tests shorten the open period). */
  readonly breaker?: CacheTierDeps['breaker'];
  /** Start the outbox relay's polling loop. Tests that drive it by hand (`relay.runOnce()`) pass false. @default true */
  readonly startRelay?: boolean;
  /** Answer reads from PostgreSQL through the DataLoaders, without the cache (the benchmark's `dataloader`). @default false */
  readonly directReads?: boolean;
  /** Resolvers to serve instead of ours, over the same schema and plugins (the benchmark's `naive` and `static`). */
  readonly resolvers?: Resolvers;
  /** Extra yoga plugins, after ours (the benchmark's `response-cache`). */
  readonly plugins?: readonly Plugin[];
}

export interface App {
  readonly config: Config;
  readonly yoga: CachesideYoga;
  readonly database: Database;
  readonly logger: Logger;
  /** This instance's Prometheus registry and metrics. */
  readonly metrics: Metrics;
  /** The cache tier: store, breaker, L1, readers, writer, relay and event subscriber. */
  readonly cache: CacheTier;
  /** The store as requests see it (`cache.store`). */
  readonly store: CacheStore;
  readonly relay: CacheTier['relay'];
  readonly invalidations: CacheTier['invalidations'];
  readonly l1: CacheTier['l1'];
  readonly breaker: CacheTier['breaker'];
  /** The requests being handled; once draining, every response closes its connection. */
  readonly requests: DrainingTracker;
  /** True once `beginDraining()` was called. */
  readonly draining: boolean;
  /** Marks the instance as shutting down: /ready answers 503, responses send `Connection: close`. */
  beginDraining(): void;
  /** Closes what the app opened itself, the cache tier before the database it caches. Idempotent. */
  close(): Promise<void>;
}

export async function createApp(config: Config, overrides: AppOverrides = {}): Promise<App> {
  const logger = overrides.logger ?? createLogger(config.logLevel);
  let closeDatabase = async () => {};
  let cache: CacheTier | undefined;
  try {
    // 1. The database: opened and migrated here unless handed in; the embedded one gets demo data.
    let database = overrides.database;
    if (database === undefined) {
      if (config.database.kind === 'postgres') {
        await waitForDatabase({
          url: config.database.url,
          timeoutSeconds: config.startup.databaseTimeoutSeconds,
          logger,
        });
      }
      const opened = await createDatabase(config.database);
      database = opened;
      closeDatabase = () => opened.close();
      await migrateDatabase(config.database, opened);
      if (config.database.kind === 'pglite') await ensureDemoData(opened.db, logger);
    }
    const outbox = createOutboxRepository();
    const db = database.db;
    const metrics = createMetrics({ outboxBacklog: () => outbox.backlog(db) });
    const hooks = createMetricHooks(metrics, logger);
    const limiter = createLoadLimiter(config.db.maxConcurrentLoads);
    const repositories = createRepositories(db, {
      limiter,
      onQuery: hooks.onQuery,
      ...overrides.repositoryOptions,
    });

    // 2. The cache tier, in front of the database.
    cache = createCacheTier(config, {
      db,
      repositories,
      monitorRepositories: createRepositories(db, { limiter }),
      outbox,
      logger,
      ...(overrides.store && { store: overrides.store }),
      ...(overrides.breaker && { breaker: overrides.breaker }),
      events: {
        read: hooks.read,
        onBreakerTransition: hooks.onBreakerTransition,
        onStoreConnectionError: hooks.onStoreConnectionError,
        onPropagation: hooks.onPropagation,
        monitor: hooks.monitor,
        relay: hooks.relay,
      },
    });
    await cache.start({ relay: overrides.startRelay !== false });

    // 3. The services: mutations commit to the database, then write the cache through.
    const services = createServices({
      db,
      repositories,
      cacheWriter: cache.writer,
      onTransaction: hooks.onTransaction,
    });

    // 4. The GraphQL server over all of it.
    const requests = createDrainingTracker();
    const readiness = createReadinessProbe({
      db,
      store: cache.origin,
      breaker: cache.breaker,
      probeKey: `${cache.keys.namespace}ready-probe`,
      isDraining: () => requests.draining,
    });
    const yoga = createCachesideYoga({
      readers: overrides.directReads ? createDirectReaders(repositories) : cache.readers,
      services,
      authSecret: config.auth.secret,
      logger,
      cacheTier: cache.store.tier,
      cacheHeaders: config.cache.headers,
      cacheDebug: config.cache.debug,
      ...(cache.response && !overrides.directReads && { responseTier: cache.response }),
      introspection: config.graphql.introspection,
      graphiql: config.graphql.graphiql,
      metrics,
      readiness,
      draining: requests,
      ...(overrides.plugins && { extraPlugins: overrides.plugins }),
      ...(overrides.resolvers && { resolvers: overrides.resolvers }),
    });

    const tier = cache;
    let closed: Promise<void> | undefined;
    return {
      config,
      yoga,
      database,
      logger,
      metrics,
      cache: tier,
      store: tier.store,
      relay: tier.relay,
      invalidations: tier.invalidations,
      l1: tier.l1,
      breaker: tier.breaker,
      requests,
      get draining() {
        return requests.draining;
      },
      beginDraining: () => requests.begin(),
      close: () =>
        (closed ??= (async () => {
          await tier.close().catch(() => {});
          await closeDatabase().catch(() => {});
        })()),
    };
  } catch (error) {
    await cache?.close().catch(() => {});
    await closeDatabase().catch(() => {});
    throw error;
  }
}
