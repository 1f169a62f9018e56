/**
 * The in-process L1 tier (CACHE_L1_MAX_ENTRIES > 0) over the real Redis and PostgreSQL, two instances
 * (A and B) sharing a database and a key prefix:
 *
 * 1. reads go L1 → Redis → PostgreSQL, and the headers say which tier answered (Cache-Status lists
 *    both, origin-nearest first; X-Cache counts an L1 answer as a hit);
 * 2. the writer's own L1 takes its write at once (read-your-writes on the writing instance);
 * 3. another instance's L1 drops an older entry when the relay's event arrives; duplicated and
 *    reordered events change nothing;
 * 4. the subscriber connection coming back (events may have been missed) clears L1;
 * 5. the coherence window — how long another instance still reads the old version after a mutation
 *    returned — measured over a bounded stress run, printed, and checked against a generous bound.
 *
 * Tests 1–3 use a long L1 TTL (a minute), so that only events (or their absence) decide what L1
 * serves, however slow the machine; test 5 uses the default second. Each test works on its own users.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Redis } from 'ioredis';
import { encodeEvents, type InvalidationEvent } from '../../src/cache/events/invalidation-events.js';
import { L1_TIER } from '../../src/cache/read/l1-tier.js';
import type { CacheStore } from '../../src/cache/store/contract.js';
import { loadConfig } from '../../src/config.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { DEBUG, debugOf } from '../support/debug.js';
import { startPrivateRedis, type PrivateRedis, storeOf } from '../support/redis.js';
import { measureWindow, windowEnv } from '../support/coherence-window.js';
import { eventReaching, updateBio } from '../support/updates.js';

const PROFILE = `query Profile($id: ID!) { user(id: $id) { id profile { bio version } } }`;
const POSTS = `query Posts($id: ID!) { user(id: $id) { posts(first: 1) { id title } } }`;
const CREATE = `mutation Create($input: CreatePostInput!) { createPost(input: $input) { id } }`;

// These tests watch L1 itself, header by header: the response tier, which would answer repeated
// queries before L1 is asked, stays off even in `npm run test:response-tier`
// (test/read-path/response-tier.test.ts runs the two together).
const L1_ENV = { CACHE_L1_MAX_ENTRIES: '1000', CACHE_L1_TTL_MS: '60000', RESPONSE_CACHE: 'off' };

async function readProfile(t: TestApp, userId: number) {
  const response = await t.gql<{ user: { profile: { bio: string; version: number } } }>(PROFILE, {
    variables: { id: String(userId) },
    headers: DEBUG,
  });
  expect(response.body.errors).toBeUndefined();
  const debug = debugOf(response);
  const lookup = debug.lookups.find((l) => l.key.endsWith(`:profile:{${userId}}`));
  return {
    ...response.body.data!.user.profile,
    xCache: response.headers.get('x-cache'),
    cacheStatus: response.headers.get('cache-status'),
    /** The tier that answered the profile lookup. */
    tier: lookup?.tier,
    outcome: lookup?.status,
    storeRoundTrips: debug.storeRoundTrips,
    sql: debug.sqlStatements,
  };
}

