/**
 * Redis full, under `maxmemory-policy noeviction` (docs/operations.md, "Memory"): invalidations never
 * fail for lack of memory. A private Redis with a small `maxmemory` is filled to its limit with
 * foreign keys, so that it refuses every write that may grow memory. Then:
 *
 * - a mutation's write-through still lands (the script runs with `allow-oom`): the other instance
 *   serves the new version as soon as the mutation returns, and the mutation does not report a
 *   pending propagation;
 * - the relay's tombstone for a plain-SQL change lands too;
 * - a stored answer of the response tier is still served, its check recording the write stamp; an
 *   operator's purge still tombstones and starts a new answer generation;
 * - fills and locks are refused; reads are answered from PostgreSQL, correctly.
 *
 * Under every evicting `maxmemory-policy`, the late fill: B holds an old row while A's write lands,
 * then memory pressure evicts the key (and whatever else); B's fill of the old row is still refused.
 *
 * And what an anonymous client can make Redis hold: one request for 100 unknown ids adds at most 20
 * negative entries, which live for the negative TTL and no longer.
 */
import { sql } from 'drizzle-orm';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createEntryFactory } from '../../src/cache/entities/entries.js';
import { createCacheKeys } from '../../src/cache/entities/keys.js';
import { invalidateEntity } from '../../src/cache/write/purge.js';
import { MAX_NEGATIVE_FILLS_PER_REQUEST } from '../../src/cache/read/miss-resolver.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { readProfile, updateProfile } from '../support/consistency-api.js';
import { headerOf } from '../support/consistency-redis.js';
import { rows } from '../support/consistency-sql.js';
import { pauseNext, type Pause } from '../support/instance-pair.js';
import { startPrivateRedis, type PrivateRedis } from '../support/redis.js';
import { until } from '../support/until.js';
import { generationOf } from '../support/store-contract.js';

let redis: PrivateRedis;
let admin: Redis;
let a: TestApp;
let b: TestApp;
/** The afterQuery hook of B; a test installs a pause here. */
let pauseOnB: Pause | undefined;

beforeAll(async () => {
  redis = await startPrivateRedis({ args: ['--maxmemory', '8mb', '--maxmemory-policy', 'noeviction'] });
  admin = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  admin.on('error', () => {});
  const env = { REDIS_URL: redis.url };
  a = await createTestApp({
    label: 'redis_memory',
    seed: { users: 20, postsPerUser: 1 },
    env,
    startRelay: false,
  });
  b = await createTestApp({
    label: 'redis_memory',
    share: a,
    env,
    startRelay: false,
    repositoryOptions: { afterQuery: (query, ids) => pauseOnB?.hook(query, ids) },
  });
}, 60_000);

afterAll(async () => {
  pauseOnB?.release();
  await b?.close();
  await a?.close();
  admin?.disconnect();
  await redis?.stop();
});

/**
 * Writes foreign 64 KB values until Redis refuses one for lack of memory, then lowers `maxmemory`
 * to half of what is used, so that no small fluctuation of Redis's own buffers makes room again.
 * Returns how many values fitted.
 */
async function fillToTheLimit(): Promise<number> {
  const blob = Buffer.alloc(64 * 1024, 0x78);
  for (let i = 0; ; i += 1) {
    try {
      await admin.set(`foreign:${i}`, blob);
    } catch (error) {
      expect(String(error)).toMatch(/^ReplyError: OOM/);
      const used = Number(/used_memory:(\d+)/.exec(await admin.info('memory'))?.[1]);
      await admin.config('SET', 'maxmemory', String(Math.floor(used / 2)));
      return i;
    }
  }
}

