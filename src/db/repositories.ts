/**
 * SQL, and only SQL: each function is one statement (the transaction helpers excepted), takes
 * validated integer ids, and knows nothing of caching. The loaders decide what reaches here.
 */
import { and, asc, eq, gt, inArray, sql } from 'drizzle-orm';
import { timed } from '../observability/request-scope.js';
import { rowsOf, type Db } from './client.js';
import { classifyDatabaseError } from './errors.js';
import type { LoadLimiter } from './load-limiter.js';
import { posts, profiles, users, type PostRow, type ProfileRow, type UserRow } from './schema.js';

/** The longest post-id list kept per author: the largest `posts(first:)` the API accepts. */
export const MAX_POSTS_PER_AUTHOR = 50;

export interface ProfilePatch {
  displayName?: string;
  bio?: string;
  location?: string | null;
  avatarUrl?: string | null;
}

export interface NewPost {
  authorId: number;
  title: string;
  body: string;
}

/** Lets a test pause or slow a load on purpose, to make a race or a stampede happen. */
export type BeforeQueryHook = (query: RepositoryQuery, ids: readonly number[]) => Promise<void> | void;
export type RepositoryQuery = 'users' | 'profiles' | 'posts' | 'postIdsByAuthor' | 'userPage';

export interface RepositoryOptions {
  readonly beforeQuery?: BeforeQueryHook;
  /** Runs after a read returned its rows, before the caller gets them: pauses a reader holding old data. */
  readonly afterQuery?: BeforeQueryHook;
  /** Bounds concurrent reads (DB_MAX_CONCURRENT_LOADS); unbounded without one. */
  readonly limiter?: LoadLimiter;
}

export type Repositories = ReturnType<typeof createRepositories>;

export function createRepositories(db: Db, options: RepositoryOptions = {}) {
  // Every read is bounded by the limiter, timed for Server-Timing, may be held by a test hook, and
  // turns connection failures into DatabaseUnavailableError so callers can tell an outage from a bug.
  const limit = <T>(task: () => Promise<T>) => (options.limiter ? options.limiter.run(task) : task());
  const read = <T>(query: RepositoryQuery, ids: readonly number[], run: () => Promise<T>): Promise<T> =>
    timed('dbMs', () =>
      limit(async () => {
        if (options.beforeQuery) await options.beforeQuery(query, ids);
        let rows: T;
        try {
          rows = await run();
        } catch (error) {
          throw classifyDatabaseError(error);
        }
        if (options.afterQuery) await options.afterQuery(query, ids);
        return rows;
      }),
    );

  return {
    usersByIds(ids: readonly number[]): Promise<UserRow[]> {
      return read('users', ids, () =>
        db
          .select()
          .from(users)
          .where(inArray(users.id, [...ids])),
      );
    },

    profilesByUserIds(ids: readonly number[]): Promise<ProfileRow[]> {
      return read('profiles', ids, () =>
        db
          .select()
          .from(profiles)
          .where(inArray(profiles.userId, [...ids])),
      );
    },

    postsByIds(ids: readonly number[]): Promise<PostRow[]> {
      return read('posts', ids, () =>
        db
          .select()
          .from(posts)
          .where(inArray(posts.id, [...ids])),
      );
    },

    /** The newest `MAX_POSTS_PER_AUTHOR` post ids of each author, newest first, in one statement. */
    newestPostIdsByAuthors(authorIds: readonly number[]): Promise<Map<number, number[]>> {
      return read('postIdsByAuthor', authorIds, async () => {
        // A lateral join walks posts_author_newest_idx once per author instead of sorting all posts.
        const rows = await db.execute<{ author_id: number; id: number }>(sql`
        select a.author_id, p.id
        from unnest(${`{${authorIds.join(',')}}`}::int[]) as a(author_id)
        cross join lateral (
          select id from ${posts}
          where ${posts.authorId} = a.author_id
          order by ${posts.createdAt} desc, ${posts.id} desc
          limit ${MAX_POSTS_PER_AUTHOR}
        ) as p`);
        const byAuthor = new Map<number, number[]>(authorIds.map((id) => [id, []]));
        for (const row of rowsOf<{ author_id: number; id: number }>(rows))
          byAuthor.get(Number(row.author_id))?.push(Number(row.id));
        return byAuthor;
      });
    },

    /** Up to `limit` user ids greater than `after`, ascending. */
    userIdsAfter(after: number, limit: number): Promise<number[]> {
      return read('userPage', [], async () => {
        const rows = await db
          .select({ id: users.id })
          .from(users)
          .where(gt(users.id, after))
          .orderBy(asc(users.id))
          .limit(limit);
        return rows.map((r) => r.id);
      });
    },

    /**
     * Applies a patch to a profile and raises its version, in the caller's transaction. Returns the
     * new row, `'conflict'` when `expectedVersion` is stale, or `undefined` when there is no profile.
     */
    async updateProfile(
      tx: Db,
      userId: number,
      patch: ProfilePatch,
      expectedVersion: number | undefined,
    ): Promise<ProfileRow | 'conflict' | undefined> {
      const where =
        expectedVersion === undefined
          ? eq(profiles.userId, userId)
          : and(eq(profiles.userId, userId), eq(profiles.version, expectedVersion));
      const [row] = await tx
        .update(profiles)
        .set({ ...patch, version: sql`${profiles.version} + 1`, updatedAt: sql`now()` })
        .where(where)
        .returning();
      if (row !== undefined) return row;
      if (expectedVersion === undefined) return undefined;
      const [exists] = await tx
        .select({ v: profiles.version })
        .from(profiles)
        .where(eq(profiles.userId, userId));
      return exists === undefined ? undefined : 'conflict';
    },

    async insertPost(tx: Db, post: NewPost): Promise<PostRow> {
      const [row] = await tx.insert(posts).values(post).returning();
      if (row === undefined) throw new Error('insert into posts returned no row');
      return row;
    },

    userExists(id: number): Promise<boolean> {
      return read('users', [id], async () => {
        const rows = await db.select({ id: users.id }).from(users).where(eq(users.id, id));
        return rows.length > 0;
      });
    },
  };
}