describe('two instances with L1 on, relays driven by hand', () => {
  let a: TestApp;
  let b: TestApp;

  beforeAll(async () => {
    a = await createTestApp({
      label: 'l1',
      seed: { users: 30, postsPerUser: 3 },
      env: L1_ENV,
      startRelay: false,
    });
    b = await createTestApp({ label: 'l1', share: a, env: L1_ENV, startRelay: false });
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
  });

  test('1. cold: both tiers miss; warm on another instance: Redis answers; then L1 does, with no round trip', async () => {
    const cold = await readProfile(a, 1);
    expect(cold.xCache).toBe('MISS');
    expect(cold.cacheStatus).toBe(
      'cacheside-redis; fwd=miss; stored; detail="hit=0 miss=2", cacheside-l1; fwd=miss; detail="hit=0 miss=2"',
    );

    const fromRedis = await readProfile(b, 1);
    expect(fromRedis.xCache).toBe('HIT');
    expect(fromRedis.cacheStatus).toBe(
      'cacheside-redis; hit; detail="hit=2 miss=0", cacheside-l1; fwd=miss; detail="hit=0 miss=2"',
    );
    expect(fromRedis.tier).toBe('cacheside-redis');

    for (const t of [a, b]) {
      const fromL1 = await readProfile(t, 1);
      expect(fromL1.xCache).toBe('HIT');
      expect(fromL1.cacheStatus).toBe('cacheside-l1; hit; detail="hit=2 miss=0"');
      expect(fromL1.tier).toBe(L1_TIER);
      expect(fromL1.outcome).toBe('hit');
      expect({ sql: fromL1.sql, storeRoundTrips: fromL1.storeRoundTrips }).toEqual({
        sql: 0,
        storeRoundTrips: 0,
      });
    }
  });

  test('1b. a request answered partly by L1 says so in both members; unknown ids are negative hits in L1 too', async () => {
    await readProfile(a, 2); // user 2 and profile 2 now in A's L1
    const response = await a.gql(`{ users(ids: ["2", "3", "404"]) { id } }`, { headers: DEBUG });
    expect(response.headers.get('x-cache')).toBe('PARTIAL');
    expect(response.headers.get('cache-status')).toBe(
      'cacheside-redis; fwd=miss; stored; detail="hit=0 miss=2", cacheside-l1; fwd=partial; detail="hit=1 miss=2"',
    );
    const again = await a.gql(`{ users(ids: ["2", "3", "404"]) { id } }`, { headers: DEBUG });
    expect(debugOf(again).lookups.map((l) => [l.tier, l.status])).toEqual([
      [L1_TIER, 'hit'],
      [L1_TIER, 'hit'],
      [L1_TIER, 'negative_hit'],
    ]);
    expect(again.headers.get('x-cache-hits')).toBe('3');
  });

  test("2. the writer's L1 takes its write: the writing instance reads the new version at once, from L1", async () => {
    for (const t of [a, b, a, b]) await readProfile(t, 4);
    const version = await updateBio(a, 4, 'written on A');
    const onA = await readProfile(a, 4);
    expect(onA).toMatchObject({ version, bio: 'written on A', tier: L1_TIER, storeRoundTrips: 0 });
  });

  test("2b. createPost tombstones the author's list in the writer's L1 too", async () => {
    const before = await a.gql<{ user: { posts: { id: string }[] } }>(POSTS, { variables: { id: '5' } });
    await a.gql(POSTS, { variables: { id: '5' } }); // in A's L1 now
    const created = await a.gql<{ createPost: { id: string } }>(CREATE, {
      variables: { input: { title: 'New on A', body: 'body' } },
      token: await a.token(5),
    });
    expect(created.body.errors).toBeUndefined();
    const after = await a.gql<{ user: { posts: { id: string; title: string }[] } }>(POSTS, {
      variables: { id: '5' },
    });
    expect(after.body.data!.user.posts[0]).toEqual({
      id: created.body.data!.createPost.id,
      title: 'New on A',
    });
    expect(after.body.data!.user.posts[0]!.id).not.toBe(before.body.data!.user.posts[0]!.id);
  });

  test("3. another instance's L1 serves the older version until the event arrives, then the new one", async () => {
    for (const t of [a, b, a, b]) await readProfile(t, 6);
    const version = await updateBio(a, 6, 'changed on A');

    // Before the relay runs: B's L1 still holds version 1 — the coherence window, on purpose.
    const lagging = await readProfile(b, 6);
    expect(lagging).toMatchObject({ version: version - 1, tier: L1_TIER });

    const delivered = eventReaching(b, 'profile', 6);
    expect(await a.app.relay.runOnce()).toBeGreaterThanOrEqual(1);
    expect(await delivered).toEqual({ entity: 'profile', id: 6, version });

    const fresh = await readProfile(b, 6);
    expect(fresh).toMatchObject({ version, bio: 'changed on A', tier: 'cacheside-redis', outcome: 'hit' });
    expect((await readProfile(b, 6)).tier).toBe(L1_TIER);
  });

  test('3b. duplicated and reordered events change nothing: the newer entry stays in L1', async () => {
    await updateBio(a, 7, 'second');
    const latest = await updateBio(a, 7, 'third');
    await a.app.relay.runOnce();
    for (let i = 0; i < 2; i += 1) expect((await readProfile(b, 7)).version).toBe(latest);
    expect((await readProfile(b, 7)).tier).toBe(L1_TIER);

    const delivered = eventReaching(b, 'profile', 7);
    const stale: InvalidationEvent[] = [
      { entity: 'profile', id: 7, version: latest },
      { entity: 'profile', id: 7, version: latest - 1 },
      { entity: 'profile', id: 7, version: 1 },
    ];
    await a.app.store.publish(`${a.prefix}:v1:events`, encodeEvents(stale));
    await delivered;
    expect(await readProfile(b, 7)).toMatchObject({ version: latest, bio: 'third', tier: L1_TIER });
  });

  test('3c. a malformed message on the events channel is dropped; L1 keeps serving', async () => {
    await readProfile(b, 8);
    const delivered = eventReaching(b, 'profile', 8);
    await a.app.store.publish(`${a.prefix}:v1:events`, 'not json');
    await a.app.store.publish(
      `${a.prefix}:v1:events`,
      encodeEvents([{ entity: 'profile', id: 8, version: 0 }]),
    );
    await delivered;
    expect((await readProfile(b, 8)).tier).toBe(L1_TIER);
  });
});