describe('noeviction, memory full', () => {
  test('a write-through lands: the other instance serves the new version as soon as the mutation returns', async () => {
    // B caches version 1 of users 1 and 2 while there is room.
    for (const id of [1, 2]) expect((await readProfile(b, id)).value.version).toBe(1);
    expect((await readProfile(b, 1)).xCache).toBe('HIT');
    expect(await fillToTheLimit()).toBeGreaterThan(0);

    const response = await updateProfile(a, 1, { bio: 'written while Redis is full' });
    expect(response.body.errors).toBeUndefined();
    expect(response.body.data?.updateProfile.version).toBe(2);
    // Written through, not merely waited for: no pending propagation.
    expect((response.body as { extensions?: unknown }).extensions).toBeUndefined();
    const onB = await readProfile(b, 1);
    expect(onB.value.version).toBe(2);
    expect(onB.xCache).toBe('HIT');
  });

  test("the relay's tombstone for a plain-SQL change lands too", async () => {
    await rows(a, sql`update profiles set bio = 'changed by SQL, Redis full' where user_id = 2`);
    // It also publishes the row of the mutation above, which had been written through.
    expect(await b.app.relay.runOnce()).toBe(2);
    expect(headerOf(await admin.getBuffer(`${b.prefix}:v1:profile:{2}`))).toEqual({
      kind: 'tombstone',
      version: 2,
    });
    // The tombstone hides version 1; the fill of version 2 is refused (memory), so it is read from
    // PostgreSQL, at the new version.
    expect((await readProfile(b, 2)).value.version).toBe(2);
  });

  test('a stored answer is still served, its check recording the write stamp in place (allow-oom)', async () => {
    const keys = createCacheKeys(b.prefix);
    const [user, profile] = [keys.entity('user', 15), keys.entity('profile', 15)];
    const answer = keys.response('noevictionanswer0001');
    const entry = (version: number) => ({
      kind: 'value' as const,
      version,
      staleAt: Date.now() + 600_000,
      payload: Uint8Array.of(1),
    });
    // Stored while there is room again, then Redis full once more.
    await admin.config('SET', 'maxmemory', '0');
    await b.app.store.setMany([
      { key: user, entry: entry(1), ttlMs: 600_000 },
      { key: profile, entry: entry(1), ttlMs: 600_000 },
    ]);
    const dependencies = [
      { key: user, kind: 'value', version: 1 },
      { key: profile, kind: 'value', version: 1 },
    ] as const;
    await b.app.store.setDependent({
      generation: await generationOf(b.app.store),
      key: answer,
      payload: Uint8Array.of(0x7b, 0x7d),
      dependencies,
      ttlMs: 600_000,
    });
    const used = Number(/used_memory:(\d+)/.exec(await admin.info('memory'))?.[1]);
    await admin.config('SET', 'maxmemory', String(Math.floor(used / 2)));
    await expect(admin.set('foreign:one-more', 'x')).rejects.toThrow(/OOM/);

    // The full check, which records the stamp; then a hit on it; then a write-through (allow-oom)
    // moves it, and the next check is full again — each one answered while Redis refuses writes.
    const stampBefore = await admin.get(keys.dependents.writeStamp);
    expect((await b.app.store.getDependent(answer, Date.now())).status).toBe('current');
    // After `r:` and the generation (24 characters and a colon).
    expect(await admin.getrange(answer, 27, 50)).toBe(stampBefore);
    expect((await b.app.store.getDependent(answer, Date.now())).status).toBe('current');
    expect(await b.app.store.setMany([{ key: profile, entry: entry(2), ttlMs: 600_000 }])).toEqual([true]);
    expect(await b.app.store.getDependent(answer, Date.now())).toMatchObject({
      status: 'outdated',
      failed: { key: profile, kind: 'value', version: 1 },
    });
  });

  test("an operator's purge still works: its tombstone lands and stored answers go (allow-oom)", async () => {
    const keys = createCacheKeys(b.prefix);
    const profile = keys.entity('profile', 15);
    const answer = keys.response('noevictionanswer0002');
    const before = await generationOf(b.app.store);
    await expect(admin.set('foreign:one-more', 'x')).rejects.toThrow(/OOM/);
    const deps = { store: b.app.store, keys, entries: createEntryFactory({ config: b.config.cache }) };
    expect(await invalidateEntity(deps, 'profile', 15)).toBe(1);
    expect(headerOf(await admin.getBuffer(profile))).toEqual({ kind: 'tombstone', version: 3 });
    expect(await generationOf(b.app.store)).not.toBe(before);
    expect((await b.app.store.getDependent(answer, Date.now())).status).toBe('absent');
  });

  test('fills and locks are refused; cold reads are answered from PostgreSQL, correctly', async () => {
    const cold = await readProfile(b, 3);
    expect(cold.value.version).toBe(1);
    expect(await admin.exists(`${b.prefix}:v1:profile:{3}`)).toBe(0);
    expect(await admin.exists(`${b.prefix}:v1:profile:{3}:lock`)).toBe(0);
  });
});

