/**
 * Turns committed outbox rows into cache invalidations, at least once. Every instance runs one; they
 * share the backlog through `FOR UPDATE SKIP LOCKED`. For each claimed batch, in one transaction:
 * apply versioned tombstones to the store, publish the events to every instance, mark the rows
 * published — and only then commit. If the store fails, the transaction rolls back and the rows are
 * claimed again later, so a Redis outage (or a crash between a mutation's commit and its
 * write-through) delays invalidation but never loses it.
 */
import type { Db } from '../../db/client.js';
import { classifyDatabaseError, DatabaseUnavailableError } from '../../db/errors.js';
import { EVERYTHING, type OutboxEvent, type OutboxRepository } from '../../db/outbox-repository.js';
import type { Dependency } from '../../observability/availability.js';
import type { Logger } from '../../observability/logger.js';
import type { EntitySpecs } from '../entities/specs.js';
import type { EntryFactory } from '../entities/entries.js';
import { encodeEvents, isCachedEntity, type InvalidationEvent } from '../events/invalidation-events.js';
import type { CacheKeys } from '../entities/keys.js';
import type { CacheStore } from '../store/contract.js';
import { isStoreOutage } from '../store/errors.js';
import { invalidateAll } from './purge.js';

export interface OutboxRelayOptions {
  readonly db: Db;
  readonly outbox: OutboxRepository;
  readonly store: CacheStore;
  readonly keys: CacheKeys;
  readonly specs: EntitySpecs;
  readonly entries: EntryFactory;
  readonly logger: Logger;
  /** Pause between polls when the backlog is empty, ms (OUTBOX_POLL_INTERVAL_MS). */
  readonly intervalMs: number;
  /** Rows per claim. @default 200 */
  readonly batchSize?: number;
  /** Longest pause after repeated failures, ms (the pause doubles from `intervalMs`). @default 5000 */
  readonly maxBackoffMs?: number;
  /** Published rows older than this are deleted, ms. @default 3_600_000 (1 h) */
  readonly retentionMs?: number;
  /** Called after a batch is applied and published. */
  readonly onApplied?: (events: readonly InvalidationEvent[]) => void;
  /** Called when a run fails (it will be retried), with the dependency whose outage failed it. */
  readonly onError?: (error: unknown, outage: Dependency | undefined) => void;
  /** Called after a run that succeeded: PostgreSQL answered (and Redis, if there was work). */
  readonly onRun?: () => void;
}

export interface OutboxRelay {
  /** Starts polling in the background. */
  start(): void;
  /** Stops polling; resolves once a batch in progress has finished. */
  stop(): Promise<void>;
  /** Claims, applies and publishes one batch now; returns the number of rows it published. */
  runOnce(): Promise<number>;
  /** Runs batches until the backlog is empty (rows other relays hold right now excepted). */
  drain(): Promise<void>;
}

const PRUNE_EVERY_MS = 60_000;

export function createOutboxRelay(options: OutboxRelayOptions): OutboxRelay {
  const { db, outbox, store, keys, specs, entries, logger } = options;
  const { intervalMs } = options;
  const batchSize = options.batchSize ?? 200;
  const maxBackoffMs = options.maxBackoffMs ?? 5000;
  const retentionMs = options.retentionMs ?? 3_600_000;

  let running = false;
  let loop: Promise<void> | undefined;
  let wake: (() => void) | undefined;
  let lastPrune = 0;

  async function runOnce(): Promise<number> {
    const { claimed, applied } = await db.transaction(async (txAny) => {
      const tx = txAny as unknown as Db;
      const rows = await outbox.claimUnpublished(tx, batchSize);
      if (rows.length === 0) return { claimed: 0, applied: [] };
      const events = toEvents(rows);
      const all = rows.some((row) => row.entity === EVERYTHING);
      // A change that named no row (the seed): every cached value, and every fill in flight, goes.
      if (all) await invalidateAll({ store, keys, entries });
      if (events.length > 0) {
        // Fenced: a tombstone never replaces a newer value, so a duplicate or late event is harmless.
        await store.setMany(events.map((e) => entries.tombstone(specs[e.entity].keyOf(e.id), e.version)));
      }
      if (events.length > 0 || all) await store.publish(keys.eventsChannel, encodeEvents(events, { all }));
      await outbox.markPublished(
        tx,
        rows.map((r) => r.id),
      );
      return { claimed: rows.length, applied: events };
    });
    if (applied.length > 0) options.onApplied?.(applied);
    // Rows, not events: a full batch holding a row of an unknown entity (published, skipped) still
    // means more may be waiting. Counting events made drain() stop early with rows left, and the
    // breaker, which closes after drain(), close before their tombstones were applied.
    // test/write-path/outbox-relay.test.ts, "drain() does not stop early …".
    return claimed;
  }

  function toEvents(rows: readonly OutboxEvent[]): InvalidationEvent[] {
    const events: InvalidationEvent[] = [];
    for (const row of rows) {
      if (row.entity === EVERYTHING) continue;
      // A row this build does not know (written by a newer schema) is published-and-skipped rather
      // than retried forever; the newer instances handle it.
      if (!isCachedEntity(row.entity)) {
        logger.warn({ entity: row.entity, outboxId: row.id }, 'skipping outbox row of an unknown entity');
        continue;
      }
      events.push({ entity: row.entity, id: row.entityId, version: Number(row.version) });
    }
    return events;
  }

  async function pruneIfDue(): Promise<void> {
    if (Date.now() - lastPrune < PRUNE_EVERY_MS) return;
    lastPrune = Date.now();
    const pruned = await outbox.prunePublished(db, retentionMs);
    if (pruned > 0) logger.debug({ pruned }, 'pruned published outbox rows');
  }

  async function run(): Promise<void> {
    let failures = 0;
    while (running) {
      let pause = intervalMs;
      try {
        const published = await runOnce();
        await pruneIfDue();
        failures = 0;
        options.onRun?.();
        // A full batch means more is waiting: go again at once.
        if (published >= batchSize) pause = 0;
      } catch (error) {
        failures += 1;
        pause = Math.min(maxBackoffMs, intervalMs * 2 ** failures);
        const outage = outageOf(error);
        options.onError?.(error, outage);
        // An outage is logged once, where it begins and ends (observability/availability.ts); a run
        // that failed for any other reason is a bug worth a line each time.
        logger[outage ? 'debug' : 'warn'](
          { err: error, failures, retryInMs: pause },
          'outbox relay run failed; will retry',
        );
      }
      if (running && pause > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, pause);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = undefined;
      }
    }
  }

  return {
    start() {
      if (running) return;
      running = true;
      loop = run();
    },
    async stop() {
      running = false;
      wake?.();
      await loop;
      loop = undefined;
    },
    runOnce,
    async drain() {
      while ((await runOnce()) >= batchSize) {
        // A full batch: more may be waiting.
      }
    },
  };
}

function outageOf(error: unknown): Dependency | undefined {
  if (classifyDatabaseError(error) instanceof DatabaseUnavailableError) return 'postgres';
  if (isStoreOutage(error)) return 'redis';
  return undefined;
}
