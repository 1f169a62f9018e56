/**
 * One load per cold key across instances. Two app instances (each with its own PostgreSQL pool and
 * Redis connections, as two servers would have) share one database and one key prefix; a hook on
 * the repositories counts which ids each SQL load asks for.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { RepositoryQuery } from '../../src/db/repositories.js';
import { createTestApp, type GraphQLResponse, type TestApp } from '../support/app.js';
import { DEBUG, debugOf, statusesOf } from '../support/debug.js';

/** Ids each kind of SQL load asked for, in order, across both instances. */
const loads = new Map<RepositoryQuery, number[]>();
let profileDelayMs = 0;

const hooks = {
  beforeQuery: async (query: RepositoryQuery, ids: readonly number[]) => {
    loads.set(query, [...(loads.get(query) ?? []), ...ids]);
    // Makes the load slower than any naive "sleep, then load anyway" would wait.
    if (query === 'profiles' && profileDelayMs > 0) await sleep(profileDelayMs);
  },
};
const loadsOf = (query: RepositoryQuery, id?: number) =>
  (loads.get(query) ?? []).filter((x) => id === undefined || x === id).length;

let a: TestApp;
let b: TestApp;
beforeAll(async () => {
  // 500 requests in one process can hold the event loop past the production command timeout; a
  // timed-out command would (rightly) trip the breaker and send reads to PostgreSQL. This file is
  // about locks, not timeouts (faults-redis.test.ts covers those), so Redis gets time to answer.
  const env = { REDIS_COMMAND_TIMEOUT_MS: '5000' };
  a = await createTestApp({
    label: 'stampede',
    seed: { users: 220, postsPerUser: 1 },
    repositoryOptions: hooks,
    env,
  });
  b = await createTestApp({ label: 'stampede', share: a, repositoryOptions: hooks, env });
});
afterAll(async () => {
  await b?.close();
  await a?.close();
});
afterEach(() => {
  loads.clear();
  profileDelayMs = 0;
});

async function stampedeOnProfile(userId: number, requests: number) {
  // Warm the user, so that the only cold key is the profile.
  await a.gql(`{ user(id: "${userId}") { name } }`);
  loads.clear();
  const query = `{ user(id: "${userId}") { profile { userId bio version } } }`;
  const responses = await Promise.all(
    Array.from({ length: requests }, (_, i) => (i % 2 === 0 ? a : b).gql(query, { headers: DEBUG })),
  );
  return responses;
}

function expectOneLoaderAndWaiters(responses: GraphQLResponse[], userId: number) {
  const statuses = responses.map((r) => statusesOf(debugOf(r), `:profile:{${userId}}`)[0]);
  // Exactly one request loaded the profile; every other one waited for that fill (or, arriving after
  // it, read it as a plain hit).
  expect(statuses.filter((s) => s === 'miss')).toHaveLength(1);
  expect(statuses.filter((s) => s !== 'miss' && s !== 'collapsed' && s !== 'hit')).toEqual([]);
  for (const [i, response] of responses.entries()) {
    if (statuses[i] === 'collapsed') expect(response.headers.get('cache-status')).toMatch(/;\s*collapsed/);
  }
  return statuses;
}

describe('stampede on one cold key over two instances', () => {
  test('500 concurrent requests for one cold profile run exactly 1 SQL load of it', async () => {
    const responses = await stampedeOnProfile(7, 500);
    expect(loadsOf('profiles', 7)).toBe(1);
    for (const r of responses) {
      expect(r.body.errors).toBeUndefined();
      expect(r.body.data).toMatchObject({ user: { profile: { userId: '7', version: 1 } } });
    }
    const statuses = expectOneLoaderAndWaiters(responses, 7);
    // Most of the 500 arrived before the fill and waited for it.
    expect(statuses.filter((s) => s === 'collapsed').length).toBeGreaterThan(100);
  });

  test('the same with the load made slow (300 ms): still exactly 1', async () => {
    profileDelayMs = 300;
    const responses = await stampedeOnProfile(8, 500);
    expect(loadsOf('profiles', 8)).toBe(1);
    expectOneLoaderAndWaiters(responses, 8);
    // The waiters include the other instance's requests: the lock, not only the in-process flight.
    const collapsedOnB = responses.filter(
      (r, i) => i % 2 === 1 && statusesOf(debugOf(r), ':profile:{8}')[0] === 'collapsed',
    );
    expect(collapsedOnB.length).toBeGreaterThan(0);
  });

  test('200 cold ids in one request, sent to both instances at once: each id is loaded once', async () => {
    const ids = Array.from({ length: 200 }, (_, i) => String(i + 11));
    const query = `query($a: [ID!]!, $b: [ID!]!) {
      first: users(ids: $a) { id profile { bio } }
      second: users(ids: $b) { id profile { bio } }
    }`;
    const variables = { a: ids.slice(0, 100), b: ids.slice(100) };
    const [fromA, fromB] = await Promise.all([a.gql(query, { variables }), b.gql(query, { variables })]);
    expect(fromA.body.errors).toBeUndefined();
    expect(fromA.body).toEqual(fromB.body);

    const userLoads = loads.get('users') ?? [];
    const profileLoads = loads.get('profiles') ?? [];
    expect(userLoads).toHaveLength(200);
    expect(new Set(userLoads).size).toBe(200);
    expect(profileLoads).toHaveLength(200);
    expect(new Set(profileLoads).size).toBe(200);
  });
});
