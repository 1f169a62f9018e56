/**
 * How a DataLoader batch is answered. The loaders do not know whether a batch is read through the
 * cache (src/cache/cache-aside.ts) or straight from PostgreSQL (`createDirectReaders`, used when the
 * cache is off and by the benchmark's "DataLoaders only" variant).
 */
import type { CacheReport } from '../observability/cache-report.js';
import type { Repositories } from '../db/repositories.js';
import type { PostRow, ProfileRow, UserRow } from '../db/schema.js';

/**
 * Values for ids, in order; `null` for an id that does not exist; an Error for an id that could not
 * be answered (DataLoader rejects that key alone).
 */
export type BatchRead<T> = (ids: readonly number[], report: CacheReport) => Promise<(T | null | Error)[]>;

export interface EntityReaders {
  readonly user: BatchRead<UserRow>;
  readonly profile: BatchRead<ProfileRow>;
  readonly post: BatchRead<PostRow>;
  /** An author's newest post ids (at most MAX_POSTS_PER_AUTHOR), newest first. */
  readonly postIdsByAuthor: BatchRead<number[]>;
}

export function createDirectReaders(repositories: Repositories): EntityReaders {
  return {
    user: async (ids) => inKeyOrder(ids, await repositories.usersByIds(ids), (r) => r.id),
    profile: async (ids) => inKeyOrder(ids, await repositories.profilesByUserIds(ids), (r) => r.userId),
    post: async (ids) => inKeyOrder(ids, await repositories.postsByIds(ids), (r) => r.id),
    postIdsByAuthor: async (ids) => {
      const lists = await repositories.newestPostIdsByAuthors(ids);
      return ids.map((id) => lists.get(id)?.ids ?? []);
    },
  };
}

/** Rows arrive in whatever order PostgreSQL chose; DataLoader needs them in key order. */
export function inKeyOrder<T>(
  ids: readonly number[],
  rows: readonly T[],
  idOf: (row: T) => number,
): (T | null)[] {
  const byId = new Map<number, T>();
  for (const row of rows) byId.set(idOf(row), row);
  return ids.map((id) => byId.get(id) ?? null);
}
