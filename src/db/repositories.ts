/**
 * SQL, and only SQL: each function is one statement (the transaction helpers excepted), takes
 * validated integer ids, and knows nothing of caching. The loaders decide what reaches here.
 */
import { and, asc, eq, gt, inArray, sql } from 'drizzle-orm';
import { timed } from '../observability/request-scope.js';
import { rowsOf, type Db } from './client.js';
import { classifyDatabaseError, DatabaseUnavailableError } from './errors.js';
import type { LoadLimiter } from './load-limiter.js';
import {
  postListVersions,
  posts,
  profiles,
  users,
  type PostRow,
  type ProfileRow,
  userDirectoryVersion,
  type UserRow,
} from './schema.js';

/** The longest post-id list kept per author: the largest `posts(first:)` the API accepts. */
export const MAX_POSTS_PER_AUTHOR = 50;

export interface ProfilePatch {
  displayName?: string;
  bio?: string;
  location?: string | null;
  avatarUrl?: string | null;
}

/** An author's newest post ids, newest first, and the version of that list. */
export interface PostList {
  version: number;
  ids: number[];
}

/** The user directory (which user ids exist): only its version, what a page of users depends on. */
export interface UserDirectory {
  version: number;
}

/** A page of users asked for: up to `first` ids after `after` (0: from the start). */
export interface UserPageKey {
  readonly first: number;
  readonly after: number;
}

/** A page of user ids, ascending, and whether more ids follow it. */
export interface UserPageIds {
  readonly ids: number[];
  readonly hasMore: boolean;
}

export interface NewPost {
  authorId: number;
  title: string;
  body: string;
}

/** Lets a test pause or slow a load on purpose, to make a race or a stampede happen. */
export type BeforeQueryHook = (query: RepositoryQuery, ids: readonly number[]) => Promise<void> | void;
export type RepositoryQuery =
  'users' | 'profiles' | 'posts' | 'postIdsByAuthor' | 'userPage' | 'userDirectory';

export interface RepositoryOptions {
  readonly beforeQuery?: BeforeQueryHook;
  /** Runs after a read returned its rows, before the caller gets them: pauses a reader holding old data. */
  readonly afterQuery?: BeforeQueryHook;
  /** Bounds concurrent reads (DB_MAX_CONCURRENT_LOADS); unbounded without one. */
  readonly limiter?: LoadLimiter;
  /** Observes every read: its duration in seconds and whether PostgreSQL answered (metrics). */
  readonly onQuery?: (
    query: RepositoryQuery,
    seconds: number,
    result: 'ok' | 'error' | 'unavailable',
    /** What failed, unless `result` is 'ok'. */
    error?: unknown,
  ) => void;
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
        const started = performance.now();
        try {
          rows = await run().catch((error: unknown) => {
            // A read that met a connection lost since its last use (PostgreSQL restarted) runs once
            // more on a fresh one, so recovery costs no failed request.
            const classified = classifyDatabaseError(error);
            if (classified instanceof DatabaseUnavailableError && classified.retryable) return run();
            throw error;
          });
        } catch (error) {
          const classified = classifyDatabaseError(error);
          const result = classified instanceof DatabaseUnavailableError ? 'unavailable' : 'error';
          options.onQuery?.(query, (performance.now() - started) / 1000, result, classified);
          throw classified;
        }
        options.onQuery?.(query, (performance.now() - started) / 1000, 'ok');
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

    /**
     * The newest `MAX_POSTS_PER_AUTHOR` post ids of each author, newest first, with the list's version
     * (post_list_versions), in one statement: one snapshot, so the version matches the ids.
     */
    newestPostIdsByAuthors(authorIds: readonly number[]): Promise<Map<number, PostList>> {
      return read('postIdsByAuthor', authorIds, async () => {
        // A lateral join walks posts_author_newest_idx once per author instead of sorting all posts.
        const result = await db.execute(sql`
          select a.author_id, coalesce(v.version, 0) as list_version, p.id
          from unnest(${`{${authorIds.join(',')}}`}::int[]) as a(author_id)
          left join ${postListVersions} v on v.author_id = a.author_id
          left join lateral (
            select ${posts.id} as id, ${posts.createdAt} as created_at from ${posts}
            where ${posts.authorId} = a.author_id
            order by ${posts.createdAt} desc, ${posts.id} desc
            limit ${MAX_POSTS_PER_AUTHOR}
          ) as p on true
          order by a.author_id, p.created_at desc, p.id desc`);
        const lists = new Map<number, PostList>(authorIds.map((id) => [id, { version: 0, ids: [] }]));
        for (const row of rowsOf<{ author_id: number; list_version: number | string; id: number | null }>(
          result,
        )) {
          const list = lists.get(Number(row.author_id));
          if (list === undefined) continue;
          list.version = Number(row.list_version);
          if (row.id !== null) list.ids.push(Number(row.id));
        }
        return lists;
      });
    },

    /** The current version of an author's post list, in the caller's transaction. */
    async postListVersion(tx: Db, authorId: number): Promise<number> {
      const [row] = await tx
        .select({ version: postListVersions.version })
        .from(postListVersions)
        .where(eq(postListVersions.authorId, authorId));
      return Number(row?.version ?? 0);
    },

    /**
     * The user directory's version (user_directory_version; 0 before any user was inserted or
     * deleted under the triggers) for each of `ids` that is the directory's id: there is one.
     */
    userDirectories(ids: readonly number[], directoryId: number): Promise<Map<number, UserDirectory>> {
      return read('userDirectory', ids, async () => {
        const found = new Map<number, UserDirectory>();
        if (!ids.includes(directoryId)) return found;
        const [row] = await db
          .select({ version: userDirectoryVersion.version })
          .from(userDirectoryVersion)
          .where(eq(userDirectoryVersion.id, directoryId));
        found.set(directoryId, { version: Number(row?.version ?? 0) });
        return found;
      });
    },

    /** The page of user ids `key` names: one indexed range scan, one id past it for `hasMore`. */
    userPage({ first, after }: UserPageKey): Promise<UserPageIds> {
      return read('userPage', [], async () => {
        const rows = await db
          .select({ id: users.id })
          .from(users)
          .where(gt(users.id, after))
          .orderBy(asc(users.id))
          .limit(first + 1);
        return { ids: rows.slice(0, first).map((r) => r.id), hasMore: rows.length > first };
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
