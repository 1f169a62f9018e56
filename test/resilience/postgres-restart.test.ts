/**
 * PostgreSQL restarted, then stopped and started, under load on two instances (a private server):
 * no process exits (vitest fails the file on an uncaught exception), cached reads keep answering,
 * mutations fail fast with SERVICE_UNAVAILABLE while it is down, no request waits longer than the
 * statement timeout plus the connect timeout, and once it is back every instance's writes and cold
 * reads succeed again — no pool stays poisoned. The recovery time is printed: docs/operations.md
 * quotes it.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createApp, type App } from '../../src/app/create-app.js';
import { signToken } from '../../src/auth/tokens.js';
import { loadConfig } from '../../src/config.js';
import { createDatabase } from '../../src/db/client.js';
import { migrateDatabase } from '../../src/db/migrate.js';
import { seedDatabase } from '../../src/db/seed.js';
import { errorCodes, postQuery, TEST_AUTH_SECRET } from '../support/app.js';
import { startPrivatePostgres, type PrivatePostgres } from '../support/postgres.js';
import { purgeKeys, REDIS_URL, uniquePrefix } from '../support/redis.js';
import { until } from '../support/until.js';

/**
 * A request never waits longer than this: statement timeout 5 s + connect timeout 2 s + margin. It
 * also bounds recovery, which takes about a second (the reconnect backoff's cap; docs/operations.md
 * quotes the figures this file prints): postgres.js's own backoff took 16 s.
 */
const LONGEST_MS = 10_000;
const HOT = 10;
const prefix = uniquePrefix('pg_restart');
let pg: PrivatePostgres;
let apps: App[];
const tokens = new Map<number, string>();

interface Outcome {
  readonly kind: 'hot read' | 'cold read' | 'write';
  readonly ms: number;
  readonly codes: (string | undefined)[];
  readonly status: number;
}

async function call(app: App, query: string, token?: string) {
  const response = await postQuery(app, query, token);
  return { status: response.status, codes: errorCodes(response) };
}

let nextCold = HOT + 1;
async function operation(app: App, kind: Outcome['kind']): Promise<Outcome> {
  const started = performance.now();
  const userId = kind === 'cold read' ? nextCold++ : 1 + Math.floor(Math.random() * HOT);
  const result =
    kind === 'write'
      ? await call(
          app,
          `mutation { updateProfile(input: { bio: "restart ${started}" }) { version } }`,
          tokens.get(userId),
        )
      : await call(app, `{ user(id: "${userId}") { name profile { bio } } }`);
  return { kind, ms: performance.now() - started, ...result };
}

/** Clients on both instances until `stop()`; everything they saw. */
function load() {
  const outcomes: Outcome[] = [];
  let running = true;
  const kinds: Outcome['kind'][] = ['hot read', 'hot read', 'hot read', 'hot read', 'write', 'cold read'];
  const clients = apps.flatMap((app) =>
    Array.from({ length: 3 }, async () => {
      for (let i = 0; running; i += 1) outcomes.push(await operation(app, kinds[i % kinds.length]!));
    }),
  );
  return {
    outcomes,
    async stop() {
      running = false;
      await Promise.all(clients);
    },
  };
}

beforeAll(async () => {
  pg = await startPrivatePostgres();
  const config = loadConfig({
    DATABASE_URL: pg.url,
    REDIS_URL,
    CACHE_PREFIX: prefix,
    AUTH_SECRET: TEST_AUTH_SECRET,
    LOG_LEVEL: 'silent',
    CONSISTENCY_SAMPLE_INTERVAL_MS: '0',
  });
  const setup = await createDatabase(config.database, { poolSize: 1 });
  await migrateDatabase(config.database, setup);
  await seedDatabase(setup.db, { users: 2000, postsPerUser: 1, announce: false });
  await setup.close();
  apps = [await createApp(config), await createApp(config)];
  for (let id = 1; id <= HOT; id += 1) tokens.set(id, await signToken(TEST_AUTH_SECRET, id));
  // Warm: the hot users (and the callers of the mutations) are cached on both instances.
  for (const app of apps) for (let id = 1; id <= HOT; id += 1) await operation(app, 'hot read');
  for (const app of apps)
    for (let id = 1; id <= HOT; id += 1) await call(app, `{ user(id: "${id}") { name profile { bio } } }`);
}, 120_000);

