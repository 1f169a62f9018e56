/**
 * After a mutation commits, and before it returns, the new value goes into the cache (so the next
 * read anywhere is a hit on the new version) and derived keys get tombstones (so a fill that read
 * the old list cannot land after the change). Both are invalidations: fenced (a write-through never
 * replaces a newer version that a concurrent mutation already stored), and each revokes the key's
 * fill grant, so a read that loaded the old row before this write cannot fill it after.
 *
 * A failure here does not fail the mutation — PostgreSQL holds the truth and its outbox rows were
 * committed with it. But it does not return as if nothing happened either: it waits, bounded, until
 * a relay has applied those rows (propagation.ts), and reports whether that happened in time.
 */
import type { PostRow, ProfileRow } from '../../db/schema.js';
import type { Logger } from '../../observability/logger.js';
import type { EntryFactory } from '../entities/entries.js';
import type { EntitySpecs } from '../entities/specs.js';
import type { CacheStore, CacheWrite } from '../store/contract.js';
import { isStoreOutage } from '../store/errors.js';
import type { CacheWriter } from './cache-writer.js';
import type { Change, Propagation, PropagationWait } from './propagation.js';

export interface WriteThroughDeps {
  readonly store: CacheStore;
  readonly specs: EntitySpecs;
  readonly entries: EntryFactory;
  readonly propagation: PropagationWait;
  readonly logger: Logger;
  /** A write-through failed (the breaker trips: Redis may still hold what the write replaced). */
  readonly onError?: (error: unknown) => void;
  /** How each write's cache side ended. */
  readonly onPropagation?: (outcome: Propagation) => void;
}

export function createWriteThrough(deps: WriteThroughDeps): CacheWriter {
  const { store, specs, entries, propagation, logger } = deps;

  const write = async (writes: CacheWrite[], changes: Change[], what: string): Promise<Propagation> => {
    let outcome: Propagation = 'written';
    try {
      await store.setMany(writes);
    } catch (error) {
      deps.onError?.(error);
      // Redis being down is logged once per outage (observability/availability.ts) and the outcome
      // counted (cacheside_write_propagation_total); only a failure of another kind gets lines here.
      const level = isStoreOutage(error) ? 'debug' : 'warn';
      logger[level]({ err: error, what }, 'write-through failed; waiting for a relay to apply the change');
      outcome = await propagation.untilApplied(changes);
      if (outcome === 'pending') {
        logger[level](
          { what },
          'write not yet applied to the cache by any relay; returning, propagation pending',
        );
      }
    }
    deps.onPropagation?.(outcome);
    return outcome;
  };

  return {
    profileChanged: (row: ProfileRow) =>
      write(
        [entries.fill(specs.profile, specs.profile.keyOf(row.userId), row)],
        [{ entity: 'profile', id: row.userId, version: row.version }],
        `profile ${row.userId}`,
      ),

    postCreated: (row: PostRow, listVersion: number) =>
      write(
        [
          entries.fill(specs.post, specs.post.keyOf(row.id), row),
          // The author's list now starts with this post: any list read before is older.
          entries.tombstone(specs.userPosts.keyOf(row.authorId), listVersion),
        ],
        [
          { entity: 'post', id: row.id, version: row.version },
          { entity: 'userPosts', id: row.authorId, version: listVersion },
        ],
        `post ${row.id}`,
      ),
  };
}
