/**
 * `createTestApp()` builds the real application graph (src/server.ts `createApp`) on a fresh
 * database and a fresh Redis key prefix, seeds it, and hands back a client that calls the API
 * in-process through `yoga.fetch`. Pass `share` to start a second instance on the same database and
 * prefix (two "servers" sharing PostgreSQL and Redis).
 */
import { randomBytes } from 'node:crypto';
import { loadConfig, type Config } from '../../src/config.js';
import type { CacheStore } from '../../src/cache/store/contract.js';
import { createDatabase } from '../../src/db/client.js';
import type { RepositoryOptions } from '../../src/db/repositories.js';
import { seedDatabase } from '../../src/db/seed.js';
import { signToken } from '../../src/auth/tokens.js';
import { createApp, type App, type AppOverrides } from '../../src/app/create-app.js';
import { createTestDatabase, type TestDatabase } from './database.js';
import { purgeKeys, REDIS_URL } from './redis.js';

export const TEST_AUTH_SECRET = 'test-secret-0123456789abcdef0123456789abcdef';
export { REDIS_URL };

export interface TestAppOptions {
  /** Names the database and key prefix, for whoever reads `\l` or `SCAN` during a failure. */
  readonly label: string;
  /** Demo rows to seed; `false` for an empty database. @default { users: 30, postsPerUser: 5 } */
  readonly seed?: { users: number; postsPerUser?: number } | false;
  /** `redis` (the machine's Redis), `memory`, `none` (no REDIS_URL), or a store instance. @default 'redis' */
  readonly store?: 'redis' | 'memory' | CacheStore;
  /** Extra environment for loadConfig (e.g. CACHE_LOCK_WAIT_MS). */
  readonly env?: Readonly<Record<string, string>>;
  readonly repositoryOptions?: RepositoryOptions;
  /** Run the outbox relay's polling loop; false to drive it with `app.relay.runOnce()`. @default true */
  readonly startRelay?: boolean;
  /** Circuit breaker settings (e.g. a short open period). */
  readonly breaker?: AppOverrides['breaker'];
  /** Extra yoga plugins, after the app's own (a test's probe of what a request went through). */
  readonly plugins?: AppOverrides['plugins'];
  /** Another test app whose database and prefix this one shares. */
  readonly share?: TestApp;
  /** The test makes the cache stale on purpose: `close` does not fail on monitor violations. */
  readonly expectViolations?: boolean;
}

/**
 * POSTs `query` to an app built by `createApp` itself (the fault tests, which need their own
 * PostgreSQL or Redis), as the bearer of `token` if given.
 */
export async function postQuery<T = Record<string, unknown>>(
  app: App,
  query: string,
  token?: string,
): Promise<GraphQLResponse<T>> {
  const response = await app.yoga.fetch('http://cacheside/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query }),
  });
  return {
    status: response.status,
    headers: response.headers,
    body: (await response.json()) as GraphQLResponse<T>['body'],
  };
}

/** The `extensions.code` of each error of a response, in order. */
export const errorCodes = (response: GraphQLResponse<unknown>) =>
  (response.body.errors ?? []).map((e) => e.extensions?.code as string | undefined);

export interface GraphQLResponse<T = Record<string, unknown>> {
  readonly status: number;
  readonly headers: Headers;
  readonly body: {
    data?: T | null;
    errors?: { message: string; extensions?: Record<string, unknown>; path?: unknown[] }[];
  };
}

export interface RequestOptions {
  readonly variables?: Record<string, unknown>;
  readonly token?: string;
  readonly headers?: Record<string, string>;
}

export interface TestApp {
  readonly app: App;
  readonly config: Config;
  readonly testDb: TestDatabase;
  readonly prefix: string;
  /** POSTs a GraphQL operation in-process. */
  gql<T = Record<string, unknown>>(query: string, options?: RequestOptions): Promise<GraphQLResponse<T>>;
  /** Raw in-process fetch against http://cacheside. */
  fetch(path: string, init?: RequestInit): Promise<Response>;
  token(userId: number): Promise<string>;
  close(): Promise<void>;
}

