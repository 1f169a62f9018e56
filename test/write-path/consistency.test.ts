/**
 * The consistency guarantees of DESIGN §5–§6, proven over two app instances (A and B) that share one
 * PostgreSQL database and one Redis key prefix, as two servers would:
 *
 * 1. read-your-writes across instances: once a mutation has returned, the other instance serves the
 *    new version, from the cache;
 * 2. the stale-set race, made to happen on purpose (a hook pauses a reader that holds old rows while
 *    a writer commits): the late fill is refused by the version fence, and a read that starts after
 *    the write returned never gets the old rows;
 * 3. a change made by plain SQL, outside the API, reaches the cache through the outbox relay;
 * 4. a rollback never touches the cache, the outbox or the events channel;
 * 5. the relay publishes what a write-through missed, and a duplicated or reordered event changes
 *    nothing;
 * 6. a bounded randomized stress of readers and writers over hot profiles, checking read-your-writes
 *    on every read and, at the end, that every cached value equals its row.
 *
 * Two pairs of instances: `manual` (relays stopped, driven with `relay.runOnce()`, so that every
 * invalidation happens exactly when a test says) for 1, 2, 4 and 5; `live` (relays polling every
 * 20 ms, as in production but faster) for 3 and 6.
 *
 * Seeds: manual — users 1..40, 3 posts each; live — users 1..20, 3 posts each. Each test works on its
 * own users, listed in its title block.
 */
import { randomUUID } from 'node:crypto';
import { setImmediate as nextMacrotask, setTimeout as sleep } from 'node:timers/promises';
import { sql, type SQL } from 'drizzle-orm';
import { Redis } from 'ioredis';
import { unpack } from 'msgpackr';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { createChaosStore } from '../support/chaos-store.js';
import { createStoreFromConfig } from '../../src/cache/store/from-config.js';
import type { CacheStore } from '../../src/cache/store/contract.js';
import { mulberry32 } from '../../src/db/prng.js';
import type { BeforeQueryHook, RepositoryQuery } from '../../src/db/repositories.js';
import { createLogger } from '../../src/observability/logger.js';
import { createTestApp, REDIS_URL, type GraphQLResponse, type TestApp } from '../support/app.js';
import { DEBUG, debugOf, statusesOf } from '../support/debug.js';
import { scanKeys } from '../support/redis.js';

// Operations

const PROFILE = `query Profile($id: ID!) { user(id: $id) { id profile { userId displayName bio version } } }`;
const POSTS = `query Posts($id: ID!) { user(id: $id) { id posts(first: 1) { id title } } }`;
const UPDATE = `mutation Update($input: UpdateProfileInput!) { updateProfile(input: $input) { userId bio version } }`;
const CREATE = `mutation Create($input: CreatePostInput!) { createPost(input: $input) { id title } }`;

interface ProfileOut {
  userId: string;
  displayName: string;
  bio: string;
  version: number;
}
interface PostOut {
  id: string;
  title: string;
}

/** What one read answered and what the cache did for it. */
interface Observed<T> {
  readonly value: T;
  readonly xCache: string | null;
  readonly cacheStatus: string | null;
  /** SQL statements the request ran (debug extension). */
  readonly sql: number;
  /** Lookup outcomes of the entity key under test, e.g. ['hit']. */
  readonly outcomes: string[];
  readonly debug: ReturnType<typeof debugOf>;
}

function observed<T>(response: GraphQLResponse<unknown>, value: T, keySuffix: string): Observed<T> {
  expect(response.body.errors).toBeUndefined();
  const debug = debugOf(response);
  return {
    value,
    xCache: response.headers.get('x-cache'),
    cacheStatus: response.headers.get('cache-status'),
    sql: debug.sqlStatements,
    outcomes: statusesOf(debug, keySuffix),
    debug,
  };
}

async function readProfile(t: TestApp, userId: number): Promise<Observed<ProfileOut>> {
  const response = await t.gql<{ user: { profile: ProfileOut } | null }>(PROFILE, {
    variables: { id: String(userId) },
    headers: DEBUG,
  });
  const profile = response.body.data?.user?.profile;
  if (profile === undefined) throw new Error(`no profile in ${JSON.stringify(response.body)}`);
  return observed(response, profile, `:profile:{${userId}}`);
}

async function readNewestPost(t: TestApp, authorId: number): Promise<Observed<PostOut | undefined>> {
  const response = await t.gql<{ user: { posts: PostOut[] } | null }>(POSTS, {
    variables: { id: String(authorId) },
    headers: DEBUG,
  });
  const posts = response.body.data?.user?.posts;
  if (posts === undefined) throw new Error(`no posts in ${JSON.stringify(response.body)}`);
  return observed(response, posts[0], `:user:{${authorId}}:posts`);
}

async function updateProfile(t: TestApp, userId: number, input: Record<string, unknown>) {
  return t.gql<{ updateProfile: ProfileOut }>(UPDATE, { variables: { input }, token: await t.token(userId) });
}

async function updated(t: TestApp, userId: number, input: Record<string, unknown>): Promise<ProfileOut> {
  const response = await updateProfile(t, userId, input);
  expect(response.body.errors).toBeUndefined();
  return response.body.data!.updateProfile;
}

