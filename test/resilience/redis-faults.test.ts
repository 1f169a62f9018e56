/**
 * Redis down, hung, paused and restarted (a private redis-server, so the machine's Redis is left
 * alone) under 200 concurrent requests, half warm and half cold: no read fails, every answer equals
 * PostgreSQL's, nothing hangs, and concurrent SQL loads stay within DB_MAX_CONCURRENT_LOADS. Then
 * recovery: the breaker closes again, and no value older than a write made during the outage is
 * ever served.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { inArray, sql } from 'drizzle-orm';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { BreakerState } from '../../src/cache/store/layers/circuit-breaker.js';
import { profiles, users } from '../../src/db/schema.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { DEBUG, debugOf } from '../support/debug.js';
import { startPrivateRedis, type PrivateRedis } from '../support/redis.js';
import { until } from '../support/until.js';

const COMMAND_TIMEOUT_MS = 200;
const MAX_LOADS = 4;
/** A liveness bound, not a speed claim: a request stuck on Redis would take far longer. */
const LIVENESS_MS = 50 * COMMAND_TIMEOUT_MS;

let redis: PrivateRedis;
let t: TestApp;
let expected: Map<number, { name: string; bio: string }>;
const transitions: string[] = [];
let activeLoads = 0;
let maxLoads = 0;

beforeAll(async () => {
  redis = await startPrivateRedis();
  t = await createTestApp({
    label: 'faults_redis',
    seed: { users: 120, postsPerUser: 1 },
    env: {
      REDIS_URL: redis.url,
      REDIS_COMMAND_TIMEOUT_MS: String(COMMAND_TIMEOUT_MS),
      DB_MAX_CONCURRENT_LOADS: String(MAX_LOADS),
      OUTBOX_POLL_INTERVAL_MS: '50',
    },
    breaker: { openMs: 200, maxOpenMs: 400, onTransition: (from, to) => transitions.push(`${from}>${to}`) },
    repositoryOptions: {
      beforeQuery: () => {
        activeLoads += 1;
        maxLoads = Math.max(maxLoads, activeLoads);
      },
      afterQuery: () => {
        activeLoads -= 1;
      },
    },
  });
  const db = t.testDb.database.db;
  const rows = await db
    .select({ id: users.id, name: users.name, bio: profiles.bio })
    .from(users)
    .innerJoin(profiles, sql`${profiles.userId} = ${users.id}`);
  expected = new Map(rows.map((r) => [r.id, { name: r.name, bio: r.bio }]));
}, 60_000);

afterAll(async () => {
  await t?.close();
  await redis?.stop();
});

afterEach(async () => {
  // Leave Redis up and the breaker closed for the next scenario.
  await untilClosed();
});

const query = (id: number) => `{ user(id: "${id}") { id name profile { bio } } }`;
const PAGE = `{ userPage(first: 30) { nodes { id } } }`;

/**
 * 200 requests, half for warm ids (1..100) and half for cold ones (101..120): 100 already in flight
 * when `fault` strikes, 100 more sent while it lasts.
 */
async function load(fault: () => Promise<void> | void) {
  maxLoads = 0;
  const started = Date.now();
  const wave = (offset: number) =>
    Array.from({ length: 100 }, (_, i) => {
      const id = (offset + i) % 2 === 0 ? 1 + ((offset + i) % 100) : 101 + ((offset + i) % 20);
      return t
        .gql<{ user: { id: string; name: string; profile: { bio: string } } }>(query(id))
        .then((response) => ({ id, response, ms: Date.now() - started }));
    });
  const inFlight = wave(0);
  await sleep(1);
  await fault();
  const during = wave(100);
  return Promise.all([...inFlight, ...during]);
}

function expectCorrect(results: Awaited<ReturnType<typeof load>>) {
  for (const { id, response, ms } of results) {
    expect(response.body.errors, `user ${id}`).toBeUndefined();
    expect(response.body.data?.user).toEqual({
      id: String(id),
      name: expected.get(id)!.name,
      profile: { bio: expected.get(id)!.bio },
    });
    expect(ms).toBeLessThan(LIVENESS_MS);
  }
  expect(maxLoads).toBeLessThanOrEqual(MAX_LOADS);
}

async function warm() {
  await t.gql(
    `{ users(ids: [${Array.from({ length: 100 }, (_, i) => `"${i + 1}"`).join(',')}]) { profile { bio } } }`,
  );
}

/**
 * Reads `id` on `on` until its answer is served from memory (x-cache-debug `checked: l1`): with L1 and
 * the response tier on, an answer is stored, then checked against Redis, then kept in process — a
 * store call past its timeout on a busy machine can leave it unstored a while longer.
 */
async function untilKept(on: TestApp, id: number): Promise<void> {
  await until(`user ${id}'s answer kept in process (prefix ${on.prefix})`, async () => {
    const answer = debugOf(await on.gql(query(id), { headers: DEBUG })).response;
    return answer?.outcome === 'hit' && answer.checked === 'l1';
  });
}

