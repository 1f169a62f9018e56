/**
 * The cache end to end on a Redis Cluster (REDIS_CLUSTER_NODES): a private cluster of 3 masters, and
 * app instances that share it and one PostgreSQL database, as servers behind a load balancer would.
 * The key tests of cache-read-path, stampede and consistency, again, where the cluster changes what
 * happens underneath:
 *
 * - multi-gets are split by slot (ids spread over all three masters) and auto-pipelined: a warm
 *   request writes at most one request per loader batch to each master;
 * - the fence and lock scripts each touch one key (one slot);
 * - fill notifications are PUBLISHed inside the lock-release script on whichever master owns the key,
 *   while a waiter's subscriber connection sits on some other node: the cluster bus broadcasts them
 *   (the stampede and its waiters on the other instance prove it), and so the events channel;
 * - the relay's tombstones and events, and the L1 tier's eviction by event;
 * - and no command is ever refused with CROSSSLOT (or any other error): every store error the
 *   instances saw is recorded, and every master's `INFO errorstats` is read at the end.
 *
 * Seed: users 1..240, 2 posts each. Each test works on its own users, named in it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'drizzle-orm';
import { Redis, type Cluster } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { L1_TIER } from '../../src/cache/read/l1-tier.js';
import { createCacheKeys } from '../../src/cache/entities/keys.js';
import { createRedisConnections, type RedisConnections } from '../../src/cache/store/redis/connections.js';
import { createRedisStore } from '../../src/cache/store/redis/redis-store.js';
import { slotOf } from '../../src/cache/store/redis/slots.js';
import type { CacheStore } from '../../src/cache/store/contract.js';
import { STORE_CALLS, aroundCalls, forwardStore } from '../../src/cache/store/layers/forward.js';
import type { BeforeQueryHook, RepositoryQuery } from '../../src/db/repositories.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { DEBUG, debugOf, statusesOf } from '../support/debug.js';
import { startPrivateRedisCluster, type PrivateRedisCluster } from '../support/redis.js';
import { eventReaching, updateBio } from '../support/updates.js';

const TWENTY_IDS = Array.from({ length: 20 }, (_, i) => String(i + 1));
const USERS_QUERY = `query Users($ids: [ID!]!) {
  users(ids: $ids) { id profile { bio } posts(first: 3) { title author { name } } }
}`;
const PROFILE = `query Profile($id: ID!) { user(id: $id) { profile { bio version } } }`;
const POSTS = `query Posts($id: ID!) { user(id: $id) { posts(first: 1) { id title } } }`;
const CREATE = `mutation Create($input: CreatePostInput!) { createPost(input: $input) { id } }`;

let cluster: PrivateRedisCluster;
/** Every error a store call rejected with, or a connection reported, on any instance. */
const storeErrors: string[] = [];

interface ClusterStore {
  readonly store: CacheStore;
  readonly connections: RedisConnections;
}

/** A store on the cluster, with its own connections (as another server would have), errors recorded. */
function clusterStore(): ClusterStore {
  const connections = createRedisConnections({
    clusterNodes: cluster.seeds,
    // Generous: these tests assert answers, not speed, and a timeout would be recorded as an error.
    commandTimeoutMs: 2000,
    onError: (error, role) => storeErrors.push(`${role} connection: ${error.message}`),
  });
  const inner = createRedisStore({
    connections,
    // Every instance of these tests shares one generation key (a cluster keeps no write stamp).
    dependentKeys: createCacheKeys('t_cluster_deploy').dependents,
    onError: (error) => storeErrors.push(`listener: ${error.message}`),
  });
  const store = forwardStore(
    inner,
    aroundCalls(inner, STORE_CALLS, (method, call) =>
      call().catch((error: unknown) => {
        storeErrors.push(`${method}: ${error instanceof Error ? error.message : String(error)}`);
        throw error;
      }),
    ),
  );
  return { store, connections };
}

/** Ids each kind of SQL load asked for, across instances. */
const loads = new Map<RepositoryQuery, number[]>();
let profileDelayMs = 0;
/** A pause installed by a test: holds the next matching load's rows before they fill the cache. */
let pauseOnA: { hook: BeforeQueryHook; release(): void } | undefined;

const hooks = {
  beforeQuery: async (query: RepositoryQuery, ids: readonly number[]) => {
    loads.set(query, [...(loads.get(query) ?? []), ...ids]);
    if (query === 'profiles' && profileDelayMs > 0) await sleep(profileDelayMs);
  },
};
const loadsOf = (query: RepositoryQuery, id: number) =>
  (loads.get(query) ?? []).filter((x) => x === id).length;

