/**
 * Expected faults are logged as state changes, not per request: a PostgreSQL outage and a Redis
 * outage under traffic each give one warn line as they begin and one as they end (with how long and
 * how many calls failed), the failures in between are counted in metrics, and nothing of it is at
 * error level. Expected request outcomes (BAD_USER_INPUT, CONFLICT) log nothing; an unexpected
 * error still gets exactly one error line. A private PostgreSQL and a private Redis, stopped and
 * started by the test.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createApp, type App } from '../../src/app/create-app.js';
import { signToken } from '../../src/auth/tokens.js';
import { loadConfig } from '../../src/config.js';
import { createDatabase } from '../../src/db/client.js';
import { migrateDatabase } from '../../src/db/migrate.js';
import { seedDatabase } from '../../src/db/seed.js';
import { createLogger } from '../../src/observability/logger.js';
import { errorCodes, postQuery, TEST_AUTH_SECRET } from '../support/app.js';
import { startPrivatePostgres, type PrivatePostgres } from '../support/postgres.js';
import { startPrivateRedis, type PrivateRedis } from '../support/redis.js';
import { until } from '../support/until.js';

interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly dependency?: string;
  readonly failures?: number;
  readonly downMs?: number;
}
const WARN = 40;
const ERROR = 50;

let pg: PrivatePostgres;
let redis: PrivateRedis;
let app: App;
let lines: LogLine[] = [];
let failBoom = false;
let token: string;

async function gql(query: string, bearer?: string) {
  const response = await postQuery(app, query, bearer);
  return { status: response.status, codes: errorCodes(response) };
}

let nextCold = 100;
/** Hot reads, cold reads and mutations until `stop()`; counts the requests that failed. */
function traffic() {
  let running = true;
  let failed = 0;
  const kinds = ['hot', 'cold', 'write'] as const;
  const client = (async () => {
    for (let i = 0; running; i += 1) {
      const kind = kinds[i % kinds.length];
      const result =
        kind === 'write'
          ? await gql(`mutation { updateProfile(input: { bio: "outage ${i}" }) { version } }`, token)
          : await gql(`{ user(id: "${kind === 'hot' ? 1 : nextCold++}") { name profile { bio } } }`);
      if (result.codes.length > 0) failed += 1;
    }
  })();
  return {
    get failed() {
      return failed;
    },
    async stop() {
      running = false;
      await client;
    },
  };
}

const warned = (text: string) => lines.filter((l) => l.level === WARN && l.msg.startsWith(text));
const errors = () => lines.filter((l) => l.level >= ERROR);
async function metric(name: string, dependency: string): Promise<number> {
  const text = await app.metrics.registry.metrics();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{dependency="${dependency}"}`));
  return Number(line?.split(' ')[1]);
}

beforeAll(async () => {
  [pg, redis] = await Promise.all([startPrivatePostgres(), startPrivateRedis()]);
  const config = loadConfig({
    DATABASE_URL: pg.url,
    REDIS_URL: redis.url,
    AUTH_SECRET: TEST_AUTH_SECRET,
    CONSISTENCY_SAMPLE_INTERVAL_MS: '0',
  });
  const setup = await createDatabase(config.database, { poolSize: 1 });
  await migrateDatabase(config.database, setup);
  await seedDatabase(setup.db, { users: 5000, postsPerUser: 1, announce: false });
  await setup.close();
  const sink = { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) };
  app = await createApp(config, {
    logger: createLogger('info', sink),
    repositoryOptions: {
      // An unexpected failure on cue: a bug in a read, not an outage.
      beforeQuery: (query) => {
        if (failBoom && query === 'posts') throw new Error('boom');
      },
    },
  });
  token = await signToken(TEST_AUTH_SECRET, 1);
  await gql(`{ user(id: "1") { name profile { bio } } }`);
}, 120_000);

afterAll(async () => {
  await app?.close();
  await Promise.all([pg?.destroy(), redis?.stop()]);
});

describe('outages are logged once as they begin and once as they end', () => {
  test('PostgreSQL stopped under traffic, then started', async () => {
    lines = [];
    const load = traffic();
    await pg.stop();
    await until('requests failing while PostgreSQL is down', () => load.failed >= 20);
    expect(await metric('cacheside_dependency_available', 'postgres')).toBe(0);
    await pg.start();
    await until('PostgreSQL available again', () => warned('PostgreSQL available again').length > 0);
    await load.stop();

    expect(warned('PostgreSQL unavailable')).toHaveLength(1);
    const [back] = warned('PostgreSQL available again');
    expect(back).toMatchObject({ dependency: 'postgres' });
    expect(back!.failures).toBeGreaterThanOrEqual(20);
    expect(errors()).toEqual([]);
    // Nothing else at warn level either: no line per failed request, relay run or transition.
    expect(lines.filter((l) => l.level >= WARN)).toHaveLength(2);
    expect(await metric('cacheside_dependency_failures_total', 'postgres')).toBeGreaterThanOrEqual(20);
    expect(await metric('cacheside_dependency_outages_total', 'postgres')).toBe(1);
    expect(await metric('cacheside_dependency_available', 'postgres')).toBe(1);
  });

  test('Redis stopped under traffic, then started on the same port', async () => {
    lines = [];
    const load = traffic();
    const port = redis.port;
    await redis.stop();
    await until('requests served while Redis is down', () => warned('Redis unavailable').length > 0);
    await until('the circuit open', () => app.breaker.state === 'open');
    redis = await startPrivateRedis({ port });
    await until('Redis available again', () => warned('Redis available again').length > 0);
    await load.stop();

    expect(warned('Redis unavailable')).toHaveLength(1);
    expect(warned('Redis available again')[0]).toMatchObject({ dependency: 'redis' });
    expect(errors()).toEqual([]);
    expect(lines.filter((l) => l.level >= WARN)).toHaveLength(2);
    expect(load.failed).toBe(0); // reads went to PostgreSQL, writes waited for the relay
    expect(await metric('cacheside_dependency_failures_total', 'redis')).toBeGreaterThan(0);
    expect(await metric('cacheside_dependency_outages_total', 'redis')).toBe(1);
    expect(await metric('cacheside_dependency_available', 'redis')).toBe(1);
  });

  test('expected request outcomes log nothing; an unexpected error logs one error line', async () => {
    lines = [];
    expect((await gql(`{ user(id: "x") { name } }`)).codes).toEqual(['BAD_USER_INPUT']);
    const conflict = await gql(
      `mutation { updateProfile(input: { bio: "c", expectedVersion: 999999 }) { version } }`,
      token,
    );
    expect(conflict.codes).toEqual(['CONFLICT']);
    expect(lines.filter((l) => l.level >= WARN)).toEqual([]);

    failBoom = true;
    try {
      const result = await gql(`{ user(id: "2") { posts(first: 1) { id } } }`);
      expect(result.codes).toEqual(['INTERNAL_SERVER_ERROR']); // masked: "Unexpected error."
    } finally {
      failBoom = false;
    }
    expect(errors()).toHaveLength(1);
    expect(errors()[0]!.msg).toBe('unexpected error in a resolver');
  });
});
