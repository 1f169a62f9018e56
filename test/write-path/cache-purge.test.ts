/**
 * Operators' purge: entries stop being served, nothing is deleted bare (the fence survives), and the
 * CLI refuses bad arguments with a clear message.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { sql } from 'drizzle-orm';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createEntryFactory } from '../../src/cache/entities/entries.js';
import { createCacheKeys } from '../../src/cache/entities/keys.js';
import { forwardStore } from '../../src/cache/store/layers/forward.js';
import {
  invalidateAll,
  invalidateEntity,
  purgeEntity,
  PURGED_VERSION,
  PurgeNotAnnouncedError,
} from '../../src/cache/write/purge.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { DEBUG, debugOf } from '../support/debug.js';
import { REDIS_URL, scanKeys } from '../support/redis.js';
import { eventReaching } from '../support/updates.js';
import { until } from '../support/until.js';

const run = promisify(execFile);

let t: TestApp;
let deps: Parameters<typeof invalidateAll>[0];
beforeAll(async () => {
  t = await createTestApp({ label: 'purge', seed: { users: 12, postsPerUser: 2 } });
  deps = {
    store: t.app.store,
    keys: createCacheKeys(t.prefix),
    entries: createEntryFactory({ config: t.config.cache }),
  };
});
afterAll(() => t?.close());

const profileQuery = `{ user(id: "3") { profile { bio version } } }`;

describe('purge', () => {
  test('an entity purge stops serving the value and leaves a short-lived tombstone, not a gap', async () => {
    await t.gql(profileQuery);
    expect((await t.gql(profileQuery)).headers.get('x-cache')).toBe('HIT');

    expect(await invalidateEntity(deps, 'profile', 3)).toBe(1);
    const key = deps.keys.entity('profile', 3);
    const [held] = await t.app.store.getMany([key]);
    expect(held).toMatchObject({ kind: 'tombstone', version: 2 });
    const [ttl] = await t.app.store.ttlMany([key]);
    expect(ttl).toBeLessThanOrEqual(deps.entries.inFlightMs);

    const after = await t.gql(profileQuery, { headers: DEBUG });
    expect(after.body.data).toEqual((await t.gql(profileQuery)).body.data);
    expect(debugOf(after).lookups.find((l) => l.key === key)?.status).toBe('miss');
    // Purging what is no longer cached is a no-op.
    expect(await invalidateEntity(deps, 'profile', 3)).toBe(0);
  });

  test('--all tombstones every cached value under the prefix and nothing else', async () => {
    await t.gql(`{ users(ids: ["1","2","4","5","404"]) { profile { bio } posts(first: 2) { title } } }`);
    // Stored answers of the response tier are not tombstoned: they depend on these entries, and stop
    // validating once they are (the request below is not one). Nor are the write stamp and the answer
    // generation, no entries: the tombstones move the one and the purge the other.
    const dependents = Object.values(deps.keys.dependents);
    const before = (await scanKeys(`${t.prefix}:`)).filter(
      (k) => !k.key.endsWith(':lock') && !k.key.includes(':response:') && !dependents.includes(k.key),
    );
    const { invalidated } = await invalidateAll(deps);
    expect(invalidated).toBeGreaterThanOrEqual(before.length - 1);
    const held = await t.app.store.getMany(before.map((k) => k.key));
    for (const entry of held) if (entry) expect(entry.kind).toBe('tombstone');
    const again = await t.gql(`{ users(ids: ["1","2"]) { name } }`);
    expect(again.headers.get('x-cache')).toBe('MISS');
    const repeated = await t.gql(
      `{ users(ids: ["1","2","4","5","404"]) { profile { bio } posts(first: 2) { title } } }`,
    );
    expect(repeated.headers.get('x-cache')).not.toBe('HIT');
  });

  test('the CLI validates its arguments and needs Redis', async () => {
    const bad = await run('npx', ['tsx', 'src/cli/cache-purge.ts', '--entity', 'nope', '--id', '1'], {
      env: { ...process.env, REDIS_URL, CACHE_PREFIX: t.prefix },
    }).catch((error: { code: number; stderr: string }) => error);
    expect(bad).toMatchObject({ code: 2 });
    expect((bad as { stderr: string }).stderr).toContain('got "nope"');

    const ok = await run('npx', ['tsx', 'src/cli/cache-purge.ts', '--entity', 'user', '--id', '1'], {
      env: { ...process.env, REDIS_URL, CACHE_PREFIX: t.prefix },
    });
    expect(ok.stdout).toMatch(/user:\{1\}/);

    const noRedis = await run('npx', ['tsx', 'src/cli/cache-purge.ts', '--all'], {
      env: { ...process.env, REDIS_URL: '', CACHE_PREFIX: t.prefix },
    }).catch((error: { code: number; stderr: string }) => error);
    expect(noRedis).toMatchObject({ code: 1 });
  }, 60_000);
});

describe('purge with the response tier on', () => {
  let tier: TestApp;
  let redis: Redis;
  beforeAll(async () => {
    tier = await createTestApp({
      label: 'purge_tier',
      seed: { users: 6, postsPerUser: 1 },
      env: { RESPONSE_CACHE: 'on' },
    });
    redis = new Redis(REDIS_URL);
  });
  afterAll(async () => {
    redis?.disconnect();
    await tier?.close();
  });
  const tierDeps = () => ({
    store: tier.app.store,
    keys: createCacheKeys(tier.prefix),
    entries: createEntryFactory({ config: tier.config.cache }),
  });
  /**
   * Asks `query` until it is a hit twice in a row (a store call past its timeout on a busy machine can
   * leave an answer unstored): the first hit records the write stamp, the second is served on it.
   */
  async function stamped(query: string): Promise<void> {
    let hits = 0;
    await until(`two hits in a row of ${query}`, async () => {
      const hit = /^cacheside-response; hit/.test((await tier.gql(query)).headers.get('cache-status') ?? '');
      hits = hit ? hits + 1 : 0;
      return hits === 2;
    });
  }
  /** Changes a profile's bio by SQL that fires no trigger: no version bump, no outbox row. */
  async function fixBehindTheCache(userId: number, bio: string): Promise<void> {
    await tier.testDb.database.db.transaction(async (tx) => {
      await tx.execute(sql`set local session_replication_role = replica`);
      await tx.execute(sql`update profiles set bio = ${bio} where user_id = ${userId}`);
    });
  }

  test('a stored answer does not outlive a purge, even once its entries are filled again at their versions', async () => {
    const query = `{ user(id: "3") { profile { bio } } }`;
    const deps = tierDeps();
    await stamped(query);
    // The row fixed behind the cache's back keeps its version, then purged: its tombstone, then a
    // refill of the fixed row at that same version by another query — every version the stored
    // answer names is current again, and only its generation tells it from a new one.
    await fixBehindTheCache(3, 'fixed, same version');
    expect(await invalidateEntity(deps, 'profile', 3)).toBe(1);
    await redis.del(deps.keys.entity('profile', 3));
    const other = await tier.gql<{ users: { profile: { bio: string } }[] }>(
      `{ users(ids: ["3"]) { profile { bio } } }`,
    );
    expect(other.body.data?.users[0]?.profile.bio).toBe('fixed, same version');
    expect((await tier.app.store.getMany([deps.keys.entity('profile', 3)]))[0]?.version).toBe(1);
    const after = await tier.gql<{ user: { profile: { bio: string } } }>(query);
    expect(after.body.data?.user.profile.bio).toBe('fixed, same version');
  });

  test('a stored answer over an evicted entry does not outlive a purge that finds nothing cached', async () => {
    const query = `{ user(id: "4") { profile { bio } } }`;
    const deps = tierDeps();
    await stamped(query);
    // The profile's entry evicted, then its row fixed behind the cache's back: only the operator's
    // purge can tell the cache.
    await redis.del(deps.keys.entity('profile', 4));
    await fixBehindTheCache(4, 'fixed by hand');
    // Nothing cached to tombstone — but no stored answer may survive the purge.
    expect(await invalidateEntity(deps, 'profile', 4)).toBe(0);
    const after = await tier.gql<{ user: { profile: { bio: string } } }>(query);
    expect(after.body.data?.user.profile.bio).toBe('fixed by hand');
    expect(after.headers.get('cache-status')).toMatch(/cacheside-response; fwd=miss; stored/);
  });

  test('nor one after `--all` in a namespace that holds no entry any more', async () => {
    const query = `{ user(id: "5") { profile { bio } } }`;
    const deps = tierDeps();
    await stamped(query);
    const entities = (await scanKeys(deps.keys.namespace))
      .map((k) => k.key)
      .filter((key) => deps.keys.parse(key) !== undefined);
    expect(entities.length).toBeGreaterThan(0);
    await redis.del(...entities);
    await fixBehindTheCache(5, 'bulk-loaded');
    expect((await invalidateAll(deps)).invalidated).toBe(0);
    const after = await tier.gql<{ user: { profile: { bio: string } } }>(query);
    expect(after.body.data?.user.profile.bio).toBe('bulk-loaded');
  });

  test('`--all` tombstones the user directory too, which a stored page answer depends on', async () => {
    const deps = tierDeps();
    await tier.gql(`{ userPage(first: 2) { nodes { id } } }`);
    const directory = deps.keys.entity('userDirectory', 1);
    expect((await tier.app.store.getMany([directory]))[0]?.kind).toBe('value');
    await invalidateAll(deps);
    expect((await tier.app.store.getMany([directory]))[0]?.kind).toBe('tombstone');
  });
});

