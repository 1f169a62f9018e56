import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { asc, count, countDistinct, eq, max, min, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, type Database, type Db } from '../../src/db/client.js';
import { migrateDatabase } from '../../src/db/migrate.js';
import { createRepositories } from '../../src/db/repositories.js';
import { outbox, posts, profiles, users } from '../../src/db/schema.js';
import { EVERYTHING } from '../../src/db/outbox-repository.js';
import { SeedError, seedDatabase } from '../../src/db/seed.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

// Large enough to span several batches at the small batch size used for `second`.
const N = 1200;
const K = 3;

/** Every row of the three tables, in id order, serialised the same way on both engines. */
async function fingerprint(db: Db): Promise<{ digest: string; rows: number }> {
  const hash = createHash('sha256');
  let rows = 0;
  const add = (table: string, list: readonly Record<string, unknown>[]) => {
    for (const row of list) {
      hash.update(`${table} ${JSON.stringify(row)}\n`);
      rows += 1;
    }
  };
  add('users', await db.select().from(users).orderBy(asc(users.id)));
  add('profiles', await db.select().from(profiles).orderBy(asc(profiles.userId)));
  add('posts', await db.select().from(posts).orderBy(asc(posts.id)));
  return { digest: hash.digest('hex'), rows };
}

describe('seedDatabase on PostgreSQL', () => {
  let first: TestDatabase;
  let second: TestDatabase;
  let firstPrint: { digest: string; rows: number };
  const progress: [number, number][] = [];

  beforeAll(async () => {
    [first, second] = await Promise.all([createTestDatabase('seed_a'), createTestDatabase('seed_b')]);
    await seedDatabase(first.database.db, {
      users: N,
      postsPerUser: K,
      onProgress: (d, t) => progress.push([d, t]),
    });
    firstPrint = await fingerprint(first.database.db);
  });

  afterAll(async () => {
    await Promise.all([first?.drop(), second?.drop()]);
  });

  it('writes the same rows for the same users and posts per user, whatever the batch size', async () => {
    const result = await seedDatabase(second.database.db, { users: N, postsPerUser: K, batchSize: 97 });
    expect(result).toEqual({ users: N, posts: N * K });
    const secondPrint = await fingerprint(second.database.db);
    expect(secondPrint.rows).toBe(N * 2 + N * K);
    expect(secondPrint).toEqual(firstPrint);
  });

  it('creates users 1..N, each with a version-1 profile and K posts with ids (i-1)*K+1..i*K', async () => {
    const { db } = first.database;
    const [u] = await db.select({ n: count(), lo: min(users.id), hi: max(users.id) }).from(users);
    expect(u).toEqual({ n: N, lo: 1, hi: N });
    const [p] = await db
      .select({ n: count(), v: countDistinct(profiles.version), emails: countDistinct(users.email) })
      .from(users)
      .innerJoin(profiles, eq(profiles.userId, users.id));
    expect(p).toEqual({ n: N, v: 1, emails: N });
    const [q] = await db.select({ n: count(), lo: min(posts.id), hi: max(posts.id) }).from(posts);
    expect(q).toEqual({ n: N * K, lo: 1, hi: N * K });
    const misplaced = await db
      .select({ id: posts.id })
      .from(posts)
      .where(sql`${posts.authorId} <> (${posts.id} - 1) / ${K} + 1`);
    expect(misplaced).toEqual([]);
  });

  it('orders each author’s posts the same by created_at as by id, and leaves some optional fields null', async () => {
    const { db } = first.database;
    const disordered = await db.execute(sql`
      select 1 from ${posts} a join ${posts} b on a.author_id = b.author_id and a.id < b.id
      where a.created_at >= b.created_at limit 1`);
    expect(rowCount(disordered)).toBe(0);
    const [nulls] = await db
      .select({
        location: sql<number>`count(*) filter (where ${profiles.location} is null)`.mapWith(Number),
        avatar: sql<number>`count(*) filter (where ${profiles.avatarUrl} is null)`.mapWith(Number),
      })
      .from(profiles);
    expect(nulls!.location).toBeGreaterThan(0);
    expect(nulls!.location).toBeLessThan(N);
    expect(nulls!.avatar).toBeGreaterThan(0);
    expect(nulls!.avatar).toBeLessThan(N);
  });

  it('reports progress up to the total of users, profiles and posts', () => {
    const total = N * 2 + N * K;
    expect(progress.at(-1)).toEqual([total, total]);
    expect(progress.every(([done, t], i) => t === total && done > (progress[i - 1]?.[0] ?? 0))).toBe(true);
  });

  it('leaves one outbox row, for everything, and triggers and sequences working for later writes', async () => {
    const { db } = first.database;
    // Not a row per seeded row (the triggers were off), but one that stands for them all.
    expect(await db.select({ entity: outbox.entity, id: outbox.entityId }).from(outbox)).toEqual([
      { entity: EVERYTHING, id: 0 },
    ]);
    await db.delete(outbox);

    const repositories = createRepositories(db);
    const post = await repositories.insertPost(db, { authorId: 1, title: 'after the seed', body: 'hello' });
    expect(post.id).toBe(N * K + 1);
    const [user] = await db.insert(users).values({ name: 'New', email: 'new@example.com' }).returning();
    expect(user!.id).toBe(N + 1);
    const events = await db
      .select({ entity: outbox.entity, id: outbox.entityId })
      .from(outbox)
      .orderBy(asc(outbox.id));
    expect(events).toEqual([
      { entity: 'post', id: N * K + 1 },
      { entity: 'userPosts', id: 1 },
      { entity: 'user', id: N + 1 },
      // A user inserted changes which ids exist: the directory a page of users depends on.
      { entity: 'userDirectory', id: 1 },
    ]);
  });

  it('refuses a database that already has users, and changes nothing', async () => {
    const before = await fingerprint(second.database.db);
    const error = await seedDatabase(second.database.db, { users: 3 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SeedError);
    expect(error).toMatchObject({ code: 'SEED_NOT_EMPTY' });
    expect(await fingerprint(second.database.db)).toEqual(before);
  });

  it('with reset, replaces the data and restarts the ids', async () => {
    const { db } = second.database;
    expect(await seedDatabase(db, { users: 5, postsPerUser: 2, reset: true })).toEqual({
      users: 5,
      posts: 10,
    });
    expect((await db.select({ n: count() }).from(users))[0]!.n).toBe(5);
    const post = await createRepositories(db).insertPost(db, { authorId: 5, title: 't', body: 'b' });
    expect(post.id).toBe(11);
  });

  it('rejects bad options with the bad value', async () => {
    const { db } = first.database;
    for (const [options, text] of [
      [{ users: 0 }, 'got 0'],
      [{ users: 1.5 }, 'got 1.5'],
      [{ users: 10, postsPerUser: -1 }, 'got -1'],
      [{ users: 2_000_000_000, postsPerUser: 2 }, 'got 4000000000'],
      [{ users: 10, batchSize: 100_000 }, 'got 100000'],
    ] as const) {
      await expect(seedDatabase(db, options)).rejects.toThrow(text);
    }
  });

  it('writes byte-identical rows on PGlite', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'cs-seed-pglite-'));
    let pglite: Database | undefined;
    try {
      const config = { kind: 'pglite', dataDir } as const;
      pglite = await createDatabase(config);
      await migrateDatabase(config, pglite);
      await seedDatabase(pglite.db, { users: N, postsPerUser: K });
      expect(await fingerprint(pglite.db)).toEqual(firstPrint);
      // The same one announcement as on PostgreSQL, and nothing else.
      expect((await pglite.db.select({ n: count() }).from(outbox))[0]!.n).toBe(1);
      const post = await createRepositories(pglite.db).insertPost(pglite.db, {
        authorId: 2,
        title: 't',
        body: 'b',
      });
      expect(post.id).toBe(N * K + 1);
    } finally {
      await pglite?.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

/** postgres.js returns the rows array itself; PGlite returns `{ rows }`. */
function rowCount(result: unknown): number {
  return Array.isArray(result) ? result.length : ((result as { rows?: unknown[] }).rows ?? []).length;
}
