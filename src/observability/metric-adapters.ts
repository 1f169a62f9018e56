/**
 * The metrics, shaped as the hooks the rest of the system offers: the read path's events, the
 * repositories' query observer, the mutations' transactions, the breaker's transitions, the Redis
 * connections' errors and the relay's progress. The composition root plugs these in, so the cache
 * and the database report what happened without importing the metrics (or knowing that Prometheus
 * exists), and each label is written here once. The same outcomes tell whether PostgreSQL and Redis
 * are reachable, which is logged once per change (availability.ts) rather than once per request.
 */
import { createAvailability, type Dependency } from './availability.js';
import type { LookupOutcome } from './cache-report.js';
import type { Logger } from './logger.js';
import type { BreakerStateName, Metrics } from './metrics.js';

export interface MetricHooks {
  /** The read path's events (src/cache/read/read-events.ts). */
  readonly read: {
    lookup(entity: string, outcome: LookupOutcome, count: number): void;
    lockWait(entity: string, keys: number): void;
    lockWaitTimeout(entity: string, keys: number): void;
    storeError(error: unknown, operation: string): void;
  };
  /** Every SQL read: its duration and whether PostgreSQL answered (src/db/repositories.ts `onQuery`). */
  onQuery(query: string, seconds: number, result: QueryResult, error?: unknown): void;
  /** Every mutation's transaction (src/services/create-services.ts). */
  onTransaction(result: QueryResult, error?: unknown): void;
  /** The circuit breaker moved: opening from closed begins a Redis outage, closing ends it. */
  onBreakerTransition(from: BreakerStateName, to: BreakerStateName): void;
  /** A Redis connection reported an error (src/cache/store/from-config.ts). */
  onStoreConnectionError(error: unknown): void;
  /** The consistency monitor's samples and violations (src/cache/monitor/consistency-monitor.ts). */
  readonly monitor: {
    onCheck(entity: string, count: number): void;
    onViolation(violation: { entity: string }): void;
  };
  /** How a mutation's cache side ended (src/cache/write/propagation.ts). */
  onPropagation(outcome: 'written' | 'applied' | 'pending'): void;
  /** The outbox relay's progress (src/cache/write/outbox-relay.ts). */
  readonly relay: {
    onApplied(events: readonly unknown[]): void;
    onError(error: unknown, outage: Dependency | undefined): void;
    onRun(): void;
  };
}

type QueryResult = 'ok' | 'error' | 'unavailable';

/** What the service does while each dependency is down: the outage's warn line says it. */
const MEANWHILE: Record<Dependency, string> = {
  postgres: 'cached reads are served; what needs the database fails with SERVICE_UNAVAILABLE',
  redis: 'the cache is bypassed and reads go to PostgreSQL',
};

export function createMetricHooks(metrics: Metrics, logger: Logger): MetricHooks {
  const track = (dependency: Dependency) =>
    createAvailability({
      dependency,
      logger,
      meanwhile: MEANWHILE[dependency],
      onChange: (available) => metrics.dependencyMoved(dependency, available),
      onFailure: () => metrics.dependencyFailures.inc({ dependency }),
    });
  const postgres = track('postgres');
  const redis = track('redis');
  const answered = (result: QueryResult, error?: unknown) => {
    if (result === 'unavailable') postgres.lost(error);
    else postgres.recovered();
  };

  return {
    read: {
      lookup: (entity, result, count) => metrics.lookups.inc({ entity, result }, count),
      lockWait: (entity, keys) => metrics.lockWaits.inc({ entity }, keys),
      lockWaitTimeout: (entity, keys) => metrics.lockWaitTimeouts.inc({ entity }, keys),
      storeError: (_error, operation) => {
        metrics.storeErrors.inc({ operation });
        redis.failed();
      },
    },
    onQuery(query, seconds, result, error) {
      metrics.sqlStatements.inc({ query, result });
      metrics.sqlDuration.observe({ query }, seconds);
      answered(result, error);
    },
    onTransaction: answered,
    onBreakerTransition(from, to) {
      // Half-open probes and re-openings are the breaker's business; the outage is one state.
      logger.debug({ from, to }, `cache circuit ${to}`);
      metrics.breakerMoved(to);
      if (to === 'open') redis.lost();
      if (to === 'closed') redis.recovered();
    },
    onStoreConnectionError: (error) => redis.lost(error),
    onPropagation: (outcome) => metrics.writePropagation.inc({ outcome }),
    monitor: {
      onCheck: (entity, count) => metrics.consistencyChecks.inc({ entity }, count),
      onViolation: ({ entity }) => metrics.consistencyViolations.inc({ entity }),
    },
    relay: {
      onApplied: (events) => metrics.relayPublished.inc(events.length),
      onError(error, outage) {
        metrics.relayErrors.inc();
        if (outage) (outage === 'postgres' ? postgres : redis).lost(error);
      },
      // A run reads the outbox: PostgreSQL answered.
      onRun: () => postgres.recovered(),
    },
  };
}
