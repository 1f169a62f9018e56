/**
 * The response tier with L1 on, two instances (A and B) over the real Redis and PostgreSQL: an
 * answer Redis vouched for is kept in process and served again with no round trip and no SQL
 * (`Cache-Status: cacheside-response; hit; detail="dependencies=N checked=l1"`), exactly as fresh as
 * L1 itself (src/cache/response/response-memo.ts):
 *
 * 1. the writing instance never serves its kept copy after its own mutation returned;
 * 2. another instance serves it until the change's event arrives — L1's window, on purpose — then
 *    the new version; an older or duplicated event changes nothing;
 * 3. the window, with relays polling as in production: after a mutation returns on A, B serves the
 *    new version within event delivery, and only kept copies ever lag (Redis never does).
 *
 * The rules themselves, race by race on a fake clock: test/read-path/response-memo.test.ts.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { encodeEvents } from '../../src/cache/events/invalidation-events.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { DEBUG, debugOf } from '../support/debug.js';
import { measureWindow, windowEnv } from '../support/coherence-window.js';
import { until } from '../support/until.js';
import { eventReaching, updateBio } from '../support/updates.js';

const PROFILE = `query Profile($id: ID!) { user(id: $id) { id name profile { bio version } } }`;
// A minute of L1 TTL and an hour of answers: only events (or their absence) decide what is served in
// tests 1–2, however slow the machine.
const ENV = {
  CACHE_L1_MAX_ENTRIES: '1000',
  CACHE_L1_TTL_MS: '60000',
  RESPONSE_CACHE: 'on',
  RESPONSE_CACHE_TTL_SECONDS: '3600',
};

async function read(t: TestApp, userId: number, headers: Record<string, string> = DEBUG) {
  const response = await t.gql<{ user: { profile: { bio: string; version: number } } }>(PROFILE, {
    variables: { id: String(userId) },
    headers,
  });
  expect(response.body.errors).toBeUndefined();
  const debug = headers === DEBUG ? debugOf(response) : undefined;
  return {
    ...response.body.data!.user.profile,
    cacheStatus: response.headers.get('cache-status'),
    /** What vouched for a stored answer: the store, L1 (a kept copy), or undefined when executed. */
    checked: debug?.response?.outcome === 'hit' ? debug.response.checked : undefined,
    storeRoundTrips: debug?.storeRoundTrips,
    sql: debug?.sqlStatements,
  };
}

/**
 * Reads until `t` serves `userId`'s answer from its kept copy (the first reads store and check it; a
 * store call past its timeout on a busy machine can leave it unstored a while longer).
 */
async function keptOn(t: TestApp, userId: number) {
  let seen: Awaited<ReturnType<typeof read>> | undefined;
  await until(`user ${userId}'s answer kept (prefix ${t.prefix})`, async () => {
    seen = await read(t, userId);
    return seen.checked === 'l1';
  });
  return seen!;
}

