/**
 * DataLoader batches answered straight from PostgreSQL, without the cache: the benchmark's
 * `dataloader` variant, which shows what the cache adds on top of batching alone.
 */
import type { EntityReaders } from '../cache/read/cached-readers.js';
import type { Repositories } from '../db/repositories.js';

export function createDirectReaders(repositories: Repositories): EntityReaders {
  return {
    user: async (ids) => inKeyOrder(ids, await repositories.usersByIds(ids), (r) => r.id),
    profile: async (ids) => inKeyOrder(ids, await repositories.profilesByUserIds(ids), (r) => r.userId),
    post: async (ids) => inKeyOrder(ids, await repositories.postsByIds(ids), (r) => r.id),
    postIdsByAuthor: async (ids) => {
      const lists = await repositories.newestPostIdsByAuthors(ids);
      return ids.map((id) => lists.get(id)?.ids ?? []);
    },
    userPage: (pages) => Promise.all(pages.map((page) => repositories.userPage(page))),
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
