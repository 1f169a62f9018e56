/**
 * One benchmark server: the real app (`createApp`) in the shape of one variant, on a node:http port
 * of its own, in a process of its own, so that no variant shares an event loop or a heap with
 * another. Forked by bench/harness.ts `startServer`; talks to it over IPC:
 *
 *   → { type: 'ready', port }                       once listening
 *   ← { type: 'stats' }  → { type: 'stats', … }     SQL statements, store calls, CPU time so far
 *   ← { type: 'reset' }  → { type: 'reset' }        counters back to zero
 *   ← { type: 'mark' }   → { type: 'mark', us }     the monotonic clock, µs (bounds a CPU-profile window)
 *   ← { type: 'stop' }                              closes and exits 0 (so --cpu-prof writes its file)
 */
import { createServer } from 'node:http';
import { useResponseCache, createInMemoryCache } from '@graphql-yoga/plugin-response-cache';
import { createCacheKeys } from '../src/cache/entities/keys.js';
import { createStoreFromConfig } from '../src/cache/store/from-config.js';
import { loadConfig } from '../src/config.js';
import { createDatabase } from '../src/db/client.js';
import { createLoadLimiter } from '../src/db/load-limiter.js';
import type { RepositoryQuery } from '../src/db/repositories.js';
import { createLogger } from '../src/observability/logger.js';
import { createApp, type AppOverrides } from '../src/app/create-app.js';
import {
  countingStore,
  emptyStoreCalls,
  forgetfulStore,
  loadSnapshot,
  lockFreeStore,
  naiveResolvers,
  staticResolvers,
} from './variants.js';
import type { VariantName } from './variant-names.js';

export interface ServerSpec {
  readonly variant: VariantName;
  readonly databaseUrl: string;
  readonly redisUrl: string;
  readonly prefix: string;
  readonly authSecret: string;
  /** Grant every lock (the stampede's "locks off"). Only meaningful for cacheside. */
  readonly locksOff?: boolean;
  /** Run the outbox relay. @default true */
  readonly relay?: boolean;
  /** Record which ids every SQL load asked for (the stampede). */
  readonly trackIds?: boolean;
  /** Response cache entries kept by response-cache. */
  readonly responseCacheMax?: number;
  /** More configuration, as environment variables (e.g. REDIS_COMMAND_TIMEOUT_MS). */
  readonly env?: Readonly<Record<string, string>>;
}

export interface ServerStats {
  readonly type: 'stats';
  /** SQL statements sent, by repository query (`naive` for the naive resolvers' own). */
  readonly sql: Record<string, number>;
  /** With trackIds: how many loads asked for each `query:id`. */
  readonly loads: Record<string, number>;
  readonly store: ReturnType<typeof emptyStoreCalls>;
  /** Times the circuit breaker opened, and calls it refused without reaching Redis. */
  readonly breaker: { opened: number; shortCircuited: number };
  /** Stale entries the consistency monitor found (must be 0). */
  readonly violations: number;
  /** process.cpuUsage(), µs. */
  readonly cpu: { user: number; system: number };
}

const spec = JSON.parse(process.argv[2] ?? '{}') as ServerSpec;

let sql: Record<string, number> = {};
let loads: Record<string, number> = {};
let breakerOpened = 0;
const storeCalls = emptyStoreCalls();
const countSql = (query: RepositoryQuery | 'naive', ids: readonly number[]) => {
  sql[query] = (sql[query] ?? 0) + 1;
  if (spec.trackIds) for (const id of ids) loads[`${query}:${id}`] = (loads[`${query}:${id}`] ?? 0) + 1;
};