async function createdPost(t: TestApp, authorId: number, title: string): Promise<PostOut> {
  const response = await t.gql<{ createPost: PostOut }>(CREATE, {
    variables: { input: { title, body: `${title}, the body` } },
    token: await t.token(authorId),
  });
  expect(response.body.errors).toBeUndefined();
  return response.body.data!.createPost;
}

// PostgreSQL, outside the API

/** Runs a statement on the test database's own connection (no app, no request, no cache). */
async function rows<T>(t: TestApp, statement: SQL): Promise<T[]> {
  const result: unknown = await t.testDb.database.db.execute(statement);
  // postgres.js answers the rows array itself.
  return (Array.isArray(result) ? result : ((result as { rows?: T[] }).rows ?? [])) as T[];
}

async function profileRow(t: TestApp, userId: number) {
  const [row] = await rows<{ version: number; bio: string; display_name: string }>(
    t,
    sql`select version, bio, display_name from profiles where user_id = ${userId}`,
  );
  if (row === undefined) throw new Error(`no profile row for user ${userId}`);
  return { version: Number(row.version), bio: row.bio, displayName: row.display_name };
}

async function outboxRows(t: TestApp, entity: string, entityId: number) {
  const found = await rows<{ id: string; version: string; published_at: Date | null }>(
    t,
    sql`select id, version, published_at from outbox where entity = ${entity} and entity_id = ${entityId} order by id`,
  );
  return found.map((r) => ({
    id: Number(r.id),
    version: Number(r.version),
    published: r.published_at !== null,
  }));
}

async function lastOutboxId(t: TestApp): Promise<number> {
  const [row] = await rows<{ last: string | null }>(t, sql`select max(id) as last from outbox`);
  return Number(row?.last ?? 0);
}

async function unpublishedCount(t: TestApp): Promise<number> {
  const [row] = await rows<{ n: number }>(
    t,
    sql`select count(*)::int as n from outbox where published_at is null`,
  );
  return Number(row?.n ?? 0);
}

/** Runs the relay until the backlog is empty; returns the number of events it published. */
async function drainOutbox(t: TestApp): Promise<number> {
  let total = 0;
  for (;;) {
    const published = await t.app.relay.runOnce();
    if (published === 0) return total;
    total += published;
  }
}

// Redis, outside the app

/** Our own connections: one for commands, one that only subscribes. */
let redis: Redis;
let subscriber: Redis;

const profileKey = (t: TestApp, userId: number) => `${t.prefix}:v1:profile:{${userId}}`;
const postListKey = (t: TestApp, authorId: number) => `${t.prefix}:v1:user:{${authorId}}:posts`;
const eventsChannel = (t: TestApp) => `${t.prefix}:v1:events`;

/** The kind and version of a raw entry (`<kind>:<version>:<staleAt>:<payload>`, see redis-store.ts). */
function headerOf(raw: Buffer | null): { kind: string; version: number } | undefined {
  if (raw === null) return undefined;
  const match = /^([vnt]):(\d+):(\d+):/.exec(raw.subarray(0, 64).toString('latin1'));
  if (match === null) throw new Error(`not a cacheside entry: ${raw.subarray(0, 64).toString('latin1')}`);
  const kinds: Record<string, string> = { v: 'value', n: 'negative', t: 'tombstone' };
  return { kind: kinds[match[1]!]!, version: Number(match[2]) };
}

/** A raw entry as text, for readable diffs: its header as stored, then its payload in hex. */
async function rawEntry(key: string): Promise<string | null> {
  const raw = await redis.getBuffer(key);
  if (raw === null) return null;
  const match = /^[vnt]:\d+:\d+:/.exec(raw.subarray(0, 64).toString('latin1'));
  const headerLength = match?.[0].length ?? 0;
  return `${raw.subarray(0, headerLength).toString('latin1')}${raw.subarray(headerLength).toString('hex')}`;
}

/** Every key under the prefix with its exact bytes (hex), TTLs left out: they tick. */
async function dumpRedis(t: TestApp): Promise<Record<string, string>> {
  const dump: Record<string, string> = {};
  for (const { key } of await scanKeys(`${t.prefix}:`)) {
    const raw = await redis.getBuffer(key);
    if (raw !== null) dump[key] = raw.toString('hex');
  }
  return dump;
}

/** Messages received on a channel from now on; `flush()` proves the list is complete so far. */
async function listen(channel: string) {
  const received: string[] = [];
  const onMessage = (from: string, message: string) => {
    if (from === channel) received.push(message);
  };
  subscriber.on('message', onMessage);
  await subscriber.subscribe(channel);
  return {
    received,
    /**
     * Publishes a marker after everything that has been published so far and waits for it: Redis runs
     * commands one at a time and delivers a channel's messages in that order, so once the marker is
     * here, every earlier message is too. Returns the messages before the marker (and forgets them).
     */
    async flush(): Promise<string[]> {
      const marker = JSON.stringify({ events: [], marker: randomUUID() });
      const arrived = new Promise<void>((resolve) => {
        const check = (from: string, message: string) => {
          if (from === channel && message === marker) {
            subscriber.off('message', check);
            resolve();
          }
        };
        subscriber.on('message', check);
      });
      await redis.publish(channel, marker);
      await arrived;
      const before = received.splice(0, received.indexOf(marker));
      received.shift();
      return before;
    },
    async close() {
      subscriber.off('message', onMessage);
      await subscriber.unsubscribe(channel);
    },
  };
}