describe('the response tier with L1 on, two instances, relays driven by hand', () => {
  let a: TestApp;
  let b: TestApp;

  beforeAll(async () => {
    a = await createTestApp({
      label: 'memo',
      seed: { users: 10, postsPerUser: 1 },
      env: ENV,
      startRelay: false,
    });
    b = await createTestApp({ label: 'memo', share: a, env: ENV, startRelay: false });
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
  });

  test('executed, then checked by Redis, then served from the kept copy: 0 SQL, 0 round trips, the same bytes', async () => {
    const executed = await read(a, 1);
    expect(executed.cacheStatus).toMatch(/cacheside-response; fwd=miss; stored$/);
    const checked = await read(a, 1);
    expect(checked).toMatchObject({ checked: 'store', storeRoundTrips: 1, sql: 0 });
    const kept = await read(a, 1);
    expect(kept).toMatchObject({ checked: 'l1', storeRoundTrips: 0, sql: 0, version: executed.version });
    expect(kept.cacheStatus).toMatch(/^cacheside-response; hit; detail="dependencies=\d+ checked=l1"$/);
    // /metrics counts it among the hits, and apart: of the 3 reads, one hit was a kept copy.
    const metrics = await (await a.fetch('/metrics')).text();
    const counted = (name: string) => Number(metrics.match(new RegExp(`^${name} (\\d+)$`, 'm'))?.[1]);
    expect(counted('cacheside_response_answers_total\\{result="hit"\\}')).toBe(2);
    expect(counted('cacheside_response_kept_hits_total')).toBe(1);

    // Without the debug header (looked up before parsing), the body is byte for byte the executed one.
    const raw = async () =>
      (
        await a.fetch('/graphql', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ query: PROFILE, variables: { id: '1' } }),
        })
      ).text();
    const bodies = [await raw(), await raw()];
    expect(bodies[1]).toBe(bodies[0]);
    expect(JSON.parse(bodies[0]!)).toEqual({ data: { user: expect.objectContaining({ id: '1' }) } });
  });

  test('1. the writer never serves its kept copy after its own mutation returned', async () => {
    const before = await keptOn(a, 2);
    const version = await updateBio(a, 2, 'written on A');
    expect(version).toBe(before.version + 1);
    const after = await read(a, 2);
    expect(after).toMatchObject({ version, bio: 'written on A' });
    expect(after.checked).not.toBe('l1');
  });

  test('2. another instance serves its kept copy until the event arrives, then the new version', async () => {
    const before = await keptOn(b, 3);
    const version = await updateBio(a, 3, 'changed on A');

    // The relay has not run: B's copy is L1's word, which has not heard of the write yet.
    expect(await read(b, 3)).toMatchObject({ version: before.version, checked: 'l1' });

    const delivered = eventReaching(b, 'profile', 3);
    expect(await a.app.relay.runOnce()).toBeGreaterThanOrEqual(1);
    expect(await delivered).toEqual({ entity: 'profile', id: 3, version });
    const fresh = await read(b, 3);
    expect(fresh).toMatchObject({ version, bio: 'changed on A' });
    expect(fresh.checked).not.toBe('l1');
  });

  test('2b. an older, equal or duplicated event keeps the copy', async () => {
    const kept = await keptOn(b, 4);
    const delivered = eventReaching(b, 'profile', 4);
    await a.app.store.publish(
      `${a.prefix}:v1:events`,
      encodeEvents([
        { entity: 'profile', id: 4, version: kept.version },
        { entity: 'profile', id: 4, version: kept.version - 1 },
        { entity: 'profile', id: 4, version: 0 },
      ]),
    );
    await delivered;
    expect(await read(b, 4)).toMatchObject({ version: kept.version, checked: 'l1' });
  });
});

describe('the window of kept answers (relays polling, as in production)', () => {
  const POLL_MS = 250;
  const TTL_MS = 1000;
  let a: TestApp;
  let b: TestApp;

  beforeAll(async () => {
    const env = { ...ENV, ...windowEnv({ pollMs: POLL_MS, ttlMs: TTL_MS }) };
    a = await createTestApp({ label: 'memo_window', seed: { users: 8, postsPerUser: 1 }, env });
    b = await createTestApp({ label: 'memo_window', share: a, env });
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
  });

  test(
    '3. after a mutation returns on A, B serves the new version within event delivery; only kept copies lag',
    { timeout: 60_000 },
    async () => {
      // 8 users in parallel, 10 rounds each (how a window is measured: coherence-window.ts).
      const HOT = 8;
      const ROUNDS = 10;
      let keptServed = 0;
      const { windows, lagging, at } = await measureWindow({
        hot: HOT,
        rounds: ROUNDS,
        pollMs: POLL_MS,
        // Executed or checked in Redis, then (usually) served from the copy kept on B.
        warm: async (userId) => {
          for (let i = 0; i < 3; i += 1) if ((await read(b, userId)).checked === 'l1') keptServed += 1;
        },
        write: (userId, r) => updateBio(a, userId, `round ${r}`),
        read: async (userId) => {
          const seen = await read(b, userId);
          return { version: seen.version, by: seen.checked ?? 'executed' };
        },
      });
      console.log(
        `[kept answers window] writes=${windows.length} poll=${POLL_MS}ms L1 TTL=${TTL_MS}ms ` +
          `p50=${at(0.5).toFixed(1)}ms max=${at(1).toFixed(1)}ms ` +
          `kept copies served=${keptServed} lagging reads=${JSON.stringify(lagging)}`,
      );
      expect(windows).toHaveLength(HOT * ROUNDS);
      // The copies were in play: most warm-up reads were served from them.
      expect(keptServed).toBeGreaterThan(0);
      // Only a kept copy ever lags: Redis holds the written version as soon as the mutation returns.
      expect(Object.keys(lagging).filter((by) => by !== 'l1')).toEqual([]);
      // An event is published within a poll interval, and even a lost one is outlived by the L1 TTL;
      // 1 s more for a loaded CI machine.
      expect(at(1)).toBeLessThan(POLL_MS + TTL_MS + 1000);
    },
  );
});
