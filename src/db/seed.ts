/**
 * Deterministic demo data: users 1..N, each with a profile and K posts (post ids (i-1)*K + 1 .. i*K).
 *
 * Every value of user i and of its j-th post comes from a PRNG seeded with (i) or (i, j) alone, so the
 * rows do not depend on N, on the batch size or on the engine: seeding 1000 users gives the first
 * 1000 users of a 100 000-user seed, byte for byte, on PostgreSQL and on PGlite alike. Timestamps are
 * fixed offsets from a fixed date, and a user's posts are strictly increasing in time with their id,
 * so "newest first" orders the same way by (created_at desc) and by (id desc).
 *
 * Everything runs in one transaction on the one connection it is given (PGlite has only one), with
 * `session_replication_role = replica`: that turns off the outbox triggers (a seed must not leave
 * millions of invalidation events behind) and the foreign-key triggers (the rows are consistent by
 * construction). In their place one outbox row says "everything changed": a cache may still hold
 * the rows a reset replaced, or negative entries for ids the seed creates. It needs a superuser,
 * which both PGlite and our PostgreSQL deployments run as. `SET LOCAL` ends with the transaction, so
 * triggers are back on for whatever runs next.
 */
import { sql } from 'drizzle-orm';
import type { Db } from './client.js';
import { MAX_ID } from '../domain/ids.js';
import { announceEverythingChanged } from './outbox-repository.js';
import { mulberry32 } from './prng.js';
import {
  BIO_ROLES,
  BIO_TAILS,
  BIO_TOPICS,
  CITIES,
  ENDINGS,
  FIRST_NAMES,
  LAST_NAMES,
  OPENINGS,
  TITLE_LEADS,
  TOPICS,
} from './seed-words.js';
import { posts, profiles, users } from './schema.js';

export interface SeedOptions {
  /** Number of users (and profiles) to create, ids 1..users. */
  readonly users: number;
  /** Posts per user. @default 3 */
  readonly postsPerUser?: number;
  /** Empty users, profiles and posts first (TRUNCATE) instead of refusing a non-empty database. @default false */
  readonly reset?: boolean;
  /** Rows per INSERT statement. Changes the statements, never the rows. @default 5000 */
  readonly batchSize?: number;
  /**
   * Write the outbox row that tells every instance that any cached row may have changed (the
   * triggers are off, so no row says so itself). Only a caller that knows no cache holds anything
   * of this database (a fresh one, under a fresh key prefix) passes false. @default true
   */
  readonly announce?: boolean;
  /** Called after every statement with rows inserted so far over all rows (users + profiles + posts). */
  readonly onProgress?: (done: number, total: number) => void;
}

export interface SeedResult {
  readonly users: number;
  readonly posts: number;
}

export type SeedErrorCode = 'SEED_OPTIONS_INVALID' | 'SEED_NOT_EMPTY';

export class SeedError extends Error {
  readonly code: SeedErrorCode;
  constructor(code: SeedErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SeedError';
    this.code = code;
  }
}

/** The default posts per user. */
export const DEFAULT_POSTS_PER_USER = 3;

const DEFAULT_BATCH_SIZE = 5000;
// PostgreSQL's wire protocol numbers bind parameters with 16 bits; the widest row here (profiles)
// takes 7 of them.
const MAX_PARAMETERS = 65_535;
const MAX_BATCH_SIZE = Math.floor(MAX_PARAMETERS / 7);
// Every timestamp is an offset from here; nothing reads the clock.
const BASE_TIME_MS = Date.UTC(2024, 0, 1);
const HOUR_MS = 3_600_000;

type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