/** The events of the relay's messages, flattened. */
function eventsIn(messages: readonly string[]) {
  return messages.flatMap(
    (m) => (JSON.parse(m) as { events: { entity: string; id: number; version: number }[] }).events,
  );
}

beforeAll(async () => {
  redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  subscriber = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
});

afterAll(async () => {
  redis?.disconnect();
  subscriber?.disconnect();
});

// Test hooks

/**
 * A pause for the next SQL read of `query` that asks for `id` on an instance: the reader has its rows
 * (old data) and stops before it fills the cache, until `release()`.
 */
interface Pause {
  readonly hook: BeforeQueryHook;
  /** Resolves once the reader is paused. */
  readonly reached: Promise<void>;
  release(): void;
}

function pauseNext(query: RepositoryQuery, id: number): Pause {
  let reachedResolve: () => void = () => {};
  let release: () => void = () => {};
  const reached = new Promise<void>((resolve) => (reachedResolve = resolve));
  const released = new Promise<void>((resolve) => (release = resolve));
  let used = false;
  return {
    reached,
    release,
    hook: async (q, ids) => {
      if (used || q !== query || !ids.includes(id)) return;
      used = true;
      reachedResolve();
      await released;
    },
  };
}

/**
 * A store that tells the test when a `getMany` touching a key has been answered, so a test can wait
 * until a request has looked at the cache (and decided what to do about a miss) without sleeping.
 */
interface WatchedStore {
  readonly store: CacheStore;
  /** Resolves after the next `getMany` that includes `key` has its answer. */
  nextRead(key: string): Promise<void>;
}

