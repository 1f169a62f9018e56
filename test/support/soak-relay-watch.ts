/**
 * When the outbox relay applied a plain-SQL write, as the soak (soak.ts) can know it: the relay marks
 * an outbox row published in the transaction that follows its tombstones and its event
 * (src/cache/write/outbox-relay.ts), so once PostgreSQL shows every row up to a write's own as
 * published, the cache has been told. A poller reads the lowest unpublished id; each write tracked
 * here learns when it was first seen applied — a time after the relay's, never before it, so a read
 * that began later must see the write (with L1 on: once L1's window has passed too).
 */
import { sql } from 'drizzle-orm';
import { setTimeout as sleep } from 'node:timers/promises';
import { rowsOf } from '../../src/db/client.js';
import type { Db } from '../../src/db/client.js';

/** A tracked write: `appliedAt` (performance.now()) once the poller saw its outbox rows published. */
export interface Applied {
  readonly outboxId: number;
  appliedAt: number | undefined;
}

export interface RelayWatch {
  /** Tracks the write whose last outbox row is `outboxId`. */
  track(outboxId: number): Applied;
  /** Tracked writes seen applied so far. */
  readonly applied: number;
  stop(): Promise<void>;
}

/** The last outbox id this transaction's triggers wrote (its own session's sequence value). */
export async function lastOutboxId(tx: Pick<Db, 'execute'>): Promise<number> {
  const result = await tx.execute(sql`select currval(pg_get_serial_sequence('outbox', 'id')) as id`);
  return Number(rowsOf<{ id: string | number }>(result)[0]!.id);
}

/** `onError`: a poll failed (PostgreSQL is never faulted in the soak: a failure is the soak's error). */
export function watchRelay(db: Db, onError: (error: unknown) => void, everyMs = 20): RelayWatch {
  // Oldest first; the poller settles them from the front.
  const pending: Applied[] = [];
  let applied = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      // Only writes tracked before the query is sent: they committed before it, so its snapshot sees
      // their rows. One tracked meanwhile may be invisible to it while a later id, committed first,
      // makes `below` pass it (found in review).
      const asked = pending.filter((write) => write.appliedAt === undefined);
      const result = await db
        .execute(
          sql`select coalesce((select min(id) from outbox where published_at is null), (select coalesce(max(id), 0) + 1 from outbox)) as below`,
        )
        .catch((error: unknown) => {
          onError(error);
          return undefined;
        });
      // Taken once the answer is here: later than the state it describes, never earlier.
      const at = performance.now();
      if (result !== undefined) {
        const below = Number(rowsOf<{ below: string | number }>(result)[0]!.below);
        for (const write of asked) {
          if (write.outboxId >= below) continue;
          write.appliedAt = at;
          applied += 1;
        }
        while (pending[0]?.appliedAt !== undefined) pending.shift();
      }
      await sleep(everyMs);
    }
  })();
  return {
    track(outboxId) {
      const write: Applied = { outboxId, appliedAt: undefined };
      pending.push(write);
      return write;
    },
    get applied() {
      return applied;
    },
    async stop() {
      running = false;
      await loop;
    },
  };
}