afterAll(async () => {
  for (const app of apps ?? []) await app.close();
  await pg?.destroy();
  await purgeKeys(`${prefix}:`);
});

/** Until a write and a cold read have succeeded on every instance; returns how long that took, ms. */
async function recovery(): Promise<number> {
  const started = performance.now();
  const ok = (o: Outcome) => o.status === 200 && o.codes.length === 0;
  await until(
    'writes and cold reads to succeed on every instance',
    async () => {
      for (const app of apps) {
        if (!ok(await operation(app, 'write')) || !ok(await operation(app, 'cold read'))) return false;
      }
      return true;
    },
    { everyMs: 20 },
  );
  return performance.now() - started;
}

const expectNoHang = (outcomes: readonly Outcome[]) =>
  expect(Math.max(...outcomes.map((o) => o.ms))).toBeLessThan(LONGEST_MS);
const expectOnlyOutageErrors = (outcomes: readonly Outcome[]) => {
  for (const o of outcomes) {
    expect(o.status, JSON.stringify(o)).toBe(200);
    for (const code of o.codes) expect(code, JSON.stringify(o)).toBe('SERVICE_UNAVAILABLE');
  }
};

describe('PostgreSQL faults under load, two instances', () => {
  test('a restart (fast shutdown, start): nothing exits, nothing hangs, every instance recovers', async () => {
    const traffic = load();
    await until('traffic', () => traffic.outcomes.length > 50);
    await pg.restart();
    const recoveredMs = await recovery();
    await traffic.stop();
    console.log(
      `[pg restart] operations=${traffic.outcomes.length} recovered in ${Math.round(recoveredMs)} ms`,
    );
    expect(recoveredMs).toBeLessThan(LONGEST_MS);
    expectNoHang(traffic.outcomes);
    expectOnlyOutageErrors(traffic.outcomes);
    // Hot reads never failed: they are cached.
    expect(traffic.outcomes.filter((o) => o.kind === 'hot read' && o.codes.length > 0)).toEqual([]);
    // And no pool is poisoned: a run of operations after recovery all succeed.
    for (let i = 0; i < 30; i += 1) {
      for (const app of apps) expect((await operation(app, i % 2 ? 'write' : 'cold read')).codes).toEqual([]);
    }
  });

  test('stopped: cached reads answer, mutations fail fast; started: every instance recovers', async () => {
    const traffic = load();
    await until('traffic', () => traffic.outcomes.length > 50);
    await pg.stop();
    const down = traffic.outcomes.length;
    await until('traffic while PostgreSQL is down', () => traffic.outcomes.length > down + 200);
    const duringOutage = traffic.outcomes.slice(down + 50); // past the requests already in flight
    expect(duringOutage.filter((o) => o.kind === 'hot read' && o.codes.length > 0)).toEqual([]);
    const writes = duringOutage.filter((o) => o.kind === 'write');
    expect(writes.length).toBeGreaterThan(0);
    for (const w of writes) expect(w.codes).toEqual(['SERVICE_UNAVAILABLE']);
    await pg.start();
    const recoveredMs = await recovery();
    await traffic.stop();
    console.log(
      `[pg stop/start] operations=${traffic.outcomes.length} slowest write while down ${Math.round(Math.max(...writes.map((w) => w.ms)))} ms, recovered in ${Math.round(recoveredMs)} ms`,
    );
    expect(recoveredMs).toBeLessThan(LONGEST_MS);
    expectNoHang(traffic.outcomes);
    expectOnlyOutageErrors(traffic.outcomes);
  });
});