async function main(): Promise<void> {
  const config = loadConfig({
    DATABASE_URL: spec.databaseUrl,
    REDIS_URL: spec.redisUrl,
    CACHE_PREFIX: spec.prefix,
    AUTH_SECRET: spec.authSecret,
    LOG_LEVEL: 'warn',
    // Post-id lists are volatile (5 min) by default; the whole run must see a warm cacheside stay warm.
    CACHE_VOLATILE_TTL_SECONDS: '3600',
    HOST: '127.0.0.1',
    PORT: '0',
    // `response-tier` is the product's default: the response tier in front of the entity tier, its
    // answers living as long as what they read (they are checked on every read). `cacheside` (and
    // its miss path) is the entity tier alone.
    ...(spec.variant === 'response-tier'
      ? { RESPONSE_CACHE: 'on', RESPONSE_CACHE_TTL_SECONDS: '3600' }
      : { RESPONSE_CACHE: 'off' }),
    ...spec.env,
  });
  const logger = createLogger(config.logLevel);
  const database = await createDatabase(config.database);
  // The app does not close a store it is handed: this one is closed on `stop`, under its wrappers.
  const rawStore = createStoreFromConfig(config, logger, {
    dependentKeys: createCacheKeys(config.cache.prefix).dependents,
  });
  let store = rawStore;
  if (spec.variant === 'always-miss') store = forgetfulStore(store);
  if (spec.locksOff) store = lockFreeStore(store);
  store = countingStore(store, storeCalls);

  const overrides: AppOverrides = {
    database,
    store,
    logger,
    repositoryOptions: { beforeQuery: countSql },
    startRelay: spec.relay !== false,
    breaker: { onTransition: (_from, to) => void (to === 'open' && (breakerOpened += 1)) },
  };
  let extra: Partial<AppOverrides> = {};
  switch (spec.variant) {
    case 'naive':
      extra = {
        directReads: true,
        resolvers: naiveResolvers(database.db, createLoadLimiter(config.db.maxConcurrentLoads), {
          statement: () => countSql('naive', []),
        }),
      };
      break;
    case 'dataloader':
      extra = { directReads: true };
      break;
    case 'response-cache':
      extra = {
        directReads: true,
        plugins: [
          useResponseCache({
            // Answers can differ by caller (email): one cache per bearer token, one for anonymous.
            session: (request) => request.headers.get('authorization'),
            // Big enough for every distinct request of the workloads: measured warm, like cacheside.
            cache: createInMemoryCache({ max: spec.responseCacheMax ?? 50_000 }),
          }),
        ],
      };
      break;
    case 'static':
      extra = { directReads: true, resolvers: staticResolvers(await loadSnapshot(database.db)) };
      break;
    case 'cacheside':
    case 'response-tier':
    case 'always-miss':
      break;
  }
  const app = await createApp(config, { ...overrides, ...extra });

  const server = createServer(app.yoga);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;

  process.on('message', (message: { type: string }) => {
    if (message.type === 'stats') {
      const stats: ServerStats = {
        type: 'stats',
        sql,
        loads,
        store: { ...storeCalls },
        breaker: { opened: breakerOpened, shortCircuited: app.breaker.shortCircuited },
        violations: app.cache.monitor?.violations ?? 0,
        cpu: process.cpuUsage(),
      };
      process.send!(stats);
    } else if (message.type === 'mark') {
      // On Linux, V8's profile timestamps and hrtime share CLOCK_MONOTONIC: a mark bounds a profile window.
      process.send!({ type: 'mark', us: Number(process.hrtime.bigint() / 1000n) });
    } else if (message.type === 'reset') {
      sql = {};
      loads = {};
      Object.assign(storeCalls, emptyStoreCalls());
      breakerOpened = 0;
      process.send!({ type: 'reset' });
    } else if (message.type === 'stop') {
      server.close();
      server.closeAllConnections();
      void app
        .close()
        .then(() => Promise.all([rawStore.close(), database.close()]))
        .finally(() => process.exit(0));
    }
  });
  // The parent went away (crash, Ctrl-C): do not linger.
  process.on('disconnect', () => process.exit(0));
  process.send!({ type: 'ready', port });
}

main().catch((error: unknown) => {
  console.error(`bench server ${spec.variant} failed to start:`, error);
  process.exit(1);
});
