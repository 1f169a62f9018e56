/**
 * The entities cacheside caches, each described once: its key, TTL class, loader, version and
 * codec. The read path answers DataLoader batches with these specs; the write path builds its
 * write-throughs and tombstones with them, so both agree on every key and version.
 */
import type { CacheConfig } from '../../config.js';
import type { PostList, Repositories, UserDirectory } from '../../db/repositories.js';
import type { PostRow, ProfileRow, UserRow } from '../../db/schema.js';
import { msgpackCodec } from './codec.js';
import type { EntitySpec } from './entity-spec.js';
import { USER_DIRECTORY_ID, type CacheKeys } from './keys.js';

export interface EntitySpecs {
  readonly user: EntitySpec<UserRow>;
  readonly profile: EntitySpec<ProfileRow>;
  readonly post: EntitySpec<PostRow>;
  readonly userPosts: EntitySpec<PostList>;
  /** The one user directory (id USER_DIRECTORY_ID): its version only, what a page of users reads. */
  readonly userDirectory: EntitySpec<UserDirectory>;
}

export interface EntitySpecDeps {
  readonly keys: CacheKeys;
  readonly repositories: Repositories;
  readonly config: CacheConfig;
}

export function createEntitySpecs({ keys, repositories, config }: EntitySpecDeps): EntitySpecs {
  /** A table row cached whole under its id, fenced by its `version` column. */
  const rowSpec = <T extends { version: number }>(
    entity: 'user' | 'profile' | 'post',
    load: (ids: readonly number[]) => Promise<T[]>,
    idField: keyof T & string,
    dateField: keyof T & string,
  ): EntitySpec<T> => ({
    entity,
    keyOf: (id) => keys.entity(entity, id),
    ttlSeconds: config.ttlSeconds,
    load: async (ids) => new Map((await load(ids)).map((row) => [row[idField] as number, row])),
    versionOf: (row) => row.version,
    codec: msgpackCodec(
      entity,
      (v): v is T => isRow(v, idField) && (v as Record<string, unknown>)[dateField] instanceof Date,
    ),
  });

  return {
    user: rowSpec<UserRow>('user', repositories.usersByIds, 'id', 'createdAt'),
    profile: rowSpec<ProfileRow>('profile', repositories.profilesByUserIds, 'userId', 'updatedAt'),
    post: rowSpec<PostRow>('post', repositories.postsByIds, 'id', 'createdAt'),
    userPosts: {
      entity: 'userPosts',
      keyOf: (id) => keys.entity('userPosts', id),
      // A list changes whenever its author posts: volatile, so a missed invalidation heals sooner.
      ttlSeconds: config.volatileTtlSeconds,
      // Every author has a list, if an empty one: a missing author is the user loader's business.
      load: (ids) => repositories.newestPostIdsByAuthors(ids),
      versionOf: (list) => list.version,
      codec: msgpackCodec(
        'post list',
        (v): v is PostList =>
          typeof v === 'object' &&
          v !== null &&
          Number.isSafeInteger((v as PostList).version) &&
          Array.isArray((v as PostList).ids) &&
          (v as PostList).ids.every(Number.isSafeInteger),
      ),
    },
    userDirectory: {
      entity: 'userDirectory',
      keyOf: (id) => keys.entity('userDirectory', id),
      // Users are inserted and deleted only outside the API (its triggers tombstone this key): rare.
      ttlSeconds: config.ttlSeconds,
      load: (ids) => repositories.userDirectories(ids, USER_DIRECTORY_ID),
      versionOf: (directory) => directory.version,
      codec: msgpackCodec(
        'user directory',
        (v): v is UserDirectory =>
          typeof v === 'object' && v !== null && Number.isSafeInteger((v as UserDirectory).version),
      ),
    },
  };
}

// Private:

function isRow<K extends string>(
  value: unknown,
  idField: K,
): value is Record<K, number> & Record<string, unknown> {
  return (
    typeof value === 'object' &&
    value !== null &&
    Number.isSafeInteger((value as Record<string, unknown>)[idField]) &&
    Number.isSafeInteger((value as Record<string, unknown>).version)
  );
}
