/**
 * How a DataLoader batch is answered through the cache: each entity's batch goes through
 * cache-aside with its spec. The loaders (src/loaders/) see only `EntityReaders`, so they cannot tell
 * these readers from the direct ones the benchmark uses without a cache.
 */
import type { CacheReport } from '../../observability/cache-report.js';
import type { UserPageIds, UserPageKey } from '../../db/repositories.js';
import type { PostRow, ProfileRow, UserRow } from '../../db/schema.js';
import type { EntitySpecs } from '../entities/specs.js';
import type { CacheAside } from './cache-aside.js';

/**
 * Values for ids, in order; `null` for an id that does not exist; an Error for an id that could not
 * be answered (DataLoader rejects that key alone).
 */
export type BatchRead<T> = (ids: readonly number[], report: CacheReport) => Promise<(T | null | Error)[]>;

/** Pages of user ids, in the order asked (src/cache/read/page-reader.ts through the cache). */
export type PageRead = (pages: readonly UserPageKey[], report: CacheReport) => Promise<UserPageIds[]>;

export interface EntityReaders {
  readonly user: BatchRead<UserRow>;
  readonly profile: BatchRead<ProfileRow>;
  readonly post: BatchRead<PostRow>;
  /** An author's newest post ids (at most MAX_POSTS_PER_AUTHOR), newest first. */
  readonly postIdsByAuthor: BatchRead<number[]>;
  readonly userPage: PageRead;
}

export function createCachedReaders(
  cacheAside: CacheAside,
  specs: EntitySpecs,
  pages: PageRead,
): EntityReaders {
  return {
    user: (ids, report) => cacheAside.read(specs.user, ids, report),
    profile: (ids, report) => cacheAside.read(specs.profile, ids, report),
    post: (ids, report) => cacheAside.read(specs.post, ids, report),
    postIdsByAuthor: async (ids, report) =>
      (await cacheAside.read(specs.userPosts, ids, report)).map((list) =>
        list instanceof Error ? list : (list?.ids ?? null),
      ),
    userPage: pages,
  };
}
