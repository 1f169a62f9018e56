/**
 * Every entity key cacheside writes is built here, so that the key grammar of docs/contract.md
 * ("Keys") lives in one place:
 *
 *   <prefix>:<format>:<entity>:{<id>}[:<field>]      e.g. cs:v1:profile:{42}, cs:v1:user:{42}:posts
 *
 * and the one user directory (which user ids exist), `cs:v1:userDirectory:{1}`, with its pages of
 * user ids, `cs:v1:userDirectory:{1}:page:<after>:<first>` (dependent entries, like stored answers).
 *
 * The braces are literal Redis Cluster hash tags: everything about one id (the entity, its derived
 * keys, its lock and its fill channel) hashes to one slot, so a script touching several of them never
 * crosses slots. `format` is bumped when the shape of a cached value changes, so that instances of a
 * rolling deploy never decode each other's values.
 */
import { CACHE_PREFIX_PATTERN, CACHE_PREFIX_RULE } from '../../config.js';
import { isId, MAX_ID, parseId } from '../../domain/ids.js';
import type { DependentKeys } from '../store/contract.js';

/** Bumped whenever a cached value's encoding or shape changes. */
export const CACHE_FORMAT_VERSION = 'v1';

export const CACHED_ENTITIES = ['user', 'profile', 'post', 'userPosts', 'userDirectory'] as const;
export type CachedEntity = (typeof CACHED_ENTITIES)[number];

/**
 * The id of the one user directory: its version (user_directory_version, bumped by the users
 * triggers on insert and delete) is what a page of users depends on. Migration 0005 names it too.
 */
export const USER_DIRECTORY_ID = 1;

/** `<entity>:{<id>}[:posts]` after the namespace. */
const ENTITY_KEY = /^(user|profile|post|userDirectory):\{([0-9]+)\}(:posts)?$/;
const PAGE_KEY = new RegExp(`^userDirectory:\\{${USER_DIRECTORY_ID}\\}:page:([0-9]+):([0-9]+)$`);

export interface CacheKeys {
  /** `<prefix>:v1:` — everything cacheside owns starts with it. */
  readonly namespace: string;
  /** The key of an entity (or of a user's post-id list) by validated id. */
  entity(entity: CachedEntity, id: number): string;
  /**
   * The key of a stored response (the response tier): `<namespace>response:{<digest>}`, the digest
   * naming the operation, its variables and its viewer scope. Braced like every key: one slot each.
   */
  response(digest: string): string;
  /** Whether `key` is a stored response's (`response(digest)`). */
  isResponse(key: string): boolean;
  /**
   * The key of a cached page of user ids (src/cache/read/page-reader.ts): the directory's, then the
   * page's cursor and size, both validated (`after` 0 is the first page).
   */
  page(first: number, after: number): string;
  /** The channel on which invalidation events are published. */
  readonly eventsChannel: string;
  /**
   * The keys a store keeps about its dependent entries (the response tier's answers):
   * `<namespace>write-stamp`, changed by every write to an entry so that an answer checked since is
   * served on one comparison (single Redis only), and `<namespace>answer-generation`, changed by
   * operators' purges so that every answer begun before is absent (src/cache/store/redis/write-stamp.ts).
   */
  readonly dependents: DependentKeys;
  /** The entity and id an entity key names, or undefined for any other key (locks, channels, foreign). */
  parse(key: string): { entity: CachedEntity; id: number } | undefined;
  /** The size and cursor a page key names (`page(first, after)`), or undefined for any other key. */
  parsePage(key: string): { first: number; after: number } | undefined;
}

export function createCacheKeys(prefix: string): CacheKeys {
  if (!CACHE_PREFIX_PATTERN.test(prefix)) {
    throw new TypeError(`cache prefix must be ${CACHE_PREFIX_RULE}, got ${JSON.stringify(prefix)}`);
  }
  const namespace = `${prefix}:${CACHE_FORMAT_VERSION}:`;
  return {
    namespace,
    parse(key) {
      if (!key.startsWith(namespace)) return undefined;
      const match = ENTITY_KEY.exec(key.slice(namespace.length));
      const id = parseId(match?.[2] ?? '');
      if (!match || id === undefined) return undefined;
      const entity: CachedEntity = match[3] ? 'userPosts' : (match[1] as Exclude<CachedEntity, 'userPosts'>);
      if (entity === 'userPosts' && match[1] !== 'user') return undefined;
      return { entity, id };
    },
    parsePage(key) {
      if (!key.startsWith(namespace)) return undefined;
      const match = PAGE_KEY.exec(key.slice(namespace.length));
      const first = parseId(match?.[2] ?? '');
      const after = match?.[1] === '0' ? 0 : parseId(match?.[1] ?? '');
      return first === undefined || after === undefined ? undefined : { first, after };
    },
    eventsChannel: `${namespace}events`,
    dependents: { writeStamp: `${namespace}write-stamp`, generation: `${namespace}answer-generation` },
    response(digest) {
      if (!/^[A-Za-z0-9_-]{16,64}$/.test(digest)) {
        throw new RangeError(
          `response key digest must be 16..64 base64url characters, got ${JSON.stringify(digest)}`,
        );
      }
      return `${namespace}response:{${digest}}`;
    },
    isResponse: (key) => key.startsWith(`${namespace}response:{`) && key.endsWith('}'),
    page(first, after) {
      // Validated like ids (the API bounds the size far lower, MAX_PAGE_SIZE): never a client's string.
      if (!isId(first)) {
        throw new RangeError(`page key size must be an integer in 1..${MAX_ID}, got ${String(first)}`);
      }
      if (after !== 0 && !isId(after)) {
        throw new RangeError(`page key cursor must be 0 or an integer in 1..${MAX_ID}, got ${String(after)}`);
      }
      return `${namespace}userDirectory:{${USER_DIRECTORY_ID}}:page:${after}:${first}`;
    },
    entity(entity, id) {
      // Only ids that passed validation may become keys: a key per arbitrary client string would
      // let anyone fill Redis with junk.
      if (!isId(id)) {
        throw new RangeError(`cache key id must be an integer in 1..${MAX_ID}, got ${String(id)}`);
      }
      switch (entity) {
        case 'userPosts':
          return `${namespace}user:{${id}}:posts`;
        default:
          return `${namespace}${entity}:{${id}}`;
      }
    },
  };
}
