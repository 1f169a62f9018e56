/**
 * What the cache needs to know about one cached entity: its key, its TTL class, how to load it from
 * PostgreSQL, the version that fences it, and how its payload is encoded. The read path resolves
 * batches with it; the write path builds write-throughs and tombstones with it.
 */
import type { Codec } from './codec.js';
import type { CachedEntity } from './keys.js';

export interface EntitySpec<T> {
  readonly entity: CachedEntity;
  readonly keyOf: (id: number) => string;
  /** Logical TTL of a value, seconds (the configured default or volatile TTL). */
  readonly ttlSeconds: number;
  /** Loads the rows of ids from PostgreSQL in one statement; an id without a row is absent. */
  readonly load: (ids: readonly number[]) => Promise<Map<number, T>>;
  /** The version a value is fenced by: the row's `version`, a post list's counter. */
  readonly versionOf: (value: T) => number;
  readonly codec: Codec<T>;
}
