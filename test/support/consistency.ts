/**
 * What the consistency tests of test/write-path (docs/consistency.md) use to watch a pair of
 * instances (test/support/instance-pair.ts) from outside: API calls that report what the cache did,
 * SQL on the database's own connection, and raw Redis.
 *
 * One file per guarantee, each building its own pair (so its own database and prefix):
 * read-your-writes (1), stale-set-race (2), plain-sql-writes (3, live relays), rollback (4),
 * relay-events (5), consistency-stress (6, live relays).
 */
import { randomUUID } from 'node:crypto';
import { sql, type SQL } from 'drizzle-orm';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect } from 'vitest';
import { REDIS_URL, type GraphQLResponse, type TestApp } from './app.js';
import { DEBUG, debugOf, statusesOf } from './debug.js';
import { scanKeys } from './redis.js';

// Operations

export const PROFILE = `query Profile($id: ID!) { user(id: $id) { id profile { userId displayName bio version } } }`;
const POSTS = `query Posts($id: ID!) { user(id: $id) { id posts(first: 1) { id title } } }`;
export const UPDATE = `mutation Update($input: UpdateProfileInput!) { updateProfile(input: $input) { userId bio version } }`;
const CREATE = `mutation Create($input: CreatePostInput!) { createPost(input: $input) { id title } }`;

export interface ProfileOut {
  userId: string;
  displayName: string;
  bio: string;
  version: number;
}
export interface PostOut {
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

export async function readProfile(t: TestApp, userId: number): Promise<Observed<ProfileOut>> {
  const response = await t.gql<{ user: { profile: ProfileOut } | null }>(PROFILE, {
    variables: { id: String(userId) },
    headers: DEBUG,
  });
  const profile = response.body.data?.user?.profile;
  if (profile === undefined) throw new Error(`no profile in ${JSON.stringify(response.body)}`);
  return observed(response, profile, `:profile:{${userId}}`);
}

export async function readNewestPost(t: TestApp, authorId: number): Promise<Observed<PostOut | undefined>> {
  const response = await t.gql<{ user: { posts: PostOut[] } | null }>(POSTS, {
    variables: { id: String(authorId) },
    headers: DEBUG,
  });
  const posts = response.body.data?.user?.posts;
  if (posts === undefined) throw new Error(`no posts in ${JSON.stringify(response.body)}`);
  return observed(response, posts[0], `:user:{${authorId}}:posts`);
}

export async function updateProfile(t: TestApp, userId: number, input: Record<string, unknown>) {
  return t.gql<{ updateProfile: ProfileOut }>(UPDATE, { variables: { input }, token: await t.token(userId) });
}

export async function updated(
  t: TestApp,
  userId: number,
  input: Record<string, unknown>,
): Promise<ProfileOut> {
  const response = await updateProfile(t, userId, input);
  expect(response.body.errors).toBeUndefined();
  return response.body.data!.updateProfile;
}

export async function createdPost(t: TestApp, authorId: number, title: string): Promise<PostOut> {
  const response = await t.gql<{ createPost: PostOut }>(CREATE, {
    variables: { input: { title, body: `${title}, the body` } },
    token: await t.token(authorId),
  });
  expect(response.body.errors).toBeUndefined();
  return response.body.data!.createPost;
}

// PostgreSQL, outside the API

/** Runs a statement on the test database's own connection (no app, no request, no cache). */
export async function rows<T>(t: TestApp, statement: SQL): Promise<T[]> {
  const result: unknown = await t.testDb.database.db.execute(statement);
  // postgres.js answers the rows array itself.
  return (Array.isArray(result) ? result : ((result as { rows?: T[] }).rows ?? [])) as T[];
}

export async function profileRow(t: TestApp, userId: number) {
  const [row] = await rows<{ version: number; bio: string; display_name: string }>(
    t,
    sql`select version, bio, display_name from profiles where user_id = ${userId}`,
  );
  if (row === undefined) throw new Error(`no profile row for user ${userId}`);
  return { version: Number(row.version), bio: row.bio, displayName: row.display_name };
}

export async function outboxRows(t: TestApp, entity: string, entityId: number) {
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

export async function lastOutboxId(t: TestApp): Promise<number> {
  const [row] = await rows<{ last: string | null }>(t, sql`select max(id) as last from outbox`);
  return Number(row?.last ?? 0);
}

export async function unpublishedCount(t: TestApp): Promise<number> {
  const [row] = await rows<{ n: number }>(
    t,
    sql`select count(*)::int as n from outbox where published_at is null`,
  );
  return Number(row?.n ?? 0);
}

/** Runs the relay until the backlog is empty; returns the number of events it published. */
export async function drainOutbox(t: TestApp): Promise<number> {
  let total = 0;
  for (;;) {
    const published = await t.app.relay.runOnce();
    if (published === 0) return total;
    total += published;
  }
}

// Redis, outside the app

/** Our own connections: one for commands, one that only subscribes. Open once `useRawRedis()` has run. */
export let redis: Redis;
let subscriber: Redis;

/**
 * Opens our own connections to REDIS_URL before the calling file's tests and closes them after: the
 * helpers below that read raw keys or listen on a channel need them.
 */
export function useRawRedis(): void {
  beforeAll(async () => {
    redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    subscriber = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  });

  afterAll(async () => {
    redis?.disconnect();
    subscriber?.disconnect();
  });
}

export const profileKey = (t: TestApp, userId: number) => `${t.prefix}:v1:profile:{${userId}}`;
export const postListKey = (t: TestApp, authorId: number) => `${t.prefix}:v1:user:{${authorId}}:posts`;
export const eventsChannel = (t: TestApp) => `${t.prefix}:v1:events`;

/** The kind and version of a raw entry (`<kind>:<version>:<staleAt>:<payload>`, see src/cache/store/redis/wire-format.ts). */
export function headerOf(raw: Buffer | null): { kind: string; version: number } | undefined {
  if (raw === null) return undefined;
  const match = /^([vnt]):(\d+):(\d+):/.exec(raw.subarray(0, 64).toString('latin1'));
  if (match === null) throw new Error(`not a cacheside entry: ${raw.subarray(0, 64).toString('latin1')}`);
  const kinds: Record<string, string> = { v: 'value', n: 'negative', t: 'tombstone' };
  return { kind: kinds[match[1]!]!, version: Number(match[2]) };
}

/** A raw entry as text, for readable diffs: its header as stored, then its payload in hex. */
export async function rawEntry(key: string): Promise<string | null> {
  const raw = await redis.getBuffer(key);
  if (raw === null) return null;
  const match = /^[vnt]:\d+:\d+:/.exec(raw.subarray(0, 64).toString('latin1'));
  const headerLength = match?.[0].length ?? 0;
  return `${raw.subarray(0, headerLength).toString('latin1')}${raw.subarray(headerLength).toString('hex')}`;
}

/** Every key under the prefix with its exact bytes (hex), TTLs left out: they tick. */
export async function dumpRedis(t: TestApp): Promise<Record<string, string>> {
  const dump: Record<string, string> = {};
  for (const { key } of await scanKeys(`${t.prefix}:`)) {
    const raw = await redis.getBuffer(key);
    if (raw !== null) dump[key] = raw.toString('hex');
  }
  return dump;
}

/** Messages received on a channel from now on; `flush()` proves the list is complete so far. */
export async function listen(channel: string) {
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
export function eventsIn(messages: readonly string[]) {
  return messages.flatMap(
    (m) => (JSON.parse(m) as { events: { entity: string; id: number; version: number }[] }).events,
  );
}