/** Reads until the breaker has closed again (bounded). */
async function untilClosed(): Promise<void> {
  for (let i = 0; i < 200 && t.app.breaker.state !== 'closed'; i += 1) {
    await t.gql(query(1));
    await sleep(20);
  }
  expect(t.app.breaker.state).toBe<BreakerState>('closed');
}

describe('Redis faults under load', () => {
  test('Redis shut down mid-load: every read answered from PostgreSQL, correctly', async () => {
    await warm();
    try {
      const results = await load(() => redis.stop());
      expectCorrect(results);
      // Those sent while Redis was down were answered around it.
      expect(results.slice(100).every((r) => r.response.headers.get('x-cache') === 'BYPASS')).toBe(true);
    } finally {
      redis = await startPrivateRedis({ port: redis.port });
    }
  });

  test('Redis hung (SIGSTOP) mid-load: no request waits on it for long, all answers correct', async () => {
    await warm();
    const results = await load(() => redis.pause());
    redis.resume();
    expectCorrect(results);
  });

  test('CLIENT PAUSE mid-load: same', async () => {
    await warm();
    const admin = new Redis(redis.url);
    admin.on('error', () => {});
    try {
      const results = await load(async () => {
        await admin.call('CLIENT', 'PAUSE', '2000', 'ALL');
      });
      expectCorrect(results);
    } finally {
      await admin.call('CLIENT', 'UNPAUSE').catch(() => {});
      admin.disconnect();
    }
  });

  test('Redis restarted mid-load (empty afterwards): all answers correct, then the cache refills', async () => {
    await warm();
    const results = await load(async () => {
      await redis.stop();
      redis = await startPrivateRedis({ port: redis.port });
    });
    expectCorrect(results);
    await untilClosed();
    // Bounded: on a loaded machine a late command may time out and send a read around Redis once more.
    let cache = '';
    for (let i = 0; i < 50 && cache !== 'HIT'; i += 1) {
      cache = (await t.gql(query(5))).headers.get('x-cache') ?? '';
      if (cache !== 'HIT') await sleep(20);
    }
    expect(cache).toBe('HIT');
  });

  test('the breaker opens, goes half-open and closes again', async () => {
    transitions.length = 0;
    redis.pause();
    for (let i = 0; i < 5; i += 1) await t.gql(query(1 + i));
    redis.resume();
    await untilClosed();
    expect(transitions).toEqual(
      expect.arrayContaining(['closed>open', 'open>half-open', 'half-open>closed']),
    );
    expect(transitions.indexOf('closed>open')).toBeLessThan(transitions.lastIndexOf('half-open>closed'));
    expect(t.app.breaker.shortCircuited).toBeGreaterThan(0);
  });
});

/**
 * With L1 on, each instance also answers from its own memory — entity entries, and whole answers
 * Redis vouched for (src/cache/response/response-memo.ts) — on the word of the events it hears. An
 * outage is when events are missed, so what an instance kept must not outlive it: every L1, and
 * every kept answer with it, is cleared when the instance's subscription to Redis comes back. The
 * TTL here is far longer than the test, so only that clear can keep the old answers out.
 */
const RECOVERY_SCENARIOS = [
  { name: 'entity tier', l1: false, env: {} },
  {
    name: 'L1 and kept answers on',
    l1: true,
    env: { CACHE_L1_MAX_ENTRIES: '1000', CACHE_L1_TTL_MS: '600000', RESPONSE_CACHE: 'on' },
  },
] as const;

