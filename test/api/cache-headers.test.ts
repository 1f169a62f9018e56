/**
 * docs/contract.md, "Response headers": every /graphql response says what the cache did. Cache-Status is parsed with a real
 * RFC 8941 structured-field parser, so a malformed header fails here rather than in a client.
 */
import { parseList, type Item, type InnerList } from 'structured-headers';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createChaosStore, type ChaosStore } from '../support/chaos-store.js';
import { createMemoryStore } from '../../src/cache/store/memory-store.js';
import { createTestApp, type TestApp } from '../support/app.js';

/** Cache-Status as [cache name, params] pairs, asserting it parses as an RFC 8941 list. */
function parseCacheStatus(value: string | null): [string, Map<string, unknown>][] {
  expect(value).not.toBeNull();
  return parseList(value!).map((member: Item | InnerList) => {
    const [name, params] = member;
    expect(typeof (name as { toString(): string }).toString()).toBe('string');
    return [String(name), params as unknown as Map<string, unknown>];
  });
}

const paramsOf = (value: string | null) => {
  const members = parseCacheStatus(value);
  expect(members).toHaveLength(1);
  return members[0]!;
};

describe('cache headers on the redis store', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ label: 'headers', seed: { users: 10, postsPerUser: 2 } });
  });
  afterAll(() => t?.close());

  test('MISS, then HIT for the same query', async () => {
    const miss = await t.gql(`{ user(id: "1") { name profile { bio } } }`);
    expect(miss.headers.get('x-cache')).toBe('MISS');
    expect(miss.headers.get('x-cache-hits')).toBe('0');
    expect(miss.headers.get('x-cache-misses')).toBe('2');
    const [name, params] = paramsOf(miss.headers.get('cache-status'));
    expect(name).toBe('cacheside-redis');
    expect(String(params.get('fwd'))).toBe('miss');
    expect(params.get('stored')).toBe(true);
    expect(String(params.get('detail'))).toBe('hit=0 miss=2');

    const hit = await t.gql(`{ user(id: "1") { name profile { bio } } }`);
    expect(hit.headers.get('x-cache')).toBe('HIT');
    expect(hit.headers.get('x-cache-hits')).toBe('2');
    expect(hit.headers.get('x-cache-misses')).toBe('0');
    const [, hitParams] = paramsOf(hit.headers.get('cache-status'));
    expect(hitParams.get('hit')).toBe(true);
    expect(hitParams.has('fwd')).toBe(false);
  });

  test('PARTIAL when some lookups hit and some miss', async () => {
    await t.gql(`{ user(id: "2") { name } }`);
    const partial = await t.gql(`{ user(id: "2") { name profile { bio } } }`);
    expect(partial.headers.get('x-cache')).toBe('PARTIAL');
    const [, params] = paramsOf(partial.headers.get('cache-status'));
    expect(String(params.get('fwd'))).toBe('partial');
    expect(String(params.get('detail'))).toBe('hit=1 miss=1');
  });

  test('BYPASS when no entity lookup happens: a mutation selecting only returned fields, introspection', async () => {
    const token = await t.token(3);
    const mutation = await t.gql(`mutation { updateProfile(input: { bio: "x" }) { version bio } }`, { token });
    expect(mutation.body.errors).toBeUndefined();
    expect(mutation.headers.get('x-cache')).toBe('BYPASS');
    expect(String(paramsOf(mutation.headers.get('cache-status'))[1].get('fwd'))).toBe('bypass');

    const introspection = await t.gql(`{ __schema { queryType { name } } }`);
    expect(introspection.headers.get('x-cache')).toBe('BYPASS');
  });

  test('Server-Timing, Cache-Control and the CORS expose list are on every response', async () => {
    const response = await t.gql(`{ user(id: "4") { name } }`, { headers: { origin: 'https://app.example' } });
    expect(response.headers.get('server-timing')).toMatch(/^cache;dur=\d+(\.\d+)?, db;dur=\d+(\.\d+)?$/);
    expect(response.headers.get('cache-control')).toBe('no-store');
    const exposed = (response.headers.get('access-control-expose-headers') ?? '').toLowerCase();
    for (const header of ['x-cache', 'x-cache-hits', 'x-cache-misses', 'cache-status', 'server-timing']) {
      expect(exposed).toContain(header);
    }
  });

  test('errors and batched requests carry the headers too', async () => {
    const parseError = await t.fetch('/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ user(id: ' }),
    });
    expect(parseError.status).toBe(400);
    expect(parseError.headers.get('x-cache')).toBe('BYPASS');
    expect(parseError.headers.get('cache-control')).toBe('no-store');

    const batched = await t.fetch('/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify([{ query: '{ user(id: "5") { name } }' }, { query: '{ user(id: "6") { name } }' }]),
    });
    expect(batched.status).toBe(200);
    expect(await batched.json()).toHaveLength(2);
    // One tally for the whole HTTP request: both operations' lookups.
    expect(batched.headers.get('x-cache-misses')).toBe('2');
    parseCacheStatus(batched.headers.get('cache-status'));
  });
});

describe('cache headers when the store fails', () => {
  let t: TestApp;
  let store: ChaosStore;
  beforeAll(async () => {
    store = createChaosStore(createMemoryStore());
    t = await createTestApp({ label: 'headers_chaos', store, seed: { users: 5, postsPerUser: 1 } });
  });
  afterAll(async () => {
    await t?.close();
    await store?.close();
  });

  test('BYPASS with detail=store-unavailable, and the answer still comes from PostgreSQL', async () => {
    store.chaos.failAll();
    const response = await t.gql(`{ user(id: "1") { name profile { bio } } }`);
    store.chaos.heal();
    expect(response.body.errors).toBeUndefined();
    expect(response.body.data).toMatchObject({ user: { name: expect.any(String) } });
    expect(response.headers.get('x-cache')).toBe('BYPASS');
    const [name, params] = paramsOf(response.headers.get('cache-status'));
    expect(name).toBe('cacheside-memory');
    expect(String(params.get('fwd'))).toBe('bypass');
    expect(String(params.get('detail'))).toBe('store-unavailable');
  });
});

describe('CACHE_HEADERS=off', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ label: 'headers_off', store: 'memory', env: { CACHE_HEADERS: 'off' }, seed: { users: 2, postsPerUser: 1 } });
  });
  afterAll(() => t?.close());

  test('sends no cache headers, but still Cache-Control: no-store', async () => {
    const response = await t.gql(`{ user(id: "1") { name } }`);
    for (const header of ['x-cache', 'x-cache-hits', 'x-cache-misses', 'cache-status', 'server-timing']) {
      expect(response.headers.get(header)).toBeNull();
    }
    expect(response.headers.get('cache-control')).toBe('no-store');
  });
});
