/**
 * The parts the benchmark swaps into the real app (src/app/create-app.ts `createApp`) to make its
 * variants:
 *
 *   naive                naiveResolvers: the same schema resolved the way it is written without
 *                        DataLoader: one SQL statement per parent object (the N+1), nothing cached
 *   static               staticResolvers: the same schema answered from in-memory maps: the
 *                        framework's floor
 *   always-miss          forgetfulStore: a store whose reads always miss, so every batch takes the
 *                        whole miss path
 *   stampede, locks off  lockFreeStore: every caller is granted every lock
 *
 * and countingStore, which counts store calls for the per-request counters. Nothing here changes
 * product code: each is a value handed to `createApp` through its overrides.
 */
import { asc, desc, eq, gt, inArray } from 'drizzle-orm';
import type { CacheStore } from '../src/cache/store/contract.js';
import { aroundCalls, forwardStore } from '../src/cache/store/layers/forward.js';
import { currentRequestStats } from '../src/observability/request-scope.js';
import type { Db } from '../src/db/client.js';
import type { LoadLimiter } from '../src/db/load-limiter.js';
import { posts, profiles, users, type PostRow, type ProfileRow, type UserRow } from '../src/db/schema.js';
import {
  MAX_PAGE_SIZE,
  MAX_POSTS_FIRST,
  parseIdArgument,
  parseIdsArgument,
  parseRange,
} from '../src/graphql/arguments.js';
import type { Resolvers } from '../src/graphql/generated/resolvers-types.js';
import { User as ProductUser } from '../src/graphql/resolvers/entities.js';
import { Mutation } from '../src/graphql/resolvers/mutation.js';
import { DateTime } from '../src/graphql/resolvers/scalars.js';

/** Where SQL statements of the naive resolvers are counted (the repositories' hook counts the rest). */
export interface SqlCounter {
  statement(): void;
}

/**
 * naive: resolvers that read PostgreSQL directly, one statement per field per parent — the code one
 * writes before hearing of DataLoader. A list root field is one statement (`WHERE id IN (…)`, as
 * anyone would write it); every nested field is one statement per parent object.
 */
export function naiveResolvers(db: Db, limiter: LoadLimiter, counter: SqlCounter): Resolvers {
  // Through the same concurrency bound as the app's repositories (DB_MAX_CONCURRENT_LOADS).
  const query = <T>(run: () => Promise<T>) =>
    limiter.run(() => {
      counter.statement();
      return run();
    });
  const userById = async (id: number) =>
    (await query(() => db.select().from(users).where(eq(users.id, id))))[0] ?? null;

  return {
    DateTime,
    Mutation,
    Query: {
      user: (_, { id }) => userById(parseIdArgument(id, 'id')),
      async users(_, { ids }) {
        const wanted = parseIdsArgument(ids, 'ids');
        const rows = await query(() => db.select().from(users).where(inArray(users.id, wanted)));
        const byId = new Map(rows.map((r) => [r.id, r]));
        return wanted.map((id) => byId.get(id) ?? null);
      },
      async userPage(_, { first, after }) {
        const size = parseRange(first, 'first', 1, MAX_PAGE_SIZE);
        const cursor = after === null || after === undefined ? 0 : parseIdArgument(after, 'after');
        const rows = await query(() =>
          db
            .select()
            .from(users)
            .where(gt(users.id, cursor))
            .orderBy(asc(users.id))
            .limit(size + 1),
        );
        const nodes = rows.slice(0, size);
        const last = nodes.at(-1);
        return { nodes, nextCursor: rows.length > size && last ? String(last.id) : null };
      },
      me: (_, __, { viewer }) => (viewer === null ? null : userById(viewer.userId)),
      post: async (_, { id }) =>
        (
          await query(() =>
            db
              .select()
              .from(posts)
              .where(eq(posts.id, parseIdArgument(id, 'id'))),
          )
        )[0] ?? null,
    },
    User: {
      email: ProductUser.email!,
      async profile(user) {
        const [row] = await query(() => db.select().from(profiles).where(eq(profiles.userId, user.id)));
        if (row === undefined) throw new Error(`user ${user.id} has no profile row`);
        return row;
      },
      posts: (user, { first }) => {
        const size = parseRange(first, 'first', 1, MAX_POSTS_FIRST);
        return query(() =>
          db
            .select()
            .from(posts)
            .where(eq(posts.authorId, user.id))
            .orderBy(desc(posts.createdAt), desc(posts.id))
            .limit(size),
        );
      },
    },
    Post: {
      async author(post) {
        const author = await userById(post.authorId);
        if (author === null) throw new Error(`post ${post.id} names missing author ${post.authorId}`);
        return author;
      },
    },
    Profile: { userId: (profile) => profile.userId },
  };
}

export interface Snapshot {
  readonly users: Map<number, UserRow>;
  readonly profiles: Map<number, ProfileRow>;
  /** Each author's posts, newest first (created_at desc, id desc), like the API. */
  readonly postsByAuthor: Map<number, PostRow[]>;
  readonly posts: Map<number, PostRow>;
  /** User ids ascending, for pages. */
  readonly userIds: number[];
}

