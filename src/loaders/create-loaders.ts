/**
 * The request's DataLoaders: created per request, so their memo never outlives it and one user's
 * request never sees another's in-flight state. Every entity read of a resolver goes through here.
 */
import DataLoader from 'dataloader';
import type { CacheReport } from '../observability/cache-report.js';
import type { UserPageIds, UserPageKey } from '../db/repositories.js';
import type { PostRow, ProfileRow, UserRow } from '../db/schema.js';
import type { BatchRead, EntityReaders } from '../cache/read/cached-readers.js';

/** docs/contract.md, "Stack": at most 100 keys per batch, so one SQL statement and one multi-get stay bounded. */
export const MAX_BATCH_SIZE = 100;

export interface Loaders {
  readonly user: DataLoader<number, UserRow | null>;
  readonly profile: DataLoader<number, ProfileRow | null>;
  readonly post: DataLoader<number, PostRow | null>;
  readonly postIdsByAuthor: DataLoader<number, number[] | null>;
  /** A page of user ids (cached as a dependent entry of the user directory); the users come through `user`. */
  readonly userPageIds: DataLoader<UserPageKey, UserPageIds, string>;
}

export interface LoaderDeps {
  readonly readers: EntityReaders;
  readonly report: CacheReport;
}

export function createLoaders({ readers, report }: LoaderDeps): Loaders {
  const entityLoader = <T>(name: string, read: BatchRead<T>) =>
    new DataLoader<number, T | null>((ids) => read(ids, report), { maxBatchSize: MAX_BATCH_SIZE, name });

  return {
    user: entityLoader('user', readers.user),
    profile: entityLoader('profile', readers.profile),
    post: entityLoader('post', readers.post),
    postIdsByAuthor: entityLoader('postIdsByAuthor', readers.postIdsByAuthor),
    // Pages are rare in one request (usually one): the reader checks or loads each on its own.
    userPageIds: new DataLoader<UserPageKey, UserPageIds, string>(
      (pages) => readers.userPage(pages, report),
      {
        cacheKeyFn: ({ first, after }) => `${first}:${after}`,
        name: 'userPageIds',
      },
    ),
  };
}
