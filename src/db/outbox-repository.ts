/**
 * SQL of the outbox: the relay claims unpublished events, marks them published, and prunes old ones.
 * Claiming uses `FOR UPDATE SKIP LOCKED`, so relays in several instances share the backlog without
 * waiting on each other or publishing a row twice at the same time.
 */
import { and, asc, eq, inArray, isNotNull, isNull, lt, or, sql } from 'drizzle-orm';
import type { Db } from './client.js';
import { outbox } from './schema.js';

export interface OutboxEvent {
  readonly id: number;
  readonly entity: string;
  readonly entityId: number;
  readonly version: number;
  readonly createdAt: Date;
}

/**
 * The entity of an outbox row that stands for every cached row at once: written by changes that fire
 * no row trigger (the seed, which turns triggers off; a bulk load an operator announces by inserting
 * one such row). The relay answers it by invalidating the whole cache namespace.
 */
export const EVERYTHING = '*';

/** Records, in the caller's transaction, that any cached row may have changed (see EVERYTHING). */
export async function announceEverythingChanged(tx: Db): Promise<void> {
  await tx.insert(outbox).values({ entity: EVERYTHING, entityId: 0, version: 0 });
}

export function createOutboxRepository() {
  return {
    /** Locks and returns up to `limit` unpublished events, oldest first, in the caller's transaction. */
    claimUnpublished(tx: Db, limit: number): Promise<OutboxEvent[]> {
      return tx
        .select({
          id: outbox.id,
          entity: outbox.entity,
          entityId: outbox.entityId,
          version: outbox.version,
          createdAt: outbox.createdAt,
        })
        .from(outbox)
        .where(isNull(outbox.publishedAt))
        .orderBy(asc(outbox.id))
        .limit(limit)
        .for('update', { skipLocked: true });
    },

    async markPublished(tx: Db, ids: readonly number[]): Promise<void> {
      if (ids.length === 0) return;
      await tx
        .update(outbox)
        .set({ publishedAt: sql`now()` })
        .where(inArray(outbox.id, [...ids]));
    },

    /** Deletes events published more than `olderThanMs` ago; returns how many. */
    async prunePublished(db: Db, olderThanMs: number): Promise<number> {
      const deleted = await db
        .delete(outbox)
        .where(
          and(
            isNotNull(outbox.publishedAt),
            lt(outbox.publishedAt, sql`now() - make_interval(secs => ${olderThanMs / 1000})`),
          ),
        )
        .returning({ id: outbox.id });
      return deleted.length;
    },

    /**
     * How many of the outbox rows naming these changes (entity, id, version) are still unpublished:
     * 0 once a relay — on any instance — has applied and published them all. A mutation whose
     * write-through failed waits for this.
     */
    async unpublishedOf(
      db: Db,
      changes: readonly { entity: string; id: number; version: number }[],
    ): Promise<number> {
      if (changes.length === 0) return 0;
      const [row] = await db
        .select({ count: sql<number>`count(*)::int` })
        .from(outbox)
        .where(
          and(
            isNull(outbox.publishedAt),
            or(
              ...changes.map((c) =>
                and(eq(outbox.entity, c.entity), eq(outbox.entityId, c.id), eq(outbox.version, c.version)),
              ),
            ),
          ),
        );
      return Number(row?.count ?? 0);
    },

    /** Unpublished events and the age of the oldest, in seconds (for metrics and readiness). */
    async backlog(db: Db): Promise<{ count: number; oldestAgeSeconds: number }> {
      const [row] = await db
        .select({
          count: sql<number>`count(*)::int`,
          oldest: sql<number>`coalesce(extract(epoch from now() - min(${outbox.createdAt})), 0)::float8`,
        })
        .from(outbox)
        .where(isNull(outbox.publishedAt));
      return { count: Number(row?.count ?? 0), oldestAgeSeconds: Number(row?.oldest ?? 0) };
    },
  };
}

export type OutboxRepository = ReturnType<typeof createOutboxRepository>;