/** Every user, profile and post, read once at startup for the static variant. */
export async function loadSnapshot(db: Db): Promise<Snapshot> {
  const [userRows, profileRows, postRows] = await Promise.all([
    db.select().from(users).orderBy(asc(users.id)),
    db.select().from(profiles),
    db.select().from(posts).orderBy(desc(posts.createdAt), desc(posts.id)),
  ]);
  const postsByAuthor = new Map<number, PostRow[]>();
  for (const post of postRows) {
    let list = postsByAuthor.get(post.authorId);
    if (list === undefined) postsByAuthor.set(post.authorId, (list = []));
    list.push(post);
  }
  return {
    users: new Map(userRows.map((u) => [u.id, u])),
    profiles: new Map(profileRows.map((p) => [p.userId, p])),
    postsByAuthor,
    posts: new Map(postRows.map((p) => [p.id, p])),
    userIds: userRows.map((u) => u.id),
  };
}

/**
 * static: the same schema, the same argument checks, the same shapes, answered synchronously from memory.
 * What is left is graphql-yoga, graphql-js and our plugins: the most any data layer could reach.
 */
export function staticResolvers(data: Snapshot): Resolvers {
  return {
    DateTime,
    Mutation,
    Query: {
      user: (_, { id }) => data.users.get(parseIdArgument(id, 'id')) ?? null,
      users: (_, { ids }) => parseIdsArgument(ids, 'ids').map((id) => data.users.get(id) ?? null),
      userPage(_, { first, after }) {
        const size = parseRange(first, 'first', 1, MAX_PAGE_SIZE);
        const cursor = after === null || after === undefined ? 0 : parseIdArgument(after, 'after');
        const start = firstAbove(data.userIds, cursor);
        const ids = data.userIds.slice(start, start + size);
        const nodes = ids.map((id) => data.users.get(id)!);
        const hasMore = start + size < data.userIds.length;
        return { nodes, nextCursor: hasMore && ids.length > 0 ? String(ids.at(-1)) : null };
      },
      me: (_, __, { viewer }) => (viewer === null ? null : (data.users.get(viewer.userId) ?? null)),
      post: (_, { id }) => data.posts.get(parseIdArgument(id, 'id')) ?? null,
    },
    User: {
      email: ProductUser.email!,
      profile: (user) => data.profiles.get(user.id)!,
      posts: (user, { first }) =>
        (data.postsByAuthor.get(user.id) ?? []).slice(0, parseRange(first, 'first', 1, MAX_POSTS_FIRST)),
    },
    Post: { author: (post) => data.users.get(post.authorId)! },
    Profile: { userId: (profile) => profile.userId },
  };
}

/** Store calls by method, counted whoever makes them. */
export interface StoreCalls {
  getMany: number;
  setMany: number;
  fillMany: number;
  getDependent: number;
  setDependent: number;
  acquireLocks: number;
  releaseLocks: number;
  onFill: number;
  other: number;
}

export function emptyStoreCalls(): StoreCalls {
  return {
    getMany: 0,
    setMany: 0,
    fillMany: 0,
    getDependent: 0,
    setDependent: 0,
    acquireLocks: 0,
    releaseLocks: 0,
    onFill: 0,
    other: 0,
  };
}

/** The calls a request makes, counted by name; `ttlMany` (readiness) as `other`. */
const COUNTED = [
  'getMany',
  'setMany',
  'fillMany',
  'getDependent',
  'setDependent',
  'acquireLocks',
  'releaseLocks',
  'onFill',
  'ttlMany',
] as const;

/**
 * Counts every call a request makes that reaches the inner store (each is one round trip,
 * contract.ts). Calls made on behalf of no request — the relay, the consistency monitor — are not
 * a request's cost and are left out.
 */
export function countingStore(inner: CacheStore, calls: StoreCalls): CacheStore {
  return forwardStore(
    inner,
    aroundCalls(inner, COUNTED, (method, call) => {
      if (currentRequestStats() !== undefined) calls[method === 'ttlMany' ? 'other' : method] += 1;
      return call();
    }),
  );
}

/**
 * always-miss: reads always miss (the round trip still happens, its answer is dropped), so every batch does
 * what a batch of cold keys does: MGET, lock and re-read, one SQL statement, a fill under the grant
 * (which releases it); a page of user ids is checked, loaded under the directory's version and stored.
 * The fills, locks and notifications are real Redis commands.
 */
export function forgetfulStore(inner: CacheStore): CacheStore {
  return forwardStore(inner, {
    getMany: async (keys) => {
      await inner.getMany(keys);
      return keys.map(() => undefined);
    },
    acquireLocks: async (keys, token, ttlMs) =>
      (await inner.acquireLocks(keys, token, ttlMs)).map(({ acquired }) => ({ acquired, entry: undefined })),
    // A page of user ids (the one dependent entry the entity tier reads) misses too.
    getDependent: async (key, at) => ({
      status: 'absent',
      generation: (await inner.getDependent(key, at)).generation,
    }),
  });
}

/**
 * Stampede with locks off: every caller is told it holds every lock, so each instance loads the cold
 * key itself (its in-process flight still makes that once per instance). Its fills hold no real
 * grant, so they do not land; releases go through and find no lock of theirs.
 */
export function lockFreeStore(inner: CacheStore): CacheStore {
  return forwardStore(inner, {
    // The read half of the attempt still happens (one round trip, like the real one).
    acquireLocks: async (keys) => (await inner.getMany(keys)).map((entry) => ({ acquired: true, entry })),
  });
}

// Private:

/** Index of the first id greater than `after` in ascending `ids`. */
function firstAbove(ids: readonly number[], after: number): number {
  let lo = 0;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (ids[mid]! <= after) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
