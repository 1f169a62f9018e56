/**
 * The metrics, shaped as the hooks the rest of the system offers: the read path's events, the
 * repositories' query observer, the breaker's transitions and the relay's progress. The composition
 * root plugs these in, so the cache and the database report what happened without importing the
 * metrics (or knowing that Prometheus exists), and each label is written here once.
 */
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
  onQuery(query: string, seconds: number, result: 'ok' | 'error' | 'unavailable'): void;
  /** The circuit breaker moved; an outage's start and end are worth a warning line each. */
  onBreakerTransition(from: BreakerStateName, to: BreakerStateName): void;
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
    onError(error: unknown): void;
  };
}

export function createMetricHooks(metrics: Metrics, logger: Logger): MetricHooks {
  return {
    read: {
      lookup: (entity, result, count) => metrics.lookups.inc({ entity, result }, count),
      lockWait: (entity, keys) => metrics.lockWaits.inc({ entity }, keys),
      lockWaitTimeout: (entity, keys) => metrics.lockWaitTimeouts.inc({ entity }, keys),
      storeError: (_error, operation) => metrics.storeErrors.inc({ operation }),
    },
    onQuery(query, seconds, result) {
      metrics.sqlStatements.inc({ query, result });
      metrics.sqlDuration.observe({ query }, seconds);
    },
    onBreakerTransition(from, to) {
      logger.warn({ from, to }, `cache circuit ${to}`);
      metrics.breakerMoved(to);
    },
    onPropagation: (outcome) => metrics.writePropagation.inc({ outcome }),
    monitor: {
      onCheck: (entity, count) => metrics.consistencyChecks.inc({ entity }, count),
      onViolation: ({ entity }) => metrics.consistencyViolations.inc({ entity }),
    },
    relay: {
      onApplied: (events) => metrics.relayPublished.inc(events.length),
      onError: () => metrics.relayErrors.inc(),
    },
  };
}
