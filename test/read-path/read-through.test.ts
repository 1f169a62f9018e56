/**
 * The read path against the real Redis and PostgreSQL: a warm request touches no SQL for entities,
 * makes exactly one store round trip per DataLoader batch, and every key it wrote carries a TTL
 * and the test's prefix in the exact key grammar of docs/contract.md ("Keys").
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTestApp, type TestApp } from '../support/app.js';
import { DEBUG, debugOf } from '../support/debug.js';
import { STAMP_TTL_MS } from '../../src/cache/store/redis/write-stamp.js';
import { scanKeys } from '../support/redis.js';

const TWENTY_IDS = Array.from({ length: 20 }, (_, i) => String(i + 1));
const USERS_QUERY = `query Users($ids: [ID!]!) {
  users(ids: $ids) { id profile { bio } posts(first: 3) { title author { name } } }
}`;
const PAGE_QUERY = `{ userPage(first: 20) { nodes { profile { bio } posts(first: 3) { title author { name profile { displayName } } } } } }`;

describe.each(['redis', 'memory'] as const)('read path on the %s store', (store) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ label: `readpath_${store}`, store, seed: { users: 40, postsPerUser: 5 } });
  });
  afterAll(() => t?.close());

  test('a cold users(ids) request misses, loads the misses in one statement per batch, and stores them', async () => {
    const cold = await t.gql(USERS_QUERY, { variables: { ids: TWENTY_IDS }, headers: DEBUG });
    expect(cold.body.errors).toBeUndefined();
    expect(cold.headers.get('x-cache')).toBe('MISS');
    // Batches: users, profiles + post-id lists (same tick), posts; authors are memoized users.
    expect(debugOf(cold).sqlStatements).toBe(4);
    // Each cold batch: the lookup, the locks with their re-read, the fill that releases them.
    expect(debugOf(cold).storeRoundTrips).toBe(4 * 3);
    // 20 users + 20 profiles + 20 lists + 60 posts, each looked up once after de-duplication.
    expect(debugOf(cold).lookups).toHaveLength(120);
    expect(cold.headers.get('x-cache-misses')).toBe('120');
    expect(cold.headers.get('cache-status')).toContain('stored');
  });

  test('the same request warm runs 0 SQL statements and one store round trip per loader batch', async () => {
    const warm = await t.gql(USERS_QUERY, { variables: { ids: TWENTY_IDS }, headers: DEBUG });
    const debug = debugOf(warm);
    expect(warm.headers.get('x-cache')).toBe('HIT');
    expect(warm.headers.get('x-cache-hits')).toBe('120');
    expect(debug.sqlStatements).toBe(0);
    // Four loader batches (users; profiles and post lists; posts) → four multi-gets, nothing else.
    expect(debug.storeRoundTrips).toBe(4);
    expect(new Set(debug.lookups.map((l) => l.status))).toEqual(new Set(['hit']));
  });

  test('the userPage nested query warm runs 0 SQL statements and one store round trip per loader level', async () => {
    await t.gql(PAGE_QUERY);
    const warm = await t.gql(PAGE_QUERY, { headers: DEBUG });
    expect(warm.body.errors).toBeUndefined();
    // The page of ids is a dependent entry of the user directory (src/cache/read/page-reader.ts).
    expect(debugOf(warm).sqlStatements).toBe(0);
    // The page, then one multi-get per loader batch: users; profiles; post lists; posts (the authors
    // and their profiles are the same users, memoized).
    expect(debugOf(warm).storeRoundTrips).toBe(5);
    expect(warm.headers.get('x-cache')).toBe('HIT');
  });

  test('unknown ids are cached as negative entries and count as hits', async () => {
    const first = await t.gql(`{ a: user(id: "9999") { id } b: post(id: "99999") { id } }`, {
      headers: DEBUG,
    });
    expect(first.body.data).toEqual({ a: null, b: null });
    expect(debugOf(first).sqlStatements).toBe(2);
    const again = await t.gql(`{ a: user(id: "9999") { id } b: post(id: "99999") { id } }`, {
      headers: DEBUG,
    });
    expect(debugOf(again).sqlStatements).toBe(0);
    expect(debugOf(again).lookups.map((l) => l.status)).toEqual(['negative_hit', 'negative_hit']);
    expect(again.headers.get('x-cache')).toBe('HIT');
  });

  test('DateTime values round-trip exactly through the cache', async () => {
    const query = `{ user(id: "3") { createdAt profile { updatedAt } posts(first: 5) { createdAt } } }`;
    const cold = await t.gql(query);
    const warm = await t.gql(query);
    expect(warm.headers.get('x-cache')).toBe('HIT');
    expect(warm.body).toEqual(cold.body);
    expect(JSON.stringify(warm.body)).toMatch(/"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"/);
  });
});

describe('keys in Redis', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ label: 'readpath_keys', seed: { users: 10, postsPerUser: 3 } });
  });
  afterAll(() => t?.close());

  test('every key has the prefix, the key grammar of the contract and a TTL within its class', async () => {
    await t.gql(`{ users(ids: ["1", "2", "404"]) { profile { bio } posts(first: 2) { title } } }`);
    const scanned = await scanKeys(`${t.prefix}:`);
    // The write stamp (moved by the fills above), the one key that names no entity: its own TTL class.
    const stamp = scanned.filter((k) => k.key === `${t.prefix}:v1:write-stamp`);
    expect(stamp.map((k) => k.ttlMs > 0 && k.ttlMs <= STAMP_TTL_MS)).toEqual([true]);
    const keys = scanned.filter((k) => !stamp.includes(k));
    const names = keys.map((k) => k.key.slice(t.prefix.length + 1));
    expect(names).toEqual(
      expect.arrayContaining([
        'v1:user:{1}',
        'v1:user:{2}',
        'v1:user:{404}',
        'v1:profile:{1}',
        'v1:user:{1}:posts',
        'v1:post:{3}',
      ]),
    );
    for (const name of names) expect(name).toMatch(/^v1:(user|profile|post):\{[1-9]\d*\}(:posts)?$/);
    for (const { key, ttlMs } of keys) {
      expect(ttlMs, key).toBeGreaterThan(0);
      const negative = key.endsWith('{404}');
      const logical = key.endsWith(':posts')
        ? t.config.cache.volatileTtlSeconds
        : negative
          ? t.config.cache.negativeTtlSeconds
          : t.config.cache.ttlSeconds;
      // ±10 % jitter on the logical TTL, plus the stale grace (none for a negative entry).
      const grace = negative ? 0 : t.config.cache.staleGraceSeconds * 1000;
      expect(ttlMs, key).toBeLessThanOrEqual(logical * 1100 + grace);
      expect(ttlMs, key).toBeGreaterThan(logical * 900 + grace - 60_000);
    }
  });
});