describe('what an anonymous client can make Redis hold', () => {
  test(`a request for 100 unknown ids adds at most ${MAX_NEGATIVE_FILLS_PER_REQUEST} negative entries, without stale grace`, async () => {
    await admin.flushall();
    await admin.config('SET', 'maxmemory', '0');
    const ids = Array.from({ length: 100 }, (_, i) => String(1_000_000 + i));
    const response = await b.gql<{ users: (unknown | null)[] }>(
      'query ($ids: [ID!]!) { users(ids: $ids) { id } }',
      {
        variables: { ids },
      },
    );
    expect(response.body.data?.users).toEqual(ids.map(() => null));
    const keys = await scan(`${b.prefix}:v1:user:*`);
    const negatives = keys.filter((key) => !key.endsWith(':lock'));
    expect(negatives).toHaveLength(MAX_NEGATIVE_FILLS_PER_REQUEST);
    // Each lives for the negative TTL (±10 %) and no grace beyond it; no lock is left behind.
    const negativeTtlMs = b.config.cache.negativeTtlSeconds * 1000;
    for (const key of negatives) expect(await admin.pttl(key)).toBeLessThanOrEqual(negativeTtlMs * 1.1);
    expect(keys.filter((key) => key.endsWith(':lock'))).toEqual([]);
  });
});

async function scan(pattern: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await admin.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    found.push(...keys);
  } while (cursor !== '0');
  return found;
}

const EVICTING = [
  'allkeys-lru',
  'allkeys-lfu',
  'allkeys-random',
  'volatile-lru',
  'volatile-lfu',
  'volatile-random',
  'volatile-ttl',
] as const;

describe.each(EVICTING)('maxmemory-policy %s, evicting', (policy) => {
  test('the key evicted while a fill is in flight: the late fill is refused, both instances serve the write', async () => {
    await admin.config('SET', 'maxmemory', '0');
    await admin.flushall();
    await admin.config('SET', 'maxmemory-policy', policy);
    const userId = 10 + EVICTING.indexOf(policy);
    const key = `${b.prefix}:v1:profile:{${userId}}`;
    const before = Number(
      (await rows<{ version: number }>(a, sql`select version from profiles where user_id = ${userId}`))[0]!
        .version,
    );

    pauseOnB = pauseNext('profiles', userId);
    const lateRead = readProfile(b, userId);
    await pauseOnB.reached; // B holds the old row and its grant
    const written = await updateProfile(a, userId, { bio: `written before the eviction (${policy})` });
    expect(written.body.data?.updateProfile.version).toBe(before + 1);

    // Memory pressure: foreign keys (with a TTL longer than ours, for the volatile policies) until
    // Redis has evicted ours.
    const used = Number(/used_memory:(\d+)/.exec(await admin.info('memory'))?.[1]);
    await admin.config('SET', 'maxmemory', String(used + 2 * 1024 * 1024));
    const blob = Buffer.alloc(16 * 1024, 0x78);
    let n = 0;
    await until(`Redis to evict ${key} under ${policy}`, async () => {
      for (let i = 0; i < 20; i += 1) await admin.set(`foreign:${policy}:${n++}`, blob, 'EX', 86_400);
      return (await admin.exists(key)) === 0;
    });
    expect(Number(/evicted_keys:(\d+)/.exec(await admin.info('stats'))?.[1])).toBeGreaterThan(0);
    pauseOnB.release();

    expect([before, before + 1]).toContain((await lateRead).value.version);
    await admin.config('SET', 'maxmemory', '0');
    for (const t of [a, b, a, b]) expect((await readProfile(t, userId)).value.version).toBe(before + 1);
  });
});