export async function seedDatabase(db: Db, options: SeedOptions): Promise<SeedResult> {
  const { users: userCount, postsPerUser, batchSize } = validate(options);
  const postCount = userCount * postsPerUser;
  const total = userCount * 2 + postCount;
  let done = 0;
  const progress = (rows: number) => {
    done += rows;
    options.onProgress?.(done, total);
  };

  await db.transaction(async (tx) => {
    await disableTriggers(tx);
    if (options.reset === true) {
      await tx.execute(sql`truncate table ${posts}, ${profiles}, ${users} restart identity`);
    } else {
      // Held to commit, so two seeds started together cannot both find the table empty.
      await tx.execute(sql`lock table ${users} in share row exclusive mode`);
      const existing = await tx.select({ id: users.id }).from(users).limit(1);
      if (existing.length > 0) {
        throw new SeedError(
          'SEED_NOT_EMPTY',
          'the database already has users; seed an empty database or pass reset',
        );
      }
    }

    for (let first = 1; first <= userCount; first += batchSize) {
      const last = Math.min(userCount, first + batchSize - 1);
      await insertUsers(tx, first, last);
      progress(last - first + 1);
      await insertProfiles(tx, first, last);
      progress(last - first + 1);
      for (
        let firstPost = (first - 1) * postsPerUser + 1;
        firstPost <= last * postsPerUser;
        firstPost += batchSize
      ) {
        const lastPost = Math.min(last * postsPerUser, firstPost + batchSize - 1);
        await insertPosts(tx, postsPerUser, firstPost, lastPost);
        progress(lastPost - firstPost + 1);
      }
    }

    // Explicit ids do not move identity sequences: without this the next createPost would get id 1.
    await setSequence(tx, 'users', userCount);
    await setSequence(tx, 'posts', postCount);
    // PGlite has no autovacuum to notice a bulk load; without statistics the first queries plan as
    // if the tables were empty.
    await tx.execute(sql`analyze ${users}, ${profiles}, ${posts}`);
    // The triggers were off, so no row announced itself: one outbox row announces them all. A cache
    // may hold what the seed replaced (--reset) or negative entries for ids it created; the relay
    // invalidates the whole namespace when it sees this row (src/cache/write/outbox-relay.ts).
    if (options.announce !== false) await announceEverythingChanged(tx as unknown as Db);
  });
  return { users: userCount, posts: postCount };
}

// Private:

function validate(options: SeedOptions): { users: number; postsPerUser: number; batchSize: number } {
  const userCount = options.users;
  const postsPerUser = options.postsPerUser ?? DEFAULT_POSTS_PER_USER;
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  if (!Number.isSafeInteger(userCount) || userCount < 1 || userCount > MAX_ID) {
    throw new SeedError(
      'SEED_OPTIONS_INVALID',
      `users must be an integer in 1..${MAX_ID}, got ${String(userCount)}`,
    );
  }
  if (!Number.isSafeInteger(postsPerUser) || postsPerUser < 0) {
    throw new SeedError(
      'SEED_OPTIONS_INVALID',
      `postsPerUser must be a non-negative integer, got ${String(postsPerUser)}`,
    );
  }
  if (userCount * postsPerUser > MAX_ID) {
    throw new SeedError(
      'SEED_OPTIONS_INVALID',
      `users × postsPerUser must be at most ${MAX_ID} (post ids are integers), got ${userCount * postsPerUser}`,
    );
  }
  if (!Number.isSafeInteger(batchSize) || batchSize < 1 || batchSize > MAX_BATCH_SIZE) {
    throw new SeedError(
      'SEED_OPTIONS_INVALID',
      `batchSize must be an integer in 1..${MAX_BATCH_SIZE}, got ${String(batchSize)}`,
    );
  }
  return { users: userCount, postsPerUser, batchSize };
}

async function insertUsers(tx: Tx, first: number, last: number): Promise<void> {
  const rows = [];
  for (let id = first; id <= last; id += 1) {
    const p = person(id);
    rows.push({ id, name: p.name, email: p.email, version: 1, createdAt: new Date(p.createdAtMs) });
  }
  await tx.insert(users).values(rows);
}

