/**
 * The entities cacheside caches, each described once: its key, TTL, loader, version and codec. The
 * result plugs into the DataLoaders in place of the direct readers.
 */
import type { CacheConfig } from '../../config.js';
import type { PostList, Repositories } from '../../db/repositories.js';
import type { PostRow, ProfileRow, UserRow } from '../../db/schema.js';
import type { EntityReaders } from '../../loaders/direct-readers.js';
import type { CacheAside, EntitySpec } from './cache-aside.js';
import { msgpackCodec } from '../entities/codec.js';
import type { CacheKeys } from '../entities/keys.js';

export interface CachedReaderDeps {
  readonly cacheAside: CacheAside;
  readonly keys: CacheKeys;
  readonly repositories: Repositories;
  readonly config: CacheConfig;
}

export interface EntitySpecs {
  readonly user: EntitySpec<UserRow>;
  readonly profile: EntitySpec<ProfileRow>;
  readonly post: EntitySpec<PostRow>;
  readonly userPosts: EntitySpec<PostList>;
}

export function createEntitySpecs({
  keys,
  repositories,
  config,
}: Omit<CachedReaderDeps, 'cacheAside'>): EntitySpecs {
  return {
    user: {
      entity: 'user',
      keyOf: (id) => keys.entity('user', id),
      ttlSeconds: config.ttlSeconds,
      load: async (ids) => byId(await repositories.usersByIds(ids), (r) => r.id),
      versionOf: (row) => row.version,
      codec: msgpackCodec('user', (v): v is UserRow => isRow(v, 'id') && v.createdAt instanceof Date),
    },
    profile: {
      entity: 'profile',
      keyOf: (id) => keys.entity('profile', id),
      ttlSeconds: config.ttlSeconds,
      load: async (ids) => byId(await repositories.profilesByUserIds(ids), (r) => r.userId),
      versionOf: (row) => row.version,
      codec: msgpackCodec(
        'profile',
        (v): v is ProfileRow => isRow(v, 'userId') && v.updatedAt instanceof Date,
      ),
    },
    post: {
      entity: 'post',
      keyOf: (id) => keys.entity('post', id),
      ttlSeconds: config.ttlSeconds,
      load: async (ids) => byId(await repositories.postsByIds(ids), (r) => r.id),
      versionOf: (row) => row.version,
      codec: msgpackCodec('post', (v): v is PostRow => isRow(v, 'id') && v.createdAt instanceof Date),
    },
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
  };
}

export function createCachedReaders(deps: CachedReaderDeps): EntityReaders {
  const specs = createEntitySpecs(deps);
  const { cacheAside } = deps;
  return {
    user: (ids, report) => cacheAside.read(specs.user, ids, report),
    profile: (ids, report) => cacheAside.read(specs.profile, ids, report),
    post: (ids, report) => cacheAside.read(specs.post, ids, report),
    postIdsByAuthor: async (ids, report) =>
      (await cacheAside.read(specs.userPosts, ids, report)).map((list) =>
        list instanceof Error ? list : (list?.ids ?? null),
      ),
  };
}

function byId<T>(rows: readonly T[], idOf: (row: T) => number): Map<number, T> {
  return new Map(rows.map((row) => [idOf(row), row]));
}

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