describe('a purge reaches every instance, L1 and kept answers included', () => {
  // Two instances with L1 on and the response tier in front, a minute of L1 TTL: only the purge's
  // own event can make B forget what it holds, however slow the machine.
  const ENV = {
    CACHE_L1_MAX_ENTRIES: '1000',
    CACHE_L1_TTL_MS: '60000',
    RESPONSE_CACHE: 'on',
    RESPONSE_CACHE_TTL_SECONDS: '3600',
  };
  let a: TestApp;
  let b: TestApp;
  let redis: Redis;
  beforeAll(async () => {
    redis = new Redis(REDIS_URL);
    a = await createTestApp({ label: 'purge_l1', seed: { users: 6, postsPerUser: 1 }, env: ENV });
    b = await createTestApp({ label: 'purge_l1', share: a, env: ENV });
  });
  afterAll(async () => {
    redis?.disconnect();
    await b?.close();
    await a?.close();
  });
  const purgeDeps = () => ({
    store: a.app.store,
    keys: createCacheKeys(a.prefix),
    entries: createEntryFactory({ config: a.config.cache }),
  });
  const bioQuery = (id: number) => `{ user(id: "${id}") { profile { bio } } }`;
  /** `id`'s bio on B, and what vouched for the answer: `l1` for a copy B kept in process. */
  async function readOnB(id: number) {
    const response = await b.gql<{ user: { profile: { bio: string } } }>(bioQuery(id), { headers: DEBUG });
    const answer = debugOf(response).response;
    return {
      bio: response.body.data?.user.profile.bio,
      checked: answer?.outcome === 'hit' ? answer.checked : answer?.outcome,
    };
  }
  /** Reads `id` on B until B serves its answer from memory (a slow store call can delay the keeping). */
  async function keptOnB(id: number) {
    await until(
      `B keeps user ${id}'s answer (prefix ${b.prefix})`,
      async () => (await readOnB(id)).checked === 'l1',
    );
  }
  async function fixBehindTheCache(userId: number, bio: string): Promise<void> {
    await a.testDb.database.db.transaction(async (tx) => {
      await tx.execute(sql`set local session_replication_role = replica`);
      await tx.execute(sql`update profiles set bio = ${bio} where user_id = ${userId}`);
    });
  }

  test('an entity purge: B stops serving its kept answer and its L1 entry once the event arrives — after the tombstones and the new generation', async () => {
    await keptOnB(2);
    await fixBehindTheCache(2, 'fixed, then purged');
    // The row kept its version, so nothing but the purge's event can tell B's L1.
    expect((await readOnB(2)).checked).toBe('l1');
    const calls: string[] = [];
    const recorded = forwardStore(a.app.store, {
      setMany: (writes) => (calls.push('tombstones'), a.app.store.setMany(writes)),
      invalidateDependents: () => (calls.push('generation'), a.app.store.invalidateDependents()),
      publish: (channel, message) => (calls.push('event'), a.app.store.publish(channel, message)),
    });
    const delivered = eventReaching(b, 'profile', 2);
    expect(await purgeEntity({ ...purgeDeps(), store: recorded }, 'profile', 2)).toBe(1);
    // An L1 told before the store's part has landed could take the old entry back from it.
    expect(calls).toEqual(['tombstones', 'generation', 'event']);
    expect((await delivered).version).toBe(PURGED_VERSION);
    expect(await readOnB(2)).toEqual({ bio: 'fixed, then purged', checked: 'miss' });
  });

  test('an event that cannot be published: the purge landed, and says so (running it again is safe)', async () => {
    const key = a.app.cache.keys.entity('profile', 5);
    await a.gql(`{ user(id: "5") { profile { bio } } }`);
    expect((await a.app.store.getMany([key]))[0]?.kind).toBe('value');
    const generation = (await a.app.store.getDependent(`${a.prefix}:probe`, Date.now())).generation;
    const mute = forwardStore(a.app.store, {
      publish: () => Promise.reject(new Error('connection lost')),
    });
    const failed = await purgeEntity({ ...purgeDeps(), store: mute }, 'profile', 5).catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(PurgeNotAnnouncedError);
    expect((failed as Error).message).toContain('run it again');
    expect((await a.app.store.getMany([key]))[0]?.kind).toBe('tombstone');
    expect((await a.app.store.getDependent(`${a.prefix}:probe`, Date.now())).generation).not.toBe(generation);
  });

  test("an entity Redis has lost, still in B's L1: the event names a version above any, and B refuses the old entry back", async () => {
    await keptOnB(4);
    const key = a.app.cache.keys.entity('profile', 4);
    const [held] = await a.app.store.getMany([key]);
    expect(held?.kind).toBe('value');
    // Evicted from Redis, then fixed behind the cache's back: the purge finds nothing to tombstone,
    // so no version of Redis's own could name it; B's memory still holds the old row.
    await redis.del(key);
    await fixBehindTheCache(4, 'fixed after an eviction');
    const delivered = eventReaching(b, 'profile', 4);
    expect(await purgeEntity(purgeDeps(), 'profile', 4)).toBe(0);
    await delivered;
    expect(await readOnB(4)).toEqual({ bio: 'fixed after an eviction', checked: 'miss' });
    // And for the fence's life, not even the row's own version comes back into B's L1 from a read
    // begun before the event.
    b.app.l1!.offer(key, held!, Date.now(), b.app.l1!.generation);
    expect(b.app.l1!.get(key)).toBeUndefined();
  });

  test('`--all` from the command line: every L1 is cleared, and with it every kept answer', async () => {
    await keptOnB(3);
    expect(b.app.l1!.size).toBeGreaterThan(0);
    await fixBehindTheCache(3, 'bulk-fixed, then purged');
    const cleared = new Promise<void>((resolve) => {
      const off = b.app.invalidations.onEvents(({ all }) => {
        if (!all) return;
        off();
        resolve();
      });
    });
    const purged = await run('npx', ['tsx', 'src/cli/cache-purge.ts', '--all'], {
      env: { ...process.env, REDIS_URL, CACHE_PREFIX: a.prefix },
    });
    expect(purged.stdout).toMatch(/^invalidated \d+ cached entries/);
    await cleared;
    expect(b.app.l1!.size).toBe(0);
    expect(await readOnB(3)).toEqual({ bio: 'bulk-fixed, then purged', checked: 'miss' });
  }, 60_000);
});
