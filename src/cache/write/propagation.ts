/**
 * When a write-through fails — Redis timed out, is full, or is out of this instance's reach while
 * the others still use it — the other instances may still hold the version it replaced. The mutation
 * must not return as if every instance were safe. Its outbox rows were committed with it, and some
 * relay (on any instance that can reach Redis) will apply their tombstones and mark them published:
 * so the mutation waits, bounded, until PostgreSQL shows that. It does not run a relay itself: a
 * relay that cannot reach Redis holds the rows it claimed (FOR UPDATE) until its command times out,
 * and the relays that can would skip them meanwhile.
 *
 * Past the bound it returns anyway (the change is committed; failing the mutation would be a lie),
 * and says so: the response carries `extensions.propagation = "pending"` (docs/contract.md, "Errors
 * and notices") and the metric counts it. test/resilience/one-sided-partition.test.ts drives both.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Db } from '../../db/client.js';
import type { OutboxRepository } from '../../db/outbox-repository.js';
import type { Logger } from '../../observability/logger.js';

/** A committed change, as its outbox row names it. */
export interface Change {
  readonly entity: string;
  readonly id: number;
  readonly version: number;
}

/** What became of a write's cache side: written through, applied by a relay in time, or still pending. */
export type Propagation = 'written' | 'applied' | 'pending';

export interface PropagationWait {
  /** Resolves `applied` once every change is published by a relay, or `pending` after the bound. */
  untilApplied(changes: readonly Change[]): Promise<'applied' | 'pending'>;
}

export interface PropagationWaitDeps {
  readonly db: Db;
  readonly outbox: OutboxRepository;
  readonly logger: Logger;
  /** Longest wait, ms (WRITE_PROPAGATION_TIMEOUT_MS). */
  readonly timeoutMs: number;
  /** Pause between looks at the outbox, ms. @default 20 */
  readonly pollMs?: number;
}

export function createPropagationWait(deps: PropagationWaitDeps): PropagationWait {
  const { db, outbox, logger, timeoutMs } = deps;
  const pollMs = deps.pollMs ?? 20;
  return {
    async untilApplied(changes) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const left = await outbox.unpublishedOf(db, changes).catch((error: unknown) => {
          logger.warn({ err: error }, 'could not read the outbox while waiting for a write to propagate');
          return changes.length;
        });
        if (left === 0) return 'applied';
        if (Date.now() >= deadline) return 'pending';
        await sleep(Math.min(pollMs, Math.max(1, deadline - Date.now())));
      }
    },
  };
}
