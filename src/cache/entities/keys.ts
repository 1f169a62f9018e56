/**
 * Every Redis key cacheside writes is built here, so that the key grammar of DESIGN §6 lives in one
 * place:
 *
 *   <prefix>:<format>:<entity>:{<id>}[:<field>]      e.g. cs:v1:profile:{42}, cs:v1:user:{42}:posts
 *
 * The braces are literal Redis Cluster hash tags: everything about one id (the entity, its derived
 * keys, its lock and its fill channel) hashes to one slot, so a script touching several of them never
 * crosses slots. `format` is bumped when the shape of a cached value changes, so that instances of a
 * rolling deploy never decode each other's values.
 */

/** Bumped whenever a cached value's encoding or shape changes. */
export const CACHE_FORMAT_VERSION = 'v1';

export const CACHED_ENTITIES = ['user', 'profile', 'post', 'userPosts'] as const;
export type CachedEntity = (typeof CACHED_ENTITIES)[number];

export interface CacheKeys {
  /** `<prefix>:v1:` — everything cacheside owns starts with it. */
  readonly namespace: string;
  /** The key of an entity (or of a user's post-id list) by validated id. */
  entity(entity: CachedEntity, id: number): string;
  /** The channel on which invalidation events are published. */
  readonly eventsChannel: string;
}

const PREFIX_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;

export function createCacheKeys(prefix: string): CacheKeys {
  if (!PREFIX_PATTERN.test(prefix)) {
    throw new TypeError(
      `cache prefix must be 1..64 characters of [A-Za-z0-9_.-], got ${JSON.stringify(prefix)}`,
    );
  }
  const namespace = `${prefix}:${CACHE_FORMAT_VERSION}:`;
  return {
    namespace,
    eventsChannel: `${namespace}events`,
    entity(entity, id) {
      // Only ids that passed validation may become keys: a key per arbitrary client string would
      // let anyone fill Redis with junk.
      if (!Number.isSafeInteger(id) || id < 1 || id > 2147483647) {
        throw new RangeError(`cache key id must be an integer in 1..2147483647, got ${String(id)}`);
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

/** The stampede lock that guards the fill of `key`; shares its hash tag. */
export function lockKeyOf(key: string): string {
  return `${key}:lock`;
}

/** The channel on which the fill of `key` is announced to waiters; shares its hash tag. */
export function fillChannelOf(key: string): string {
  return `${key}:filled`;
}

/** The hash tag of a key (the text between the first `{` and the next `}`), as Redis Cluster reads it. */
export function hashTagOf(key: string): string {
  const open = key.indexOf('{');
  if (open === -1) return key;
  const close = key.indexOf('}', open + 1);
  if (close === -1 || close === open + 1) return key;
  return key.slice(open + 1, close);
}
