/**
 * The request's DataLoaders: created per request, so their memo never outlives it and one user's
 * request never sees another's in-flight state. Every entity read of a resolver goes through here.
 */
import DataLoader from 'dataloader';
import type { CacheReport } from '../observability/cache-report.js';
import type { Repositories } from '../db/repositories.js';
import type { PostRow, ProfileRow, UserRow } from '../db/schema.js';
import { USER_DIRECTORY_ID } from '../cache/entities/keys.js';
import type { BatchRead, EntityReaders } from '../cache/read/cached-readers.js';

/** docs/contract.md, "Stack": at most 100 keys per batch, so one SQL statement and one multi-get stay bounded. */
export const MAX_BATCH_SIZE = 100;

export interface UserPageKey {
  readonly first: number;
  readonly after: number;
}

export interface UserPageIds {
  readonly ids: number[];
  readonly hasMore: boolean;
}

export interface Loaders {
  readonly user: DataLoader<number, UserRow | null>;
  readonly profile: DataLoader<number, ProfileRow | null>;
  readonly post: DataLoader<number, PostRow | null>;
  readonly postIdsByAuthor: DataLoader<number, number[] | null>;
  /** A page of user ids, read from PostgreSQL (one indexed query); the users come through `user`. */
  readonly userPageIds: DataLoader<UserPageKey, UserPageIds, string>;
}

export interface LoaderDeps {
  readonly readers: EntityReaders;
  readonly repositories: Repositories;
  readonly report: CacheReport;
}

export function createLoaders({ readers, repositories, report }: LoaderDeps): Loaders {
  const entityLoader = <T>(name: string, read: BatchRead<T>) =>
    new DataLoader<number, T | null>((ids) => read(ids, report), { maxBatchSize: MAX_BATCH_SIZE, name });

  return {
    user: entityLoader('user', readers.user),
    profile: entityLoader('profile', readers.profile),
    post: entityLoader('post', readers.post),
    postIdsByAuthor: entityLoader('postIdsByAuthor', readers.postIdsByAuthor),
    userPageIds: new DataLoader<UserPageKey, UserPageIds, string>(
      async (keys) => {
        // No user's version covers a range of ids: the response tier's answer depends on the user
        // directory's version instead, read *before* the ranges so that an insert or delete the
        // ranges miss moves the directory past what the answer names (its tombstone comes after its
        // commit). Only when an answer may be stored: the entity tier alone needs no directory.
        // test/read-path/response-tier.test.ts ("a page whose SQL an insert overtakes …").
        if (report.pagesNeedDirectory) await readers.userDirectory([USER_DIRECTORY_ID], report);
        report.pageReads += keys.length;
        // Pages are rare in one request (usually one); each is its own indexed range scan.
        return Promise.all(
          keys.map(async ({ first, after }) => {
            const ids = await repositories.userIdsAfter(after, first + 1);
            return { ids: ids.slice(0, first), hasMore: ids.length > first };
          }),
        );
      },
      { cacheKeyFn: ({ first, after }) => `${first}:${after}`, name: 'userPageIds' },
    ),
  };
}
