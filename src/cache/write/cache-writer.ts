/**
 * What a mutation asks of the cache once its transaction has committed. Implemented by the cache
 * tier (write-through.ts, beside this file); `noCacheWriter` serves deployments and tests without a cache.
 * Implementations never throw: PostgreSQL already holds the truth, and the outbox relay repairs any
 * key that a failed write-through left behind.
 */
import type { PostRow, ProfileRow } from '../../db/schema.js';

export interface CacheWriter {
  /** Stores the new profile (if newer than what is cached). */
  profileChanged(row: ProfileRow): Promise<void>;
  /** Stores the new post and tombstones its author's post-id list at the list's new version. */
  postCreated(row: PostRow, listVersion: number): Promise<void>;
}

export const noCacheWriter: CacheWriter = {
  profileChanged: async () => {},
  postCreated: async () => {},
};