describe('L1 and a subscriber connection that is lost and comes back', () => {
  let redis: PrivateRedis;
  /** The app's own store (the test watches its reconnects), on a private Redis. */
  let store: CacheStore;
  let t: TestApp;

  beforeAll(async () => {
    redis = await startPrivateRedis();
    store = storeOf(loadConfig({ REDIS_URL: redis.url }));
    t = await createTestApp({
      label: 'l1_reconnect',
      seed: { users: 5, postsPerUser: 1 },
      store,
      env: L1_ENV,
      startRelay: false,
    });
  });
  afterAll(async () => {
    await t?.close();
    await store?.close();
    await redis?.stop();
  });

  test('4. events may have been missed: L1 is cleared once the subscription is back', async () => {
    for (let i = 0; i < 2; i += 1) await readProfile(t, 1);
    expect((await readProfile(t, 1)).tier).toBe(L1_TIER);
    expect(t.app.l1!.size).toBeGreaterThan(0);

    const reconnected = new Promise<void>((resolve) => {
      const off = store.onReconnect!(() => {
        off();
        resolve();
      });
    });
    // Drop only the pub/sub connection, as a network blip on it would.
    const admin = new Redis(redis.url);
    try {
      expect(await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub')).toBeGreaterThanOrEqual(1);
    } finally {
      admin.disconnect();
    }
    await reconnected;

    expect(t.app.l1!.size).toBe(0);
    const after = await readProfile(t, 1);
    expect(after.tier).toBe('cacheside-redis');
    // And the events subscription works again: an event reaches this instance.
    const delivered = eventReaching(t, 'profile', 1);
    await t.app.store.publish(
      `${t.prefix}:v1:events`,
      encodeEvents([{ entity: 'profile', id: 1, version: 9 }]),
    );
    await delivered;
    expect((await readProfile(t, 1)).tier).toBe('cacheside-redis'); // fenced at version 9, so not from L1
  });
});

describe('the coherence window with L1 on (relays polling, as in production)', () => {
  const POLL_MS = 250;
  const TTL_MS = 1000;
  let a: TestApp;
  let b: TestApp;

  beforeAll(async () => {
    const env = { ...L1_ENV, ...windowEnv({ pollMs: POLL_MS, ttlMs: TTL_MS }) };
    a = await createTestApp({ label: 'l1_window', seed: { users: 12, postsPerUser: 1 }, env });
    b = await createTestApp({ label: 'l1_window', share: a, env });
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
  });

  test(
    '5. after a mutation returns on A, B reads the new version within event delivery (bounded by the L1 TTL)',
    { timeout: 60_000 },
    async () => {
      // 10 profiles in parallel, 20 rounds each (how a window is measured: coherence-window.ts).
      const HOT = 10;
      const ROUNDS = 20;
      const { windows, lagging, at } = await measureWindow({
        hot: HOT,
        rounds: ROUNDS,
        pollMs: POLL_MS,
        // Twice: the second read is B's L1 taking it from Redis, if the first did not already.
        warm: async (userId) => {
          for (let i = 0; i < 2; i += 1) await readProfile(b, userId);
        },
        write: (userId, r) => updateBio(a, userId, `round ${r}`),
        read: async (userId) => {
          const seen = await readProfile(b, userId);
          return { version: seen.version, by: `${seen.tier ?? 'none'} ${seen.outcome ?? ''}`.trim() };
        },
      });
      const staleReads = Object.values(lagging).reduce((sum, n) => sum + n, 0);
      const fmt = (ms: number) => `${ms.toFixed(1)}ms`;
      console.log(
        `[l1 coherence window] writes=${windows.length} relay poll=${POLL_MS}ms L1 TTL=${TTL_MS}ms ` +
          `p50=${fmt(at(0.5))} p90=${fmt(at(0.9))} p99=${fmt(at(0.99))} max=${fmt(at(1))} ` +
          `stale reads=${staleReads} answered by=${JSON.stringify(lagging)}`,
      );

      expect(windows).toHaveLength(HOT * ROUNDS);
      // Only L1 lags: Redis holds the written version as soon as the mutation returns.
      expect(Object.keys(lagging).filter((by) => !by.startsWith(`${L1_TIER} `))).toEqual([]);
      // The generous bound: an event is published within a poll interval, and even a lost one is
      // outlived by the L1 TTL; 1 s more for a loaded CI machine.
      expect(at(1)).toBeLessThan(POLL_MS + TTL_MS + 1000);
    },
  );
});
