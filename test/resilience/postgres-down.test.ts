/**
 * PostgreSQL down (a private server, stopped and started by the test): what is cached keeps being
 * served, an expired entry is served stale within the grace and not after it, everything that needs
 * the database fails fast with SERVICE_UNAVAILABLE, and service resumes when it comes back.
 *
 * No wall-clock waits: TTLs are long (a busy machine cannot cross them), and the entry that must be
 * past its logical TTL is put in that state by rewriting its header's `staleAt`, keeping its
 * physical TTL (the grace); the end of the grace is Redis expiring the key, done with a DEL.
 */
import { Redis } from 'ioredis';
import { parseList } from 'structured-headers';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createDatabase, type Database } from '../../src/db/client.js';
import { migrateDatabase } from '../../src/db/migrate.js';
import { seedDatabase } from '../../src/db/seed.js';
import { createApp, type App } from '../../src/app/create-app.js';
import { signToken } from '../../src/auth/tokens.js';
import { postQuery, TEST_AUTH_SECRET } from '../support/app.js';
import { startPrivatePostgres, type PrivatePostgres } from '../support/postgres.js';
import { purgeKeys, REDIS_URL, uniquePrefix } from '../support/redis.js';
import { until } from '../support/until.js';
import { decodeEntry, encodeEntry } from '../../src/cache/store/redis/wire-format.js';

const TTL_SECONDS = 600;
const GRACE_SECONDS = 1200;

let pg: PrivatePostgres;
let database: Database;
let app: App;
let redis: Redis;
const prefix = uniquePrefix('faults_pg');

const gql = (query: string, token?: string) => postQuery(app, query, token);
const codeOf = (r: Awaited<ReturnType<typeof gql>>) => r.body.errors?.[0]?.extensions?.code;

beforeAll(async () => {
  pg = await startPrivatePostgres();
  const config = loadConfig({
    DATABASE_URL: pg.url,
    REDIS_URL,
    CACHE_PREFIX: prefix,
    AUTH_SECRET: TEST_AUTH_SECRET,
    LOG_LEVEL: 'silent',
    CACHE_TTL_SECONDS: String(TTL_SECONDS),
    CACHE_STALE_GRACE_SECONDS: String(GRACE_SECONDS),
  });
  database = await createDatabase(config.database, { poolSize: 4 });
  await migrateDatabase(config.database, database);
  await seedDatabase(database.db, { users: 10, postsPerUser: 1, announce: false });
  app = await createApp(config, { database });
  redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
}, 120_000);

afterAll(async () => {
  redis?.disconnect();
  await app?.close();
  await database?.close();
  await pg?.destroy();
  await purgeKeys(`${prefix}:`);
});

describe('PostgreSQL down', () => {
  test('cached reads go on, expired ones are served stale within the grace, the rest fail fast; then it recovers', async () => {
    const token = await signToken(TEST_AUTH_SECRET, 2);
    // User 1 is cached, then made past its logical TTL (not its physical one: the grace).
    await gql(`{ user(id: "1") { name } }`);
    const key = `${prefix}:v1:user:{1}`;
    const entry = decodeEntry((await redis.getBuffer(key))!)!;
    expect(await redis.pttl(key)).toBeGreaterThan(TTL_SECONDS * 1000); // logical + grace
    await redis.set(key, encodeEntry({ ...entry, staleAt: Date.now() - 12_000 }), 'KEEPTTL');
    // User 2 (and the caller's own user for auth) are cached fresh.
    await gql(`{ user(id: "2") { name profile { bio } } }`);

    await pg.stop();

    const fresh = await gql(`{ user(id: "2") { name profile { bio } } }`);
    expect(fresh.body.errors).toBeUndefined();
    expect(fresh.headers.get('x-cache')).toBe('HIT');

    const stale = await gql(`{ user(id: "1") { name } }`);
    expect(stale.body.errors).toBeUndefined();
    expect(stale.body.data).toEqual({ user: { name: expect.any(String) } });
    const [[, params]] = parseList(stale.headers.get('cache-status')!) as unknown as [
      [unknown, Map<string, unknown>],
    ];
    expect(String(params.get('fwd'))).toBe('stale');
    expect(Number(params.get('ttl'))).toBeLessThanOrEqual(-12);

    const uncached = await gql(`{ user(id: "7") { name } }`);
    expect(uncached.status).toBe(200);
    expect(codeOf(uncached)).toBe('SERVICE_UNAVAILABLE');

    const write = await gql(`mutation { updateProfile(input: { bio: "down" }) { version } }`, token);
    expect(codeOf(write)).toBe('SERVICE_UNAVAILABLE');

    // Past the grace Redis drops the key (its physical TTL), and there is nothing left to serve.
    await redis.del(key);
    const expired = await gql(`{ user(id: "1") { name } }`);
    expect(codeOf(expired)).toBe('SERVICE_UNAVAILABLE');

    await pg.start();
    // Recovery needs no restart of ours: the pool reconnects by itself (within its backoff's cap).
    await until(
      'a cold read to succeed',
      async () => (await gql(`{ user(id: "7") { name } }`)).body.errors === undefined,
    );
    const written = await gql(
      `mutation { updateProfile(input: { bio: "up again" }) { version bio } }`,
      token,
    );
    expect(written.body).toEqual({ data: { updateProfile: { version: 2, bio: 'up again' } } });
  }, 60_000);
});
