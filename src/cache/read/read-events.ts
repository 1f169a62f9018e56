/**
 * What the read path notices that is worth counting or logging. The composition root hooks the
 * metrics in here (src/observability/metric-adapters.ts); the read path itself never imports them.
 */
import type { LookupOutcome } from '../../observability/cache-report.js';
import type { CachedEntity } from '../entities/keys.js';

export interface ReadEvents {
  /** Keys whose lock another caller holds: this request waits for that caller's fill. */
  lockWait?(entity: CachedEntity, keys: number): void;
  /** Waiters gave up on another caller's fill after `lockWaitMs` and loaded the keys themselves. */
  lockWaitTimeout?(entity: CachedEntity, keys: number): void;
  /** `count` lookups of one batch had this outcome (one call per outcome and batch, not per key). */
  lookup?(entity: CachedEntity, outcome: LookupOutcome, count: number): void;
  /** The store failed; the batch (or what was left of it) went to PostgreSQL. */
  storeError?(error: unknown, operation: string): void;
}