let a: TestApp;
let b: TestApp;
/** A third instance with the L1 tier on. */
let c: TestApp;
const stores: ClusterStore[] = [];

beforeAll(async () => {
  cluster = await startPrivateRedisCluster(3);
  for (let i = 0; i < 3; i += 1) stores.push(clusterStore());
  await Promise.all(stores.map((s) => s.connections.ready()));
  const env = { REDIS_CLUSTER_NODES: cluster.seedList };
  a = await createTestApp({
    label: 'cluster',
    seed: { users: 240, postsPerUser: 2 },
    store: stores[0]!.store,
    env,
    startRelay: false,
    repositoryOptions: { ...hooks, afterQuery: (query, ids) => pauseOnA?.hook(query, ids) },
  });
  b = await createTestApp({
    label: 'cluster',
    share: a,
    store: stores[1]!.store,
    env,
    startRelay: false,
    repositoryOptions: hooks,
  });
  c = await createTestApp({
    label: 'cluster',
    share: a,
    store: stores[2]!.store,
    env: { ...env, CACHE_L1_MAX_ENTRIES: '1000', CACHE_L1_TTL_MS: '60000' },
    startRelay: false,
  });
}, 120_000);

afterAll(async () => {
  pauseOnA?.release();
  await c?.close();
  await b?.close();
  await a?.close();
  await Promise.all(stores.map((s) => s.store.close()));
  await cluster?.stop();
});

afterEach(() => {
  loads.clear();
  profileDelayMs = 0;
  pauseOnA?.release();
  pauseOnA = undefined;
});

/** A pause for the next SQL read of `query` asking for `id` on A, after it has its rows. */
function pauseA(query: RepositoryQuery, id: number) {
  let reached!: () => void;
  let release!: () => void;
  const reachedP = new Promise<void>((resolve) => (reached = resolve));
  const released = new Promise<void>((resolve) => (release = resolve));
  let used = false;
  pauseOnA = {
    release,
    hook: async (q, ids) => {
      if (used || q !== query || !ids.includes(id)) return;
      used = true;
      reached();
      await released;
    },
  };
  return { reached: reachedP, release };
}

async function readProfile(t: TestApp, userId: number) {
  const response = await t.gql<{ user: { profile: { bio: string; version: number } } }>(PROFILE, {
    variables: { id: String(userId) },
    headers: DEBUG,
  });
  expect(response.body.errors).toBeUndefined();
  const debug = debugOf(response);
  return {
    ...response.body.data!.user.profile,
    xCache: response.headers.get('x-cache'),
    outcomes: statusesOf(debug, `:profile:{${userId}}`),
    tier: debug.lookups.find((l) => l.key.endsWith(`:profile:{${userId}}`))?.tier,
    sql: debug.sqlStatements,
  };
}

/** Socket writes to each master while `operation` runs: each is one request (a command or a pipeline). */
async function writesPerMaster<T>(client: Cluster, operation: () => Promise<T>) {
  const counts = new Map<string, number>();
  const restore: (() => void)[] = [];
  for (const node of client.nodes('master')) {
    const socket = node.stream;
    const name = `${node.options.host}:${node.options.port}`;
    counts.set(name, 0);
    const original = socket.write;
    socket.write = ((...args: Parameters<typeof original>) => {
      counts.set(name, counts.get(name)! + 1);
      return original.apply(socket, args);
    }) as typeof socket.write;
    restore.push(() => (socket.write = original));
  }
  try {
    const result = await operation();
    return { result, counts };
  } finally {
    for (const undo of restore) undo();
  }
}

