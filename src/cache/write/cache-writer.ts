/**
 * What a mutation asks of the cache once its transaction has committed. Implemented by the cache
 * tier (write-through.ts, beside this file). Implementations never throw: PostgreSQL already holds
 * the truth, and the outbox relay repairs any key that a failed write-through left behind. They
 * return only once every instance is safe to read the change, or say that propagation is pending
 * (propagation.ts).
 */
import type { PostRow, ProfileRow } from '../../db/schema.js';
import type { Propagation } from './propagation.js';

export interface CacheWriter {
  /** Stores the new profile (if newer than what is cached). */
  profileChanged(row: ProfileRow): Promise<Propagation>;
  /** Stores the new post and tombstones its author's post-id list at the list's new version. */
  postCreated(row: PostRow, listVersion: number): Promise<Propagation>;
}