describe.each(RECOVERY_SCENARIOS)(
  'recovery never serves what an outage-time write replaced ($name)',
  (scenario) => {
    // Redis with persistence comes back with the values it had when it went down: exactly the values
    // that writes made during the outage replaced, and whose write-throughs failed.
    let durable: PrivateRedis;
    let u: TestApp;
    /** An instance that makes no Redis call of its own during the outage (no traffic, no monitor). */
    let idle: TestApp;
    let dir: string;
    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'cs-aof-'));
      durable = await startPrivateRedis({
        args: ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir],
      });
      const instance = {
        label: 'faults_recovery',
        env: {
          REDIS_URL: durable.url,
          REDIS_COMMAND_TIMEOUT_MS: String(COMMAND_TIMEOUT_MS),
          OUTBOX_POLL_INTERVAL_MS: '50',
          // A monitor's calls would open and probe its circuit, draining the outbox for everyone.
          CONSISTENCY_SAMPLE_INTERVAL_MS: '0',
          ...scenario.env,
        },
        breaker: { openMs: 100, maxOpenMs: 200 },
      };
      u = await createTestApp({ ...instance, seed: { users: 20, postsPerUser: 1 } });
      idle = await createTestApp({ ...instance, share: u });
    }, 60_000);
    afterAll(async () => {
      await idle?.close();
      await u?.close();
      await durable?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    test('Redis down, rows changed (API and plain SQL, a user inserted), Redis back with its old data: the old values and the old page are never served', async () => {
      const ids = [10, 11];
      const readOn = (t: TestApp, id: number) => t.gql<{ user: { profile: { bio: string } } }>(query(id));
      const read = (id: number) => readOn(u, id);
      await Promise.all(ids.map(read));
      expect((await read(10)).headers.get('x-cache')).toBe('HIT');
      expect((await readOn(idle, 10)).headers.get('x-cache')).toBe('HIT');
      // A page of user ids, cached on both (a dependent entry of the user directory, with it on disk).
      const pageOn = async (t: TestApp) =>
        (await t.gql<{ userPage: { nodes: { id: string }[] } }>(PAGE)).body.data?.userPage.nodes.map(
          (n) => n.id,
        );
      for (const t of [u, idle]) expect(await pageOn(t)).toHaveLength(20);
      if (scenario.l1) {
        // Both instances answer these from memory now, with no round trip: what the outage must not
        // let them serve again once Redis is back.
        for (const t of [u, idle]) for (const id of ids) await untilKept(t, id);
      }
      const pageKey = u.app.cache.keys.page(30, 0);
      expect((await u.app.store.getDependent(pageKey, Date.now())).status).toBe('current');

      // No relay polls during this test: what repairs Redis is only what the circuit breakers run
      // before they close (the relay's drain), so a reader that skips the breaker would see old data.
      await u.app.relay.stop();
      await idle.app.relay.stop();
      const reconnectOf = (t: TestApp) =>
        new Promise<void>((resolve) => {
          const off = t.app.store.onReconnect!(() => {
            off();
            resolve();
          });
        });
      const idleReconnected = reconnectOf(idle);
      const writerReconnected = reconnectOf(u);
      await durable.stop();
      const token = await u.token(10);
      const viaApi = await u.gql(
        `mutation { updateProfile(input: { bio: "changed through the API" }) { version } }`,
        {
          token,
        },
      );
      expect(viaApi.body.errors).toBeUndefined();
      // Read-your-writes on the writer while Redis is down, also from its memory: its write-through
      // failed, but its own L1 fenced the new version first, and that dropped its kept answer.
      expect((await read(10)).body.data?.user.profile.bio).toBe('changed through the API');
      // A write that bypasses the API entirely: only the outbox relay can invalidate it.
      await u.testDb.database.db
        .update(profiles)
        .set({ bio: 'changed by plain SQL' })
        .where(inArray(profiles.userId, [11]));
      // And a user inserted by plain SQL: the directory's outbox row waits for Redis.
      const [inserted] = await u.testDb.database.db
        .insert(users)
        .values({ name: 'Inserted during the outage', email: 'outage@example.com' })
        .returning({ id: users.id });
      const newId = String(inserted!.id);
      durable = await startPrivateRedis({
        port: durable.port,
        args: ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir],
      });
      // Redis is back, and no relay may have run: it holds exactly the old values. The idle
      // instance's two connections come back one after the other, each on its own backoff, and
      // neither may let it read them: its first read comes the moment its command connection answers
      // (a call that skips the breaker, so that the instance stays idle until then), which is mostly
      // before its subscription is back — the window where, before the command connection's return
      // tripped the breaker too, it read the old bio from Redis (and with L1, from its memory).
      await until("the idle instance's command connection", () =>
        idle.app.cache.origin.ttlMany([`${idle.prefix}:probe`]).then(
          () => true,
          () => false,
        ),
      );
      expect((await readOn(idle, 11)).body.data?.user.profile.bio).toBe('changed by plain SQL');
      await idleReconnected;
      // With L1, an instance's memory is L1's window until one of its own connections is back (the
      // plain SQL write above sent no event anyone could hear): its return clears L1, and from then
      // on the instance holds nothing older. (`onReconnect` hears of either connection, the command
      // one mostly first: test/store/redis-reconnect.test.ts.)
      if (scenario.l1) await writerReconnected;

      // From the moment Redis is back, and for a while: never the old bios — on the instance that saw
      // the outage, nor on the one that made no call during it (its circuit opens when its connection
      // to Redis comes back, and closes only after a relay drained the outbox).
      for (let i = 0; i < 60; i += 1) {
        for (const t of [idle, u]) {
          const [a, b] = await Promise.all(ids.map((id) => readOn(t, id)));
          expect(a!.body.data?.user.profile.bio).toBe('changed through the API');
          expect(b!.body.data?.user.profile.bio).toBe('changed by plain SQL');
          expect(await pageOn(t)).toContain(newId);
        }
        await sleep(10);
      }
      for (let i = 0; i < 200 && u.app.breaker.state !== 'closed'; i += 1) {
        await read(1);
        await sleep(20);
      }
      expect(u.app.breaker.state).toBe('closed');
      const cached = await read(11);
      expect(cached.body.data?.user.profile.bio).toBe('changed by plain SQL');
      for (const t of [u, idle]) expect(await pageOn(t)).toContain(newId);
    });
  },
);
