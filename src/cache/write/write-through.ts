/**
 * After a mutation commits, and before it returns, the new value goes into the cache (so the next
 * read anywhere is a hit on the new version) and derived keys get tombstones (so a fill that read
 * the old list cannot land after the change). Both are fenced writes: a write-through never replaces
 * a newer version that a concurrent mutation already stored.
 *
 * A failure here does not fail the mutation — PostgreSQL holds the truth and its outbox row was
 * committed with it; the relay applies the same tombstones once the store answers again.
 */
import type { PostRow, ProfileRow } from '../../db/schema.js';
import type { Logger } from '../../observability/logger.js';
import type { CacheWriter } from './cache-writer.js';
import type { EntitySpecs } from '../entities/specs.js';
import type { EntryFactory } from '../entities/entries.js';
import type { CacheStore, CacheWrite } from '../store/contract.js';

export interface WriteThroughDeps {
  readonly store: CacheStore;
  readonly specs: EntitySpecs;
  readonly entries: EntryFactory;
  readonly logger: Logger;
  readonly onError?: (error: unknown) => void;
}

export function createWriteThrough({
  store,
  specs,
  entries,
  logger,
  onError,
}: WriteThroughDeps): CacheWriter {
  const write = async (writes: CacheWrite[], what: string) => {
    try {
      await store.setMany(writes);
    } catch (error) {
      onError?.(error);
      logger.warn({ err: error, what }, 'write-through failed; the outbox relay will invalidate');
    }
  };

  return {
    profileChanged: (row: ProfileRow) =>
      write([entries.fill(specs.profile, specs.profile.keyOf(row.userId), row)], `profile ${row.userId}`),

    postCreated: (row: PostRow, listVersion: number) =>
      write(
        [
          entries.fill(specs.post, specs.post.keyOf(row.id), row),
          // The author's list now starts with this post: any list read before is older.
          entries.tombstone(specs.userPosts.keyOf(row.authorId), listVersion),
        ],
        `post ${row.id}`,
      ),
  };
}
