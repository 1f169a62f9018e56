/**
 * With Redis slow, stalled or down, concurrent requests for a cold key still load it from PostgreSQL
 * once per instance, not once per request (src/cache/read/bypass.ts). Two instances on one private
 * Redis; ten requests for one cold profile, five on each, sent together; each instance's SQL loads
 * of that profile are counted by a repository hook.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { RepositoryQuery } from '../../src/db/repositories.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { startPrivateRedis, type PrivateRedis } from '../support/redis.js';

const PER_INSTANCE = 5;
const QUERY = 'query ($id: ID!) { user(id: $id) { id profile { userId bio } } }';

let redis: PrivateRedis;
let a: TestApp;
let b: TestApp;
/** SQL loads of each profile id, by instance. */
const loads = { a: new Map<number, number>(), b: new Map<number, number>() };

const counting = (instance: 'a' | 'b') => ({
  beforeQuery: (query: RepositoryQuery, ids: readonly number[]) => {
    if (query !== 'profiles') return;
    for (const id of ids) loads[instance].set(id, (loads[instance].get(id) ?? 0) + 1);
  },
});

beforeAll(async () => {
  redis = await startPrivateRedis();
  const env = { REDIS_URL: redis.url, REDIS_COMMAND_TIMEOUT_MS: '200' };
  a = await createTestApp({
    label: 'bypass_flight',
    seed: { users: 30, postsPerUser: 1 },
    env,
    repositoryOptions: counting('a'),
  });
  b = await createTestApp({ label: 'bypass_flight', share: a, env, repositoryOptions: counting('b') });
}, 60_000);

afterAll(async () => {
  await b?.close();
  await a?.close();
  await redis?.stop();
});

/** Ten requests for user `id`'s profile, five on each instance, all sent at once; all must answer. */
async function stampede(id: number): Promise<void> {
  const requests = [a, b].flatMap((t) =>
    Array.from({ length: PER_INSTANCE }, () => t.gql(QUERY, { variables: { id: String(id) } })),
  );
  for (const response of await Promise.all(requests)) {
    expect(response.body.errors).toBeUndefined();
    expect(response.body.data).toMatchObject({ user: { id: String(id), profile: { userId: String(id) } } });
  }
}

const FAULTS: Record<string, { start(): Promise<void>; end(): Promise<void> }> = {
  'stalled (CLIENT PAUSE: every command times out)': {
    start: async () => {
      const admin = new Redis(redis.url);
      await admin.call('CLIENT', 'PAUSE', '600000', 'ALL');
      admin.disconnect();
    },
    // A paused server pauses CLIENT UNPAUSE too, from any connection: it is restarted instead.
    end: async () => {
      await redis.stop();
      redis = await startPrivateRedis({ port: redis.port });
    },
  },
  'hung (SIGSTOP)': {
    start: async () => redis.pause(),
    end: async () => redis.resume(),
  },
  'down (stopped)': {
    start: async () => redis.stop(),
    end: async () => {
      redis = await startPrivateRedis({ port: redis.port });
    },
  },
};

let nextId = 1;

describe.each(Object.entries(FAULTS))('Redis %s', (_name, fault) => {
  test(`${2 * PER_INSTANCE} concurrent requests for a cold key over two instances: at most one SQL load of it per instance`, async () => {
    const id = nextId++;
    await fault.start();
    try {
      await stampede(id);
    } finally {
      await fault.end();
    }
    expect(loads.a.get(id)).toBe(1);
    expect(loads.b.get(id)).toBe(1);
  });
});
