/**
 * What an operator sees: metrics that move with the requests, readiness that tells PostgreSQL down
 * (503) from Redis down (200, degraded), request ids in responses, and the per-request debug detail
 * only when asked for and allowed.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createDatabase, type Database } from '../../src/db/client.js';
import { migrateDatabase } from '../../src/db/migrate.js';
import { createApp, type App } from '../../src/app/create-app.js';
import { createTestApp, TEST_AUTH_SECRET, type TestApp } from '../support/app.js';
import { DEBUG } from '../support/debug.js';
import { startPrivatePostgres, type PrivatePostgres } from '../support/postgres.js';
import { startPrivateRedis, uniquePrefix, type PrivateRedis } from '../support/redis.js';
import { until } from '../support/until.js';

/** The value of one sample of the Prometheus text, 0 when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (wanted.every((pair) => line.includes(pair))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

describe('metrics', () => {
  let t: TestApp;
  let other: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ label: 'metrics', seed: { users: 5, postsPerUser: 1 } });
    other = await createTestApp({ label: 'metrics', share: t });
  });
  afterAll(async () => {
    await other?.close();
    await t?.close();
  });

  const scrape = async (app: TestApp = t) => {
    const response = await app.fetch('/metrics');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/plain');
    return response.text();
  };

  test('one MISS then one HIT move miss and hit by one each, and SQL by one', async () => {
    const before = await scrape();
    await t.gql(`{ post(id: "3") { title } }`);
    await t.gql(`{ post(id: "3") { title } }`);
    const after = await scrape();
    const delta = (name: string, labels: Record<string, string>) =>
      sample(after, name, labels) - sample(before, name, labels);
    expect(delta('cacheside_cache_lookups_total', { entity: 'post', result: 'miss' })).toBe(1);
    expect(delta('cacheside_cache_lookups_total', { entity: 'post', result: 'hit' })).toBe(1);
    expect(delta('cacheside_db_queries_total', { query: 'posts', result: 'ok' })).toBe(1);
    expect(
      delta('cacheside_http_request_duration_seconds_count', { operation: 'query', status: '200' }),
    ).toBe(2);
  });

  test('two instances in one process keep separate registries', async () => {
    await t.gql(`{ post(id: "4") { title } }`);
    const mine = sample(await scrape(t), 'cacheside_cache_lookups_total', { entity: 'post', result: 'miss' });
    const theirs = sample(await scrape(other), 'cacheside_cache_lookups_total', {
      entity: 'post',
      result: 'miss',
    });
    expect(mine).toBeGreaterThan(0);
    expect(theirs).toBe(0);
  });

  test('the outbox backlog, the breaker and process metrics are exported', async () => {
    const text = await scrape();
    for (const name of [
      'cacheside_outbox_backlog',
      'cacheside_outbox_oldest_age_seconds',
      'cacheside_cache_breaker_state',
      'cacheside_cache_lock_waits_total',
      'cacheside_cache_lock_wait_timeouts_total',
      'cacheside_cache_store_errors_total',
      'process_cpu_user_seconds_total',
      'nodejs_eventloop_lag_seconds',
    ]) {
      expect(text, name).toContain(`# TYPE ${name} `);
    }
    expect(sample(text, 'cacheside_cache_breaker_state')).toBe(0);
  });
});

describe('request ids and debug detail', () => {
  let t: TestApp;
  let off: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ label: 'reqid', store: 'memory', seed: { users: 3, postsPerUser: 1 } });
    off = await createTestApp({
      label: 'reqid_off',
      store: 'memory',
      seed: { users: 3, postsPerUser: 1 },
      env: { CACHE_DEBUG: 'off' },
    });
  });
  afterAll(async () => {
    await off?.close();
    await t?.close();
  });

  test('a sane x-request-id is echoed; a missing or hostile one is replaced by a fresh id', async () => {
    const echoed = await t.gql(`{ user(id: "1") { name } }`, { headers: { 'x-request-id': 'abc-123' } });
    expect(echoed.headers.get('x-request-id')).toBe('abc-123');
    const fresh = await t.gql(`{ user(id: "1") { name } }`);
    expect(fresh.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const hostile = await t.gql(`{ user(id: "1") { name } }`, { headers: { 'x-request-id': 'a b\tc' } });
    expect(hostile.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  test('extensions.cache only with x-cache-debug: 1, and never when CACHE_DEBUG is off', async () => {
    const plain = await t.gql(`{ user(id: "2") { name } }`);
    expect((plain.body as { extensions?: unknown }).extensions).toBeUndefined();
    const debug = await t.gql(`{ user(id: "2") { name } }`, { headers: DEBUG });
    expect(
      (debug.body as { extensions?: { cache?: { lookups: unknown[] } } }).extensions?.cache?.lookups,
    ).toEqual([
      {
        key: expect.stringMatching(/:v1:user:\{2\}$/),
        tier: 'cacheside-memory',
        status: 'hit',
        ttlMs: expect.any(Number),
      },
    ]);
    const refused = await off.gql(`{ user(id: "2") { name } }`, { headers: DEBUG });
    expect((refused.body as { extensions?: unknown }).extensions).toBeUndefined();
  });
});

describe('readiness', () => {
  let redis: PrivateRedis;
  let pg: PrivatePostgres;
  let database: Database;
  let app: App;
  beforeAll(async () => {
    [redis, pg] = await Promise.all([startPrivateRedis(), startPrivatePostgres()]);
    const config = loadConfig({
      DATABASE_URL: pg.url,
      REDIS_URL: redis.url,
      REDIS_COMMAND_TIMEOUT_MS: '100',
      CACHE_PREFIX: uniquePrefix('ready'),
      AUTH_SECRET: TEST_AUTH_SECRET,
      LOG_LEVEL: 'silent',
    });
    database = await createDatabase(config.database, { poolSize: 2 });
    await migrateDatabase(config.database, database);
    app = await createApp(config, { database });
  }, 120_000);
  afterAll(async () => {
    await app?.close();
    await database?.close();
    await Promise.all([redis?.stop(), pg?.destroy()]);
  });

  const ready = async () => {
    const response = await app.yoga.fetch('http://cacheside/ready');
    return {
      status: response.status,
      body: (await response.json()) as { status: string; checks: Record<string, { ok: boolean }> },
    };
  };

  const isReady = async () => {
    const { status, body } = await ready();
    return status === 200 && body.status === 'ready';
  };

  test('200 ready; 200 degraded with Redis stopped; 503 with PostgreSQL stopped; /health stays 200', async () => {
    // Waited for, not assumed: a busy machine can take a while for a first Redis round trip.
    await until('ready', isReady);

    await redis.stop();
    const degraded = await ready();
    expect(degraded).toMatchObject({
      status: 200,
      body: { status: 'degraded', checks: { cache: { ok: false } } },
    });
    redis = await startPrivateRedis({ port: redis.port });

    await pg.stop();
    const down = await ready();
    expect(down).toMatchObject({
      status: 503,
      body: { status: 'unavailable', checks: { database: { ok: false } } },
    });
    expect((await app.yoga.fetch('http://cacheside/health')).status).toBe(200);
    await pg.start();
    // The pool reconnects within its backoff's 1 s cap: until then /ready may still answer 503.
    // (200 `degraded` until the breaker, tripped by Redis's reconnection, closes on the next call.)
    await until('ready again', async () => (await ready()).status === 200);
  }, 60_000);
});