function watchStore(inner: CacheStore): WatchedStore {
  const waiting: { key: string; resolve: () => void }[] = [];
  async function getMany(keys: readonly string[]) {
    const entries = await inner.getMany(keys);
    for (const waiter of waiting.filter((w) => keys.includes(w.key))) {
      waiting.splice(waiting.indexOf(waiter), 1);
      waiter.resolve();
    }
    return entries;
  }
  // Everything but getMany reaches the real store untouched, whatever the interface grows.
  const store = new Proxy(inner, {
    get(target, property, receiver) {
      if (property === 'getMany') return getMany;
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return {
    store,
    nextRead: (key) => new Promise<void>((resolve) => waiting.push({ key, resolve })),
  };
}

// ─── The manual pair: relays stopped ─────────────────────────────────────────────────────────────

describe('two instances, relays driven by hand', () => {
  let a: TestApp;
  let b: TestApp;
  let aStore: WatchedStore;
  /** The afterQuery hook of instance A; a test installs a pause here. */
  let pauseOnA: Pause | undefined;

  beforeAll(async () => {
    b = await createTestApp({
      label: 'consistency',
      seed: { users: 40, postsPerUser: 3 },
      startRelay: false,
    });
    // A has its own Redis connections (as another server would), behind a watcher.
    aStore = watchStore(createStoreFromConfig(b.config, createLogger('silent')));
    a = await createTestApp({
      label: 'consistency',
      share: b,
      store: aStore.store,
      startRelay: false,
      repositoryOptions: { afterQuery: (query, ids) => pauseOnA?.hook(query, ids) },
    });
  });

  afterAll(async () => {
    pauseOnA?.release();
    await a?.close();
    await aStore?.store.close();
    await b?.close();
  });

  afterEach(() => {
    // A failed test must not leave a request paused for the next one.
    pauseOnA?.release();
    pauseOnA = undefined;
  });

  function pauseA(query: RepositoryQuery, id: number): Pause {
    pauseOnA = pauseNext(query, id);
    return pauseOnA;
  }

  describe('1. read-your-writes across instances', () => {
    // Users 1 and 2.
    test('after updateProfile returns on A, B serves that version from the cache: HIT, 0 SQL', async () => {
      for (const t of [a, b, a, b]) expect((await readProfile(t, 1)).value.version).toBe(1);
      expect((await readProfile(b, 1)).xCache).toBe('HIT');

      const written = await updated(a, 1, { bio: 'written on A' });
      expect(written.version).toBe(2);

      const onB = await readProfile(b, 1);
      expect(onB.value).toMatchObject({ bio: 'written on A', version: 2 });
      expect(onB.xCache).toBe('HIT');
      expect(onB.outcomes).toEqual(['hit']);
      expect(onB.sql).toBe(0);
      expect(await profileRow(b, 1)).toMatchObject({ version: 2, bio: 'written on A' });
    });

    test("after createPost returns on A, the author's posts(first: 1) on B starts with it", async () => {
      // Warm the list on both, so that B holds a list without the new post.
      const before = await readNewestPost(b, 2);
      expect((await readNewestPost(a, 2)).value).toEqual(before.value);
      expect((await readNewestPost(b, 2)).xCache).toBe('HIT');

      const post = await createdPost(a, 2, 'Fresh from A');
      expect(Number(post.id)).toBeGreaterThan(Number(before.value!.id));

      const onB = await readNewestPost(b, 2);
      expect(onB.value).toEqual({ id: post.id, title: 'Fresh from A' });
      // The list was tombstoned by the write-through, so B reloaded it; the post itself was written through.
      expect(onB.outcomes).toEqual(['miss']);
      expect(statusesOf(onB.debug, `:post:{${post.id}}`)).toEqual(['hit']);
    });
  });

  describe('2. the stale-set race, made to happen', () => {
    // Users 11, 12, 13 and 14.
    test('a reader paused with old rows loses to a writer on the other instance (the key held a tombstone)', async () => {
      const key = profileKey(a, 11);
      expect((await readProfile(a, 11)).value.version).toBe(1);
      // A change outside the API, announced by the relay: the key now holds a tombstone at version 2.
      await rows(b, sql`update profiles set bio = 'changed by SQL' where user_id = 11`);
      await drainOutbox(b);
      expect(headerOf(await redis.getBuffer(key))).toEqual({ kind: 'tombstone', version: 2 });

      const pause = pauseA('profiles', 11);
      const reader = readProfile(a, 11);
      await pause.reached; // A has read version 2 from PostgreSQL and holds it, unfilled.

      const written = await updated(b, 11, { bio: 'written on B' });
      expect(written.version).toBe(3);
      const afterWrite = await redis.getBuffer(key);
      expect(headerOf(afterWrite)).toEqual({ kind: 'value', version: 3 });

      pause.release();
      const late = await reader;
      // It started before the write, so the older answer is allowed; its fill is not.
      expect(late.value).toMatchObject({ version: 2, bio: 'changed by SQL' });
      expect(late.outcomes).toEqual(['miss']);
      expect(late.cacheStatus).not.toMatch(/stored/);
      expect(await redis.getBuffer(key)).toEqual(afterWrite);

      for (const t of [a, b]) {
        const after = await readProfile(t, 11);
        expect(after.value).toMatchObject({ version: 3, bio: 'written on B' });
        expect(after.xCache).toBe('HIT');
        expect(after.sql).toBe(0);
      }
    });

    test('the same when the key held nothing at all', async () => {
      const key = profileKey(a, 12);
      await a.gql(`{ user(id: "12") { name } }`); // the user only: the profile key stays empty
      expect(await redis.getBuffer(key)).toBeNull();

      const pause = pauseA('profiles', 12);
      const reader = readProfile(a, 12);
      await pause.reached;

      const written = await updated(b, 12, { bio: 'written on B' });
      expect(written.version).toBe(2);
      const afterWrite = await redis.getBuffer(key);
      expect(headerOf(afterWrite)).toEqual({ kind: 'value', version: 2 });

      pause.release();
      const late = await reader;
      expect(late.value.version).toBe(1);
      expect(late.cacheStatus).not.toMatch(/stored/);
      expect(await redis.getBuffer(key)).toEqual(afterWrite);

      for (const t of [a, b]) {
        const after = await readProfile(t, 12);
        expect(after.value).toMatchObject({ version: 2, bio: 'written on B' });
        expect(after.xCache).toBe('HIT');
        expect(after.sql).toBe(0);
      }
    });

    test('a read that starts after createPost returned does not get a list loaded before it (same instance)', async () => {
      // Reader 1 on A loads author 13's list and is paused holding it; the writer on B commits a post
      // and tombstones the list; reader 2 on A starts after the write returned, misses the tombstone —
      // and must not be handed reader 1's list, which was read before the post existed.
      await a.gql(`{ user(id: "13") { name } }`);
      const key = postListKey(a, 13);
      const pause = pauseA('postIdsByAuthor', 13);
      const first = readNewestPost(a, 13);
      await pause.reached;

      const post = await createdPost(b, 13, 'Posted on B');
      expect(headerOf(await redis.getBuffer(key))).toMatchObject({ kind: 'tombstone' });

      const looked = aStore.nextRead(key);
      const second = readNewestPost(a, 13);
      await looked; // reader 2 has seen the tombstone…
      await nextMacrotask(); // …and acted on it (everything it does next without I/O is done)
      pause.release();

      expect((await first).value?.id).not.toBe(post.id); // started before the write: allowed
      expect((await second).value).toEqual({ id: post.id, title: 'Posted on B' });
      expect((await readNewestPost(a, 13)).value?.id).toBe(post.id);
      expect((await readNewestPost(b, 13)).value?.id).toBe(post.id);
    });

    test('a read that starts after updateProfile returned (and the relay announced it) does not get the older row (same instance)', async () => {
      // The same race for a profile: reader 1 on A holds version 1; the write on B returns version 2
      // and the relay publishes its event; reader 2 on A starts now. It must see version 2, whether
      // from the cache (the event must not have made the written-through value unservable) or from
      // its own load — never from reader 1's flight.
      await a.gql(`{ user(id: "14") { name } }`);
      const pause = pauseA('profiles', 14);
      const first = readProfile(a, 14);
      await pause.reached; // reader 1 holds version 1

      const written = await updated(b, 14, { bio: 'written on B' });
      expect(written.version).toBe(2);
      // The relay announces the write, as it does within OUTBOX_POLL_INTERVAL_MS in production.
      expect(await drainOutbox(b)).toBeGreaterThanOrEqual(1);

      const key = profileKey(a, 14);
      const looked = aStore.nextRead(key);
      const second = readProfile(a, 14);
      await looked;
      await nextMacrotask();
      pause.release();

      expect((await first).value.version).toBe(1);
      const late = await second;
      expect(late.value).toMatchObject({ version: 2, bio: 'written on B' });
    });
  });

  describe('4. a rollback leaves no trace', () => {
    // Users 31 and 32.
    let events: Awaited<ReturnType<typeof listen>>;

    beforeAll(async () => {
      // Fails the transaction at COMMIT, after the UPDATE (and its outbox row) went through: the
      // latest moment a failure can happen, and the one that catches a cache write made too early.
      await rows(
        b,
        sql.raw(`
          create function test_reject_at_commit() returns trigger language plpgsql as $$
          begin
            if new.bio = 'rejected at commit' then raise exception 'rejected at commit by the test'; end if;
            return null;
          end $$`),
      );
      await rows(
        b,
        sql.raw(`
          create constraint trigger test_reject_at_commit after update on profiles
            deferrable initially deferred for each row execute function test_reject_at_commit()`),
      );
      events = await listen(eventsChannel(b));
    });

    afterAll(async () => {
      await events?.close();
    });

    /** Warms the profile on both instances and empties the backlog, so nothing else moves. */
    async function quiet(userId: number) {
      await readProfile(a, userId);
      await readProfile(b, userId);
      await drainOutbox(b);
      await events.flush();
      expect(await unpublishedCount(b)).toBe(0);
    }

    async function expectNoTrace(run: () => Promise<void>, userId: number) {
      const rowBefore = await profileRow(b, userId);
      const redisBefore = await dumpRedis(b);
      const outboxBefore = await lastOutboxId(b);
      expect(Object.keys(redisBefore)).toContain(profileKey(b, userId));

      await run();

      expect(await profileRow(b, userId)).toEqual(rowBefore);
      expect(await lastOutboxId(b)).toBe(outboxBefore);
      expect(await unpublishedCount(b)).toBe(0);
      expect(await dumpRedis(b)).toEqual(redisBefore);
      expect(await b.app.relay.runOnce()).toBe(0);
      expect(await a.app.relay.runOnce()).toBe(0);
      expect(await events.flush()).toEqual([]);
      expect(await dumpRedis(b)).toEqual(redisBefore);
    }

    test('a transaction that fails at commit: Redis byte-identical, no outbox row, no event', async () => {
      await quiet(31);
      await expectNoTrace(async () => {
        const response = await updateProfile(a, 31, { bio: 'rejected at commit' });
        expect(response.body.data ?? null).toBeNull();
        expect(response.body.errors).toHaveLength(1);
      }, 31);
      // Both instances still serve the committed row.
      for (const t of [a, b]) expect((await readProfile(t, 31)).value).toMatchObject({ version: 1 });

      // The control: the same path with a committed change does leave an outbox row and an event.
      const written = await updated(a, 31, { bio: 'accepted' });
      expect(await drainOutbox(b)).toBe(1);
      expect(eventsIn(await events.flush())).toEqual([
        { entity: 'profile', id: 31, version: written.version },
      ]);
    });

    test('an expectedVersion CONFLICT: Redis byte-identical, no outbox row, no event', async () => {
      await quiet(32);
      await expectNoTrace(async () => {
        const response = await updateProfile(b, 32, { bio: 'too late', expectedVersion: 7 });
        expect(response.body.errors?.map((e) => e.extensions?.code)).toEqual(['CONFLICT']);
      }, 32);
    });
  });

  describe('5. the outbox relay', () => {
    // Users 21 to 27.
    test('a committed change without write-through (plain SQL) is published by B.relay.runOnce()', async () => {
      const events = await listen(eventsChannel(b));
      try {
        await drainOutbox(b);
        await events.flush();
        for (const t of [a, b]) await readProfile(t, 21);
        expect((await readProfile(b, 21)).value.version).toBe(1);

        await rows(b, sql`update profiles set bio = 'fixed by an admin' where user_id = 21`);
        expect(await outboxRows(b, 'profile', 21)).toEqual([
          { id: expect.any(Number), version: 2, published: false },
        ]);
        // Until the relay runs, the cache legitimately still serves the old row.
        expect((await readProfile(b, 21)).value).toMatchObject({ version: 1 });

        expect(await b.app.relay.runOnce()).toBe(1);
        expect(await outboxRows(b, 'profile', 21)).toEqual([
          { id: expect.any(Number), version: 2, published: true },
        ]);
        expect(headerOf(await redis.getBuffer(profileKey(b, 21)))).toEqual({ kind: 'tombstone', version: 2 });
        expect(eventsIn(await events.flush())).toEqual([{ entity: 'profile', id: 21, version: 2 }]);

        const onA = await readProfile(a, 21);
        expect(onA.value).toMatchObject({ version: 2, bio: 'fixed by an admin' });
        expect(onA.outcomes).toEqual(['miss']);
        const again = await readProfile(b, 21);
        expect(again.value.version).toBe(2);
        expect(again.xCache).toBe('HIT');
      } finally {
        await events.close();
      }
    });

    test('a mutation whose write-through failed (Redis error after commit) still succeeds; one relay run heals the cache', async () => {
      // User 27, written through a third instance whose store refuses the write-through.
      const chaos = createChaosStore(createStoreFromConfig(b.config, createLogger('silent')));
      const d = await createTestApp({ label: 'consistency', share: b, store: chaos, startRelay: false });
      try {
        await drainOutbox(b);
        for (const t of [a, b, d]) expect((await readProfile(t, 27)).value.version).toBe(1);
        const key = profileKey(b, 27);
        const before = await rawEntry(key);

        chaos.chaos.failNext(1, undefined, { methods: ['setMany'] });
        const written = await updated(d, 27, { bio: 'committed while Redis failed' });
        expect(written.version).toBe(2);
        expect(chaos.chaos.injected).toBe(1);
        expect(await rawEntry(key)).toBe(before); // the write-through really did not happen
        expect(await outboxRows(b, 'profile', 27)).toEqual([
          { id: expect.any(Number), version: 2, published: false },
        ]);

        expect(await b.app.relay.runOnce()).toBe(1);
        for (const t of [a, b, d]) {
          expect((await readProfile(t, 27)).value).toMatchObject({
            version: 2,
            bio: 'committed while Redis failed',
          });
        }
      } finally {
        await d.close();
        await chaos.close();
      }
    });

    test('a post inserted by plain SQL reaches the author list on both instances after one relay run', async () => {
      await drainOutbox(b);
      const before = await readNewestPost(a, 22);
      await readNewestPost(b, 22);
      const [inserted] = await rows<{ id: number }>(
        b,
        sql`insert into posts (author_id, title, body) values (22, 'Backfilled', 'by SQL') returning id`,
      );
      const postId = Number(inserted!.id);
      const announced = await outboxRows(b, 'userPosts', 22);
      expect(announced).toEqual([{ id: expect.any(Number), version: expect.any(Number), published: false }]);
      expect((await readNewestPost(b, 22)).value).toEqual(before.value); // not yet

      expect(await b.app.relay.runOnce()).toBe(2); // the post and its author's list
      expect(await outboxRows(b, 'userPosts', 22)).toEqual([{ ...announced[0], published: true }]);
      for (const t of [a, b])
        expect((await readNewestPost(t, 22)).value).toEqual({ id: String(postId), title: 'Backfilled' });
    });

    test("a post re-dated by plain SQL (moved to the top of its author's list) reaches the list after one relay run", async () => {
      // User 25: posts 73 < 74 < 75, newest first. An admin pins the oldest one by giving it a new date.
      await drainOutbox(b);
      const [oldest] = await rows<{ id: number }>(
        b,
        sql`select min(id) as id from posts where author_id = 25`,
      );
      const pinned = String(oldest!.id);
      for (const t of [a, b]) expect((await readNewestPost(t, 25)).value?.id).not.toBe(pinned);

      await rows(b, sql`update posts set created_at = now() where id = ${Number(pinned)}`);
      // The trigger announces the post and its author's list.
      const announced = await outboxRows(b, 'userPosts', 25);
      expect(announced.length).toBeGreaterThan(0);
      expect(announced.every((r) => !r.published)).toBe(true);
      expect(await drainOutbox(b)).toBe(1 + announced.length);
      expect((await outboxRows(b, 'userPosts', 25)).every((r) => r.published)).toBe(true);

      for (const t of [a, b]) expect((await readNewestPost(t, 25)).value?.id).toBe(pinned);
    });

    test("a post deleted by plain SQL leaves its author's list after one relay run", async () => {
      // User 26: three posts. The middle one is deleted; posts(first: 2) must then be the other two.
      await drainOutbox(b);
      const ids = (
        await rows<{ id: number }>(b, sql`select id from posts where author_id = 26 order by id desc`)
      ).map((r) => String(r.id));
      expect(ids).toHaveLength(3);
      const FIRST_TWO = `query($id: ID!) { user(id: $id) { posts(first: 2) { id } } }`;
      const firstTwo = async (t: TestApp) =>
        (
          await t.gql<{ user: { posts: { id: string }[] } }>(FIRST_TWO, { variables: { id: '26' } })
        ).body.data?.user.posts.map((p) => p.id);
      for (const t of [a, b]) expect(await firstTwo(t)).toEqual([ids[0], ids[1]]);

      await rows(b, sql`delete from posts where id = ${Number(ids[1])}`);
      expect(await b.app.relay.runOnce()).toBe(2);

      for (const t of [a, b]) expect(await firstTwo(t)).toEqual([ids[0], ids[2]]);
    });

    test('reordered events (older versions, published late) change nothing', async () => {
      await updated(a, 23, { bio: 'second' });
      const latest = await updated(a, 23, { bio: 'third' });
      expect(latest.version).toBe(3);
      await drainOutbox(b);
      await readProfile(b, 23); // whatever the relay left, the key now holds version 3
      const key = profileKey(b, 23);
      const before = await redis.getBuffer(key);
      expect(headerOf(before)).toEqual({ kind: 'value', version: 3 });

      // A relay that was slow delivers the events of versions 2 and 1 now.
      await rows(
        b,
        sql`insert into outbox (entity, entity_id, version) values ('profile', 23, 2), ('profile', 23, 1)`,
      );
      expect(await b.app.relay.runOnce()).toBe(2);
      expect((await outboxRows(b, 'profile', 23)).every((r) => r.published)).toBe(true);

      expect(await redis.getBuffer(key)).toEqual(before);
      for (const t of [a, b]) {
        const after = await readProfile(t, 23);
        expect(after.value).toMatchObject({ version: 3, bio: 'third' });
        expect(after.xCache).toBe('HIT');
        expect(after.sql).toBe(0);
      }
    });

    test('a duplicated event (the relay announcing a write that was already written through) changes nothing', async () => {
      await drainOutbox(b);
      for (const t of [a, b]) await readProfile(t, 24);
      const written = await updated(a, 24, { bio: 'written through' });
      const key = profileKey(b, 24);
      const before = await rawEntry(key);
      expect(headerOf(await redis.getBuffer(key))).toEqual({ kind: 'value', version: written.version });

      // The write's own outbox row, and the same event once more, as an at-least-once relay may send it.
      await rows(
        b,
        sql`insert into outbox (entity, entity_id, version) values ('profile', 24, ${written.version})`,
      );
      expect(await b.app.relay.runOnce()).toBe(2);

      const onB = await readProfile(b, 24);
      expect.soft(onB.value).toMatchObject({ version: written.version, bio: 'written through' });
      expect.soft({ xCache: onB.xCache, sql: onB.sql }).toEqual({ xCache: 'HIT', sql: 0 });
      expect.soft(await rawEntry(key)).toEqual(before);
    });
  });
});

// ─── The live pair: relays polling ───────────────────────────────────────────────────────────────

describe('two instances, relays polling every 20 ms, TTL 2 s', () => {
  let a: TestApp;
  let b: TestApp;
  /** A third instance that serves no traffic until the end of the stress test: an observer. */
  let c: TestApp;
  // Short logical TTLs, so that the stress test's keys also expire and refill while writes land.
  const env = { OUTBOX_POLL_INTERVAL_MS: '20', CACHE_TTL_SECONDS: '2' };
  /** SQL loads of profiles by A and B, for the stress test's report. */
  let profileLoads = 0;
  /**
   * During the stress test, how long a profile load holds its rows before it fills, ms. Widens the
   * window in which a reader holds rows that a write has just made old (the stale-set race).
   */
  let holdRowsMs: (() => number) | undefined;
  const repositoryOptions = {
    beforeQuery: (query: RepositoryQuery) => {
      if (query === 'profiles') profileLoads += 1;
    },
    afterQuery: async (query: RepositoryQuery) => {
      if (query === 'profiles' && holdRowsMs !== undefined) await sleep(holdRowsMs());
    },
  };

  beforeAll(async () => {
    a = await createTestApp({
      label: 'consistency_live',
      seed: { users: 20, postsPerUser: 3 },
      env,
      repositoryOptions,
    });
    b = await createTestApp({ label: 'consistency_live', share: a, env, repositoryOptions });
    c = await createTestApp({ label: 'consistency_live', share: a, env, startRelay: false });
  });

  afterAll(async () => {
    await c?.close();
    await b?.close();
    await a?.close();
  });

  test('3. an UPDATE by plain SQL is invalidated by the relay and served within a bounded time', async () => {
    // User 15.
    const before = (await readProfile(a, 15)).value;
    expect((await readProfile(b, 15)).xCache).toBe('HIT');

    await rows(a, sql`update profiles set bio = 'x' where user_id = 15`);

    // Liveness only: 5 s is 250 polls of the relay.
    const deadline = Date.now() + 5000;
    const served = new Map<string, ProfileOut>();
    while (served.size < 2 && Date.now() < deadline) {
      for (const [name, t] of [
        ['A', a],
        ['B', b],
      ] as const) {
        const { value } = await readProfile(t, 15);
        if (value.bio === 'x') served.set(name, value);
      }
    }
    expect([...served.keys()].sort()).toEqual(['A', 'B']);
    for (const value of served.values()) {
      expect(value.version).toBeGreaterThan(before.version);
      expect(value.version).toBe((await profileRow(a, 15)).version);
    }
  });

  test(
    '6. randomized stress: 8 readers, 4 API writers and 1 SQL writer over 10 hot profiles, 5000 operations',
    { timeout: 60_000 },
    async () => {
      // Readers check read-your-writes on every read. API writers go through updateProfile on either
      // instance. The SQL writer changes rows behind the API's back, so that the relays keep
      // tombstoning hot keys and fills race with write-throughs (with the 2 s TTL, so do expiries);
      // every profile load holds its rows 0–29 ms before filling, so those races are frequent.
      const HOT = 10; // users 1..10
      const READERS = 8;
      const WRITERS = 4;
      const OPERATIONS = 5000;
      // A seeded PRNG, so that a failing run's choices can be replayed with STRESS_SEED.
      const seed = Number(process.env.STRESS_SEED ?? Date.now() % 1_000_000);
      const random = mulberry32(seed);
      const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
      const ids = Array.from({ length: HOT }, (_, i) => i + 1);
      const instances = [
        { name: 'A', t: a },
        { name: 'B', t: b },
      ] as const;
      const tokens = new Map(await Promise.all(ids.map(async (id) => [id, await a.token(id)] as const)));

      /** Per profile, the highest version whose updateProfile has returned. */
      const returned = new Map(ids.map((id) => [id, 0]));
      const writesTo = new Map(ids.map((id) => [id, 0]));
      const versionsSeen = new Map(ids.map((id) => [id, new Set<number>()]));
      const sqlWritesTo = new Map(ids.map((id) => [id, 0]));
      const counts = {
        reads: 0,
        writes: 0,
        sqlWrites: 0,
        errors: 0,
        violations: 0,
        hit: 0,
        miss: 0,
        partial: 0,
        bypass: 0,
      };
      const violations: {
        id: number;
        instance: string;
        mustSee: number;
        got: number;
        xCache: string | null;
      }[] = [];
      let started = 0;

      const reader = async () => {
        while (started < OPERATIONS) {
          started += 1;
          const id = pick(ids);
          const { name, t } = pick(instances);
          const mustSee = returned.get(id)!; // snapshot as the read starts
          const response = await t.gql<{ user: { profile: ProfileOut } }>(PROFILE, {
            variables: { id: String(id) },
          });
          counts.reads += 1;
          const xCache = response.headers.get('x-cache');
          const bucket = (xCache ?? 'bypass').toLowerCase() as 'hit' | 'miss' | 'partial' | 'bypass';
          counts[bucket] += 1;
          const got = response.body.data?.user.profile.version;
          if (response.body.errors !== undefined || got === undefined) {
            counts.errors += 1;
            continue;
          }
          if (got < mustSee) {
            counts.violations += 1;
            violations.push({ id, instance: name, mustSee, got, xCache });
          }
        }
      };
      const writer = async (w: number) => {
        while (started < OPERATIONS) {
          started += 1;
          const id = pick(ids);
          const { t } = pick(instances);
          const response = await t.gql<{ updateProfile: ProfileOut }>(UPDATE, {
            variables: { input: { bio: `writer ${w}, op ${started}` } },
            token: tokens.get(id)!,
          });
          counts.writes += 1;
          const version = response.body.data?.updateProfile.version;
          if (response.body.errors !== undefined || version === undefined) {
            counts.errors += 1;
            continue;
          }
          writesTo.set(id, writesTo.get(id)! + 1);
          versionsSeen.get(id)!.add(version);
          returned.set(id, Math.max(returned.get(id)!, version));
        }
      };

      const sqlWriter = async () => {
        while (started < OPERATIONS) {
          started += 1;
          const id = pick(ids);
          await rows(a, sql`update profiles set bio = ${`admin, op ${started}`} where user_id = ${id}`);
          counts.sqlWrites += 1;
          sqlWritesTo.set(id, sqlWritesTo.get(id)! + 1);
        }
      };

      const startedAt = Date.now();
      profileLoads = 0;
      holdRowsMs = () => Math.floor(random() * 30);
      try {
        await Promise.all([
          ...Array.from({ length: READERS }, () => reader()),
          ...Array.from({ length: WRITERS }, (_, w) => writer(w)),
          sqlWriter(),
        ]);
      } finally {
        holdRowsMs = undefined;
      }
      const elapsedMs = Date.now() - startedAt;

      // Let the relays publish the last events (liveness bound only), then compare cache and rows.
      const deadline = Date.now() + 5000;
      while ((await unpublishedCount(a)) > 0 && Date.now() < deadline) await nextMacrotask();
      expect(await unpublishedCount(a)).toBe(0);

      const kinds: Record<string, number> = {};
      const mismatches: unknown[] = [];
      const entries = await c.app.store.getMany(ids.map((id) => profileKey(c, id)));
      for (const [i, id] of ids.entries()) {
        const row = await profileRow(a, id);
        // Every committed update added exactly 1, and every version the API returned was distinct.
        expect(row.version).toBe(1 + writesTo.get(id)! + sqlWritesTo.get(id)!);
        expect(versionsSeen.get(id)!.size).toBe(writesTo.get(id)!);
        const entry = entries[i];
        const kind = entry?.kind ?? 'absent';
        kinds[kind] = (kinds[kind] ?? 0) + 1;
        if (entry?.kind === 'value') {
          const cached = unpack(entry.payload) as { version: number; bio: string; displayName: string };
          if (entry.version !== row.version || cached.version !== row.version || cached.bio !== row.bio) {
            mismatches.push({ id, row, cached: { version: cached.version, bio: cached.bio } });
          }
        } else if (entry?.kind === 'tombstone' && entry.version > row.version) {
          mismatches.push({ id, row, tombstone: entry.version });
        }
      }
      // What the observer instance serves equals the row, and then comes from the cache.
      for (const id of ids) {
        const row = await profileRow(a, id);
        const first = await readProfile(c, id);
        expect(first.value).toMatchObject({ version: row.version, bio: row.bio });
        const second = await readProfile(c, id);
        expect(second.value).toMatchObject({ version: row.version, bio: row.bio });
        expect(second.xCache).toBe('HIT');
      }

      console.log(
        `[consistency stress] seed=${seed} elapsed=${elapsedMs}ms ` +
          `operations=${counts.reads + counts.writes + counts.sqlWrites} reads=${counts.reads} ` +
          `api writes=${counts.writes} sql writes=${counts.sqlWrites} errors=${counts.errors} ` +
          `x-cache: hit=${counts.hit} miss=${counts.miss} partial=${counts.partial} bypass=${counts.bypass} ` +
          `profile SQL loads=${profileLoads} ` +
          `read-your-writes violations=${counts.violations} final cache entries=${JSON.stringify(kinds)} ` +
          `cache/row mismatches=${mismatches.length}`,
      );
      if (violations.length > 0)
        console.log('[consistency stress] first violations:', violations.slice(0, 10));

      expect(counts.reads + counts.writes + counts.sqlWrites).toBeGreaterThanOrEqual(5000);
      expect(counts.errors).toBe(0);
      expect(mismatches).toEqual([]);
      expect(violations).toEqual([]);
    },
  );
});
