/**
 * Three built servers (`node dist/server.js`, each on its own port and with its own PostgreSQL pool
 * and Redis connections) behind an imaginary load balancer: one PostgreSQL database, one Redis, one
 * key prefix, and clients spread over the three.
 *
 * - A stampede on cold keys is loaded from PostgreSQL once per key across the three processes: every
 *   lookup of the key in every response is counted, and exactly one says `miss` (loaded by this
 *   request); the others waited for that fill (`collapsed`) or came after it (`hit`).
 * - Read-after-write: with the L1 tier off, a read sent to another process after a mutation
 *   returned serves the new version at once; with L1 on (a second set of three processes), within
 *   the documented window — measured here over real processes and printed.
 *
 * dist/ is built by CI before the tests; when it is missing or older than src/, it is built here.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { signToken } from '../../src/auth/tokens.js';
import type { CacheDebugExtension } from '../../src/graphql/plugins/use-cache-debug.js';
import { seedDatabase } from '../../src/db/seed.js';
import { TEST_AUTH_SECRET } from '../support/app.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import {
  builtServerEnv,
  ensureBuilt,
  freePort,
  ROOT,
  SERVER_ENTRY,
  spawnNode,
  type ChildServer,
} from '../support/http-server.js';
import { purgeKeys, uniquePrefix } from '../support/redis.js';

const PROCESSES = 3;

interface Body {
  data?: Record<string, unknown> | null;
  errors?: { message: string }[];
  extensions?: { cache?: CacheDebugExtension };
}

interface Instance {
  readonly origin: string;
  readonly server: ChildServer;
  gql(query: string, options?: { token?: string; variables?: Record<string, unknown> }): Promise<Body>;
}

/** A set of server processes sharing one fresh database (seeded) and one key prefix. */
interface ProcessSet {
  readonly instances: readonly Instance[];
  readonly prefix: string;
  stop(): Promise<void>;
}