describe('read path on the cluster', () => {
  test('a cold users(ids) request misses and fills; warm, it runs 0 SQL and at most one request per batch to each master', async () => {
    const cold = await a.gql(USERS_QUERY, { variables: { ids: TWENTY_IDS }, headers: DEBUG });
    expect(cold.body.errors).toBeUndefined();
    expect(cold.headers.get('x-cache')).toBe('MISS');
    expect(debugOf(cold).sqlStatements).toBe(4);
    // 20 users + 20 profiles + 20 post-id lists + 40 posts.
    expect(debugOf(cold).lookups).toHaveLength(100);
    expect(cold.headers.get('cache-status')).toMatch(/^cacheside-redis; fwd=miss; stored; /);

    // The 100 keys live on every master: the multi-gets really were split by slot.
    const keys = debugOf(cold).lookups.map((l) => l.key);
    const client = stores[0]!.connections.command as Cluster;
    const owners = new Set(keys.map((key) => client.slots[slotOf(key)]?.[0]));
    expect(owners.size).toBe(3);

    const { result: warm, counts } = await writesPerMaster(client, () =>
      a.gql(USERS_QUERY, { variables: { ids: TWENTY_IDS }, headers: DEBUG }),
    );
    expect(warm.headers.get('x-cache')).toBe('HIT');
    expect(warm.body.data).toEqual(cold.body.data);
    const debug = debugOf(warm);
    expect(debug.sqlStatements).toBe(0);
    expect(debug.storeRoundTrips).toBe(4); // four loader batches, four getMany calls
    // Per-slot MGETs of one batch, issued in one tick, leave as one request per master.
    for (const [node, writes] of counts) expect(writes, node).toBeLessThanOrEqual(4);
    expect(Math.max(...counts.values())).toBeGreaterThan(0);
  });

  test('unknown ids are cached as negative entries and count as hits', async () => {
    const query = `{ a: user(id: "9999") { id } b: post(id: "99999") { id } }`;
    expect(debugOf(await b.gql(query, { headers: DEBUG })).sqlStatements).toBe(2);
    const again = await b.gql(query, { headers: DEBUG });
    expect(debugOf(again).lookups.map((l) => l.status)).toEqual(['negative_hit', 'negative_hit']);
    expect(again.headers.get('x-cache')).toBe('HIT');
  });
});

describe('stampede on the cluster, over two instances', () => {
  test('300 concurrent requests for one cold profile whose load takes 300 ms: exactly 1 SQL load', async () => {
    // User 21. The waiters on B hear the fill through the cluster bus.
    await a.gql(`{ user(id: "21") { name } }`);
    loads.clear();
    profileDelayMs = 300;
    const responses = await Promise.all(
      Array.from({ length: 300 }, (_, i) =>
        (i % 2 === 0 ? a : b).gql(`{ user(id: "21") { profile { version } } }`, { headers: DEBUG }),
      ),
    );
    expect(loadsOf('profiles', 21)).toBe(1);
    const statuses = responses.map((r) => statusesOf(debugOf(r), ':profile:{21}')[0]);
    expect(statuses.filter((s) => s === 'miss')).toHaveLength(1);
    expect(statuses.filter((s) => s !== 'miss' && s !== 'collapsed' && s !== 'hit')).toEqual([]);
    const collapsedOnB = responses.filter((_, i) => i % 2 === 1 && statuses[i] === 'collapsed');
    expect(collapsedOnB.length).toBeGreaterThan(0);
    for (const r of responses) expect(r.body).toMatchObject({ data: { user: { profile: { version: 1 } } } });
  });

  test('200 cold ids in one request, sent to both instances at once: each id is loaded once', async () => {
    const ids = Array.from({ length: 200 }, (_, i) => String(i + 31));
    const query = `query($a: [ID!]!, $b: [ID!]!) {
      first: users(ids: $a) { id profile { bio } }
      second: users(ids: $b) { id profile { bio } }
    }`;
    const variables = { a: ids.slice(0, 100), b: ids.slice(100) };
    const [fromA, fromB] = await Promise.all([a.gql(query, { variables }), b.gql(query, { variables })]);
    expect(fromA.body.errors).toBeUndefined();
    expect(fromA.body).toEqual(fromB.body);
    for (const query of ['users', 'profiles'] as const) {
      const loaded = loads.get(query) ?? [];
      expect(loaded).toHaveLength(200);
      expect(new Set(loaded).size).toBe(200);
    }
  });
});