export async function createTestApp(options: TestAppOptions): Promise<TestApp> {
  const owner = options.share === undefined;
  const testDb = options.share?.testDb ?? (await createTestDatabase(options.label));
  const prefix =
    options.share?.prefix ??
    `t_${options.label.replace(/[^A-Za-z0-9_]/g, '_')}_${randomBytes(4).toString('hex')}`;

  if (owner && options.seed !== false) {
    const seed = options.seed ?? { users: 30, postsPerUser: 5 };
    // A fresh database under a fresh prefix: no cache holds anything of it, so the seed need not
    // announce a change (its relay run would race with the test's first reads).
    await seedDatabase(testDb.database.db, {
      users: seed.users,
      postsPerUser: seed.postsPerUser ?? 5,
      announce: false,
    });
  }

  const storeChoice = options.store ?? 'redis';
  const config = loadConfig({
    DATABASE_URL: testDb.url,
    ...(storeChoice === 'redis' ? { REDIS_URL } : {}),
    CACHE_PREFIX: prefix,
    AUTH_SECRET: TEST_AUTH_SECRET,
    LOG_LEVEL: 'silent',
    // The consistency monitor samples fast, with a short grace, in every app whose relay runs (with
    // relays driven by hand, lagging invalidations are the test's own doing); `close` expects it to
    // have found nothing.
    CONSISTENCY_SAMPLE_INTERVAL_MS: options.startRelay === false ? '0' : '50',
    CONSISTENCY_GRACE_MS: '2000',
    // The suite tests the entity tier by itself (its headers, lookups and round trips are what the
    // tests watch), so the response tier is off unless a test turns it on — or unless this is the
    // `response-tier` project (`npm run test:response-tier`, part of `npm test`): the consistency,
    // stampede, fault and L1 suites again, with it in front of every app they build.
    RESPONSE_CACHE: process.env.TEST_RESPONSE_CACHE === 'on' ? 'on' : 'off',
    ...options.env,
  });

  // Each instance opens its own pool, as two servers would.
  const database = owner ? testDb.database : await createDatabase(config.database, { poolSize: 4 });
  const app = await createApp(config, {
    database,
    ...(typeof storeChoice === 'object' ? { store: storeChoice } : {}),
    ...(options.repositoryOptions ? { repositoryOptions: options.repositoryOptions } : {}),
    ...(options.startRelay === false ? { startRelay: false } : {}),
    ...(options.breaker ? { breaker: options.breaker } : {}),
    ...(options.plugins ? { plugins: options.plugins } : {}),
  });

  const fetchIn = (path: string, init: RequestInit = {}) => {
    // A current GraphQL-over-HTTP client, unless a test says otherwise: it accepts
    // application/graphql-response+json, so a bad document is a 400 (with no Accept at all the spec
    // has the server answer as for legacy application/json: 200; test/api/graphql-over-http.test.ts).
    const headers = new Headers(init.headers);
    if (!headers.has('accept'))
      headers.set('accept', 'application/graphql-response+json, application/json;q=0.9');
    // yoga's fetch types its init with its own RequestInit (from @whatwg-node); ours is Node's.
    return Promise.resolve(
      app.yoga.fetch(`http://cacheside${path}`, { ...init, headers } as Parameters<typeof app.yoga.fetch>[1]),
    );
  };

  return {
    app,
    config,
    testDb,
    prefix,
    fetch: fetchIn,
    async gql<T>(query: string, { variables, token, headers }: RequestOptions = {}) {
      const response = await fetchIn('/graphql', {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...headers,
        },
        body: JSON.stringify({ query, variables }),
      });
      const body = (await response.json()) as GraphQLResponse<T>['body'];
      return { status: response.status, headers: response.headers, body };
    },
    token: (userId) => signToken(TEST_AUTH_SECRET, userId),
    async close() {
      await app.close();
      const violations = app.cache.monitor?.violations ?? 0;
      if (violations > 0 && options.expectViolations !== true) {
        throw new Error(
          `the consistency monitor of ${options.label} found ${violations} violation(s): see its log`,
        );
      }
      // After close: the relay may write a last tombstone while it stops.
      if (owner && storeChoice === 'redis') await purgeKeys(`${prefix}:`);
      if (owner) await testDb.drop();
      else await database.close();
    },
  };
}