async function startProcessSet(label: string, env: Record<string, string>): Promise<ProcessSet> {
  const testDb: TestDatabase = await createTestDatabase(label);
  await seedDatabase(testDb.database.db, { users: 40, postsPerUser: 2, announce: false });
  const prefix = uniquePrefix(label);
  const instances: Instance[] = [];
  const stop = async () => {
    await Promise.all(instances.map((i) => i.server.kill()));
    await testDb.drop();
    await purgeKeys(`${prefix}:`);
  };
  try {
    const started = await Promise.all(
      Array.from({ length: PROCESSES }, async () => {
        const port = await freePort();
        const server = spawnNode(
          [SERVER_ENTRY],
          builtServerEnv(port, {
            databaseUrl: testDb.url,
            prefix,
            env: {
              // These tests assert answers, not speed: a burst of requests at a process that has just
              // started (cold JIT, two cores shared with other test files) must not time out Redis
              // commands and send the stampede to PostgreSQL by way of the circuit breaker.
              REDIS_COMMAND_TIMEOUT_MS: '2000',
              ...env,
            },
          }),
          ROOT,
        );
        return { port, server };
      }),
    );
    instances.push(...started.map(({ port, server }) => instanceOf(server, port)));
    await Promise.all(started.map(({ server }) => server.waitForLine(/listening/, 30_000)));
    // Warm each process up (code paths, connection pools) on users the tests do not use.
    for (const instance of instances) for (let id = 31; id <= 40; id += 1) await versionOn(instance, id);
    return { instances, prefix, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

function instanceOf(server: ChildServer, port: number): Instance {
  const origin = `http://127.0.0.1:${port}`;
  return {
    origin,
    server,
    async gql(query, { token, variables } = {}) {
      const response = await fetch(`${origin}/graphql`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-cache-debug': '1',
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        body: JSON.stringify({ query, variables }),
      });
      return (await response.json()) as Body;
    },
  };
}

/**
 * Lookup outcomes of one key (by suffix, e.g. `:profile:{7}`) in a response's debug extension; an
 * answer the response tier (on by default) served looked nothing up: `response-hit`.
 */
function outcomesOf(body: Body, keySuffix: string): string[] {
  const cache = body.extensions?.cache;
  if (cache === undefined) throw new Error(`no debug extension in ${JSON.stringify(body)}`);
  if (cache.response?.outcome === 'hit') return ['response-hit'];
  return cache.lookups.filter((l) => l.key.endsWith(keySuffix)).map((l) => l.status);
}

const PROFILE = `query($id: ID!) { user(id: $id) { profile { version bio } } }`;
const UPDATE = `mutation($bio: String!) { updateProfile(input: { bio: $bio }) { version } }`;

async function versionOn(instance: Instance, userId: number): Promise<number> {
  const body = await instance.gql(PROFILE, { variables: { id: String(userId) } });
  expect(body.errors).toBeUndefined();
  return (body.data as { user: { profile: { version: number } } }).user.profile.version;
}

async function write(instance: Instance, userId: number, bio: string): Promise<number> {
  const body = await instance.gql(UPDATE, {
    token: await signToken(TEST_AUTH_SECRET, userId),
    variables: { bio },
  });
  expect(body.errors).toBeUndefined();
  return (body.data as { updateProfile: { version: number } }).updateProfile.version;
}

/**
 * `perKey` concurrent requests for each of `userIds`' (cold) profiles, spread round-robin over the
 * instances; returns, per user, the outcomes of its profile lookup across every response.
 */
async function stampede(instances: readonly Instance[], userIds: readonly number[], perKey: number) {
  const requests = userIds.flatMap((id) => Array.from({ length: perKey }, () => id));
  const bodies = await Promise.all(
    requests.map((id, i) => instances[i % instances.length]!.gql(PROFILE, { variables: { id: String(id) } })),
  );
  const outcomes = new Map<number, string[]>(userIds.map((id) => [id, []]));
  bodies.forEach((body, i) => {
    expect(body.errors).toBeUndefined();
    outcomes.get(requests[i]!)!.push(...outcomesOf(body, `:profile:{${requests[i]}}`));
  });
  return outcomes;
}

function expectOneLoadPerKey(outcomes: Map<number, string[]>, perKey: number) {
  for (const [id, seen] of outcomes) {
    expect(seen, `profile ${id}`).toHaveLength(perKey);
    expect(
      seen.filter((s) => s === 'miss'),
      `profile ${id}`,
    ).toHaveLength(1);
    expect(
      seen.filter((s) => !['miss', 'collapsed', 'hit', 'response-hit'].includes(s)),
      `profile ${id}`,
    ).toEqual([]);
  }
}

function summary(samples: readonly number[]) {
  const sorted = [...samples].sort((x, y) => x - y);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
  return { p50: at(0.5), p99: at(0.99), max: sorted.at(-1)! };
}

beforeAll(ensureBuilt, 240_000);

describe('three processes, L1 off (the default)', () => {
  let set: ProcessSet;
  beforeAll(async () => {
    set = await startProcessSet('multiproc', {});
  }, 120_000);
  afterAll(() => set?.stop());

  test('a stampede on 5 cold profiles, 60 requests each over the 3 processes: 1 SQL load per key', async () => {
    const outcomes = await stampede(set.instances, [1, 2, 3, 4, 5], 60);
    expectOneLoadPerKey(outcomes, 60);
    const all = [...outcomes.values()].flat();
    console.log(
      `[multi-process stampede, L1 off] requests=${all.length} ` +
        `miss=${all.filter((s) => s === 'miss').length} collapsed=${all.filter((s) => s === 'collapsed').length} ` +
        `hit=${all.filter((s) => s === 'hit').length} response-hit=${all.filter((s) => s === 'response-hit').length}`,
    );
  });

  test('read-after-write: once a mutation returns on one process, the other two serve the new version', async () => {
    // Users 11..16, two rounds each, the writer rotating over the processes.
    const { instances } = set;
    for (let round = 0; round < 2; round += 1) {
      for (let id = 11; id <= 16; id += 1) {
        for (const instance of instances) await versionOn(instance, id); // warm everywhere
        const writer = (id + round) % PROCESSES;
        const version = await write(instances[writer]!, id, `round ${round}`);
        for (const [i, instance] of instances.entries()) {
          if (i !== writer) expect(await versionOn(instance, id), `user ${id} on process ${i}`).toBe(version);
        }
      }
    }
  });
});

describe('three processes, L1 on', () => {
  const POLL_MS = 250;
  const TTL_MS = 1000;
  let set: ProcessSet;
  beforeAll(async () => {
    set = await startProcessSet('multiproc_l1', {
      CACHE_L1_MAX_ENTRIES: '10000',
      CACHE_L1_TTL_MS: String(TTL_MS),
      OUTBOX_POLL_INTERVAL_MS: String(POLL_MS),
    });
  }, 120_000);
  afterAll(() => set?.stop());

  test('a stampede on 5 cold profiles: still 1 SQL load per key (L1 sits in front of the locks)', async () => {
    expectOneLoadPerKey(await stampede(set.instances, [1, 2, 3, 4, 5], 60), 60);
  });

  test('read-after-write on the other processes within the coherence window (event delivery, at most the L1 TTL)', async () => {
    // Users 11..20: each read on every process until it comes from L1, then written on one process;
    // the other two are read every 10 ms until they serve the new version (so the window is measured
    // to within 10 ms, and the readers' own load stays small).
    const { instances } = set;
    const windows: number[] = [];
    await Promise.all(
      Array.from({ length: 10 }, async (_, k) => {
        const id = 11 + k;
        for (let round = 0; round < 3; round += 1) {
          for (const instance of instances) for (let i = 0; i < 2; i += 1) await versionOn(instance, id);
          await sleep(Math.floor(Math.random() * POLL_MS)); // out of step with the relays
          const writer = (k + round) % PROCESSES;
          const version = await write(instances[writer]!, id, `round ${round}`);
          const returnedAt = performance.now();
          // The writer's own L1 took the write: no lag there.
          expect(await versionOn(instances[writer]!, id)).toBe(version);
          await Promise.all(
            instances.map(async (instance, i) => {
              if (i === writer) return;
              while ((await versionOn(instance, id)) < version) {
                if (performance.now() - returnedAt > 10_000)
                  throw new Error(`user ${id} never caught up on ${i}`);
                await sleep(10);
              }
              windows.push(performance.now() - returnedAt);
            }),
          );
        }
      }),
    );
    const { p50, p99, max } = summary(windows);
    console.log(
      `[multi-process coherence window, L1 on] reads=${windows.length} relay poll=${POLL_MS}ms ` +
        `L1 TTL=${TTL_MS}ms p50=${p50.toFixed(1)}ms p99=${p99.toFixed(1)}ms max=${max.toFixed(1)}ms`,
    );
    expect(windows).toHaveLength(10 * 3 * (PROCESSES - 1));
    expect(max).toBeLessThan(POLL_MS + TTL_MS + 1000);
  });
});