async function insertProfiles(tx: Tx, first: number, last: number): Promise<void> {
  const rows = [];
  for (let userId = first; userId <= last; userId += 1) {
    const p = person(userId);
    const random = mulberry32(mix(userId, 0x51ed27));
    rows.push({
      userId,
      displayName: random() < 0.2 ? `${p.first} ${p.last[0]}.` : `${p.first} ${p.last}`,
      bio:
        random() < 0.1
          ? ''
          : `${pick(random, BIO_ROLES)} ${pick(random, BIO_TOPICS)}. ${pick(random, BIO_TAILS)}`,
      location: random() < 0.25 ? null : pick(random, CITIES),
      avatarUrl: random() < 0.3 ? null : `https://avatars.example.com/u/${userId}.png`,
      version: 1,
      updatedAt: new Date(p.createdAtMs + Math.floor(random() * 86_400_000)),
    });
  }
  await tx.insert(profiles).values(rows);
}

async function insertPosts(tx: Tx, postsPerUser: number, firstId: number, lastId: number): Promise<void> {
  const rows = [];
  for (let id = firstId; id <= lastId; id += 1) {
    const authorId = Math.floor((id - 1) / postsPerUser) + 1;
    const nth = id - (authorId - 1) * postsPerUser; // 1..postsPerUser
    const random = mulberry32(mix(authorId, nth));
    const sentences = 2 + Math.floor(random() * 4);
    const body: string[] = [];
    for (let s = 0; s < sentences; s += 1)
      body.push(`${pick(random, OPENINGS)} ${pick(random, TOPICS)} ${pick(random, ENDINGS)}`);
    rows.push({
      id,
      authorId,
      title: `${pick(random, TITLE_LEADS)} ${pick(random, TOPICS)}`,
      body: body.join(' '),
      version: 1,
      // The nth post lands in the nth hour after its author joined: posts of one author are strictly
      // ordered in time the same way as their ids.
      createdAt: new Date(
        person(authorId).createdAtMs + nth * HOUR_MS + Math.floor(random() * (HOUR_MS - 1)),
      ),
    });
  }
  await tx.insert(posts).values(rows);
}

async function disableTriggers(tx: Tx): Promise<void> {
  try {
    await tx.execute(sql`set local session_replication_role = replica`);
  } catch (error) {
    throw new Error(
      'seeding needs a superuser: it turns off the outbox triggers with session_replication_role = replica',
      { cause: error },
    );
  }
}

async function setSequence(tx: Tx, table: 'users' | 'posts', lastId: number): Promise<void> {
  // setval(seq, 1, false) is "next value is 1": the only way to say "nothing used" (0 is below MINVALUE).
  await tx.execute(
    sql`select setval(pg_get_serial_sequence(${table}, 'id'), ${Math.max(lastId, 1)}, ${lastId > 0})`,
  );
}

interface Person {
  readonly first: string;
  readonly last: string;
  readonly name: string;
  readonly email: string;
  readonly createdAtMs: number;
}

function person(id: number): Person {
  const random = mulberry32(mix(id, 0x7a3c11));
  const first = pick(random, FIRST_NAMES);
  const last = pick(random, LAST_NAMES);
  return {
    first,
    last,
    name: `${first} ${last}`,
    // The id makes it unique; the rest makes it readable.
    email: `${first}.${last}.${id}@example.com`.toLowerCase().replace(/[^a-z0-9.@]/g, ''),
    // About one sign-up a minute, with a random second and millisecond.
    createdAtMs: BASE_TIME_MS + id * 60_000 + Math.floor(random() * 60_000),
  };
}

/** Two integers to one well-spread 32-bit seed, so neighbouring ids get unrelated sequences. */
function mix(a: number, b: number): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(b + 0x632be5ab, 0xc2b2ae35);
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  return h >>> 0;
}

function pick<T>(random: () => number, list: readonly T[]): T {
  return list[Math.floor(random() * list.length)]!;
}