describe('consistency on the cluster', () => {
  test('read-your-writes: after updateProfile returns on A, B serves the new version from the cache', async () => {
    // User 231.
    for (const t of [a, b, a, b]) expect((await readProfile(t, 231)).version).toBe(1);
    const version = await updateBio(a, 231, 'written on A');
    const onB = await readProfile(b, 231);
    expect(onB).toMatchObject({ version, bio: 'written on A', xCache: 'HIT', sql: 0 });
  });

  test("read-your-writes: after createPost returns on A, the author's list on B starts with it", async () => {
    // User 232.
    for (const t of [b, a, b]) await t.gql(POSTS, { variables: { id: '232' } });
    const created = await a.gql<{ createPost: { id: string } }>(CREATE, {
      variables: { input: { title: 'On the cluster', body: 'body' } },
      token: await a.token(232),
    });
    expect(created.body.errors).toBeUndefined();
    const onB = await b.gql<{ user: { posts: { id: string; title: string }[] } }>(POSTS, {
      variables: { id: '232' },
    });
    expect(onB.body.data!.user.posts).toEqual([
      { id: created.body.data!.createPost.id, title: 'On the cluster' },
    ]);
  });

  test('the stale-set race: a reader paused with old rows loses to a writer on the other instance', async () => {
    // User 233: A loads version 1 and is held; B writes version 2; A's late fill is refused.
    await a.gql(`{ user(id: "233") { name } }`);
    const pause = pauseA('profiles', 233);
    const reader = readProfile(a, 233);
    await pause.reached;
    const version = await updateBio(b, 233, 'written on B');
    expect(version).toBe(2);
    pause.release();
    expect((await reader).version).toBe(1); // started before the write: allowed
    for (const t of [a, b]) {
      expect(await readProfile(t, 233)).toMatchObject({
        version: 2,
        bio: 'written on B',
        xCache: 'HIT',
        sql: 0,
      });
    }
  });

  test('the relay: a change by plain SQL is tombstoned and announced; every instance hears the event', async () => {
    // User 234; C has the L1 tier on and holds the old version in it.
    for (const t of [a, b, c, c]) expect((await readProfile(t, 234)).version).toBe(1);
    expect((await readProfile(c, 234)).tier).toBe(L1_TIER);

    while ((await b.app.relay.runOnce()) > 0); // earlier tests' events
    await a.testDb.database.db.execute(sql`update profiles set bio = 'by SQL' where user_id = 234`);
    const heard = [a, b, c].map((t) => eventReaching(t, 'profile', 234));
    expect(await b.app.relay.runOnce()).toBe(1);
    expect(await Promise.all(heard)).toEqual(Array(3).fill({ entity: 'profile', id: 234, version: 2 }));

    for (const t of [a, b, c]) expect(await readProfile(t, 234)).toMatchObject({ version: 2, bio: 'by SQL' });
    expect((await readProfile(c, 234)).tier).toBe(L1_TIER);
  });

  test('L1 on the cluster: the writer takes its write; another instance drops its copy on the event', async () => {
    // User 235: C (L1) writes; then A writes, and C's copy goes when the event arrives.
    for (const t of [c, c, a]) await readProfile(t, 235);
    const mine = await updateBio(c, 235, 'written on C');
    expect(await readProfile(c, 235)).toMatchObject({ version: mine, tier: L1_TIER });

    const theirs = await updateBio(a, 235, 'written on A');
    const heard = eventReaching(c, 'profile', 235);
    while ((await a.app.relay.runOnce()) > 0);
    await heard;
    expect(await readProfile(c, 235)).toMatchObject({ version: theirs, bio: 'written on A' });
  });
});

describe('slot safety', () => {
  test('no store call failed and no master refused a command (CROSSSLOT or any other) during the whole file', async () => {
    /** Error replies by type, summed over the masters (`INFO errorstats`). */
    const errors: Record<string, number> = {};
    /** Commands that failed or were refused, by command (`INFO commandstats`). */
    const failedCommands: Record<string, number> = {};
    for (const node of cluster.nodes) {
      const redis = new Redis(node.url);
      try {
        for (const [, type, count] of (await redis.info('errorstats')).matchAll(
          /errorstat_(\w+):count=(\d+)/g,
        ))
          errors[type!] = (errors[type!] ?? 0) + Number(count);
        const commandstats = await redis.info('commandstats');
        for (const [, command, failed, rejected] of commandstats.matchAll(
          /cmdstat_(\S+):.*rejected_calls=(\d+),failed_calls=(\d+)/g,
        )) {
          const n = Number(failed) + Number(rejected);
          if (n > 0) failedCommands[command!] = (failedCommands[command!] ?? 0) + n;
        }
      } finally {
        redis.disconnect();
      }
    }
    console.log(
      `[cluster] masters=${cluster.nodes.length} CROSSSLOT=${errors.CROSSSLOT ?? 0} ` +
        `error replies=${JSON.stringify(errors)} failed commands=${JSON.stringify(failedCommands)} ` +
        `store errors=${storeErrors.length}`,
    );
    expect(errors.CROSSSLOT ?? 0).toBe(0);
    // The only error replies are ERR to `CLIENT SETINFO`, which ioredis sends on every new connection
    // and Redis < 7.2 does not know (ioredis ignores the answer); an unknown subcommand is not a
    // command call, so every command cacheside sent ran without error:
    expect(Object.keys(errors).filter((type) => type !== 'ERR')).toEqual([]);
    expect(failedCommands).toEqual({});
    expect(storeErrors).toEqual([]);
  });
});
