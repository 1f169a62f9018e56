/**
 * Prometheus metrics, one registry per app instance (two instances in one process — as in the
 * tests — never share or collide). The names are a contract with dashboards (docs/grafana-dashboard.json):
 * rename one and the dashboard goes blank.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Dependency } from './availability.js';
import type { LookupOutcome } from './cache-report.js';

export const LOOKUP_RESULTS: readonly LookupOutcome[] = [
  'hit',
  'miss',
  'negative_hit',
  'collapsed',
  'stale',
  'bypass',
];
const DEPENDENCIES: readonly Dependency[] = ['postgres', 'redis'];
const BREAKER_STATES = { closed: 0, 'half-open': 1, open: 2 } as const;
export type BreakerStateName = keyof typeof BREAKER_STATES;

export interface Metrics {
  readonly registry: Registry;
  readonly lookups: Counter<'entity' | 'result'>;
  /** Queries the response tier was asked for: `hit` (a stored answer served), `miss`, `stale`. */
  readonly responseAnswers: Counter<'result'>;
  /** Of the response tier's hits, those served from a copy kept in process (L1 on): no round trip. */
  readonly responseKeptHits: Counter;
  readonly lockWaits: Counter<'entity'>;
  readonly lockWaitTimeouts: Counter<'entity'>;
  readonly sqlStatements: Counter<'query' | 'result'>;
  readonly sqlDuration: Histogram<'query'>;
  readonly storeErrors: Counter<'operation'>;
  readonly breakerTransitions: Counter<'to'>;
  readonly relayPublished: Counter;
  readonly relayErrors: Counter;
  readonly consistencyChecks: Counter<'entity'>;
  readonly consistencyViolations: Counter<'entity'>;
  /** How mutations' cache sides ended: written through, applied by a relay in time, or pending. */
  readonly writePropagation: Counter<'outcome'>;
  readonly httpDuration: Histogram<'operation' | 'status'>;
  /** Calls that failed because PostgreSQL or Redis was unreachable, and outages begun, by dependency. */
  readonly dependencyFailures: Counter<'dependency'>;
  readonly dependencyOutages: Counter<'dependency'>;
  /** Records whether a dependency is reachable, as the traffic sees it (observability/availability.ts). */
  dependencyMoved(dependency: Dependency, available: boolean): void;
  /** Records the breaker's new state (0 closed, 1 half-open, 2 open) and counts the transition. */
  breakerMoved(to: BreakerStateName): void;
}

export interface MetricsDeps {
  /** Read at scrape time: unpublished outbox rows and the age of the oldest, seconds. */
  readonly outboxBacklog: () => Promise<{ count: number; oldestAgeSeconds: number }>;
}

export function createMetrics({ outboxBacklog }: MetricsDeps): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];

  const lookups = new Counter({
    name: 'cacheside_cache_lookups_total',
    help: 'Entity lookups after DataLoader de-duplication, by entity and result',
    labelNames: ['entity', 'result'] as const,
    registers,
  });
  const responseAnswers = new Counter({
    name: 'cacheside_response_answers_total',
    help: 'Queries the response tier was consulted for: hit (stored answer served), miss (none stored), stale (something it read had changed)',
    labelNames: ['result'] as const,
    registers,
  });
  const responseKeptHits = new Counter({
    name: 'cacheside_response_kept_hits_total',
    help: "Of the response tier's hits, those served from an answer kept in process on L1's word (L1 on), with no round trip",
    registers,
  });
  const lockWaits = new Counter({
    name: 'cacheside_cache_lock_waits_total',
    help: "Keys a request waited on because another caller held the key's stampede lock",
    labelNames: ['entity'] as const,
    registers,
  });
  const lockWaitTimeouts = new Counter({
    name: 'cacheside_cache_lock_wait_timeouts_total',
    help: 'Keys whose waiter gave up after CACHE_LOCK_WAIT_MS and loaded from PostgreSQL itself',
    labelNames: ['entity'] as const,
    registers,
  });
  const sqlStatements = new Counter({
    name: 'cacheside_db_queries_total',
    help: 'SQL reads by query and result (ok, error, unavailable: PostgreSQL unreachable, failed fast)',
    labelNames: ['query', 'result'] as const,
    registers,
  });
  const sqlDuration = new Histogram({
    name: 'cacheside_db_query_duration_seconds',
    help: 'Duration of SQL reads by query',
    labelNames: ['query'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers,
  });
  const storeErrors = new Counter({
    name: 'cacheside_cache_store_errors_total',
    help: 'Failed cache store calls (Redis down, slow or refused by the breaker) by operation',
    labelNames: ['operation'] as const,
    registers,
  });
  const breakerState = new Gauge({
    name: 'cacheside_cache_breaker_state',
    help: 'Circuit breaker in front of the store: 0 closed, 1 half-open, 2 open',
    registers,
  });
  const breakerTransitions = new Counter({
    name: 'cacheside_cache_breaker_transitions_total',
    help: 'Circuit breaker transitions by the state entered',
    labelNames: ['to'] as const,
    registers,
  });
  const relayPublished = new Counter({
    name: 'cacheside_outbox_events_published_total',
    help: 'Invalidation events the outbox relay applied and published',
    registers,
  });
  const relayErrors = new Counter({
    name: 'cacheside_outbox_relay_errors_total',
    help: 'Failed outbox relay runs (retried with backoff)',
    registers,
  });
  // Read when scraped: the database's numbers, not a guess. A failed read keeps the last value (the
  // database being down shows in /ready and in the query counters).
  const fromBacklog = (pick: (b: { count: number; oldestAgeSeconds: number }) => number) =>
    async function collect(this: Gauge) {
      try {
        this.set(pick(await outboxBacklog()));
      } catch {
        // keep the last value
      }
    };
  new Gauge({
    name: 'cacheside_outbox_backlog',
    help: 'Unpublished outbox rows',
    registers,
    collect: fromBacklog((b) => b.count),
  });
  new Gauge({
    name: 'cacheside_outbox_oldest_age_seconds',
    help: 'Age of the oldest unpublished outbox row (0 when none): how far invalidation lags',
    registers,
    collect: fromBacklog((b) => b.oldestAgeSeconds),
  });
  const consistencyChecks = new Counter({
    name: 'cacheside_consistency_checks_total',
    help: 'Cached entries (and pages, and stored answers) the consistency monitor compared with PostgreSQL, by entity',
    labelNames: ['entity'] as const,
    registers,
  });
  const consistencyViolations = new Counter({
    name: 'cacheside_consistency_violations_total',
    help: 'Cached entries still served older than their row (pages of user ids: with other ids than PostgreSQL; stored answers: over a dependency older than its row) a grace after the monitor saw them (expected: 0)',
    labelNames: ['entity'] as const,
    registers,
  });
  const writePropagation = new Counter({
    name: 'cacheside_write_propagation_total',
    help: 'Mutations by how their cache side ended: written (write-through), applied (by a relay while the mutation waited), pending (returned before any relay applied it)',
    labelNames: ['outcome'] as const,
    registers,
  });
  const httpDuration = new Histogram({
    name: 'cacheside_http_request_duration_seconds',
    help: 'GraphQL HTTP request duration by operation type and status',
    labelNames: ['operation', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers,
  });

  const dependencyAvailable = new Gauge({
    name: 'cacheside_dependency_available',
    help: 'Whether the traffic finds the dependency reachable (1) or is in an outage (0): postgres, redis',
    labelNames: ['dependency'] as const,
    registers,
  });
  const dependencyFailures = new Counter({
    name: 'cacheside_dependency_failures_total',
    help: 'Calls that failed because the dependency was unreachable, refused or too slow (and Redis connection errors)',
    labelNames: ['dependency'] as const,
    registers,
  });
  const dependencyOutages = new Counter({
    name: 'cacheside_dependency_outages_total',
    help: 'Outages begun (each logged once as it begins and once as it ends), by dependency',
    labelNames: ['dependency'] as const,
    registers,
  });

  for (const dependency of DEPENDENCIES) {
    dependencyAvailable.set({ dependency }, 1);
    dependencyFailures.inc({ dependency }, 0);
    dependencyOutages.inc({ dependency }, 0);
  }
  for (const result of LOOKUP_RESULTS) lookups.inc({ entity: 'user', result }, 0);
  for (const result of ['hit', 'miss', 'stale']) responseAnswers.inc({ result }, 0);
  for (const outcome of ['written', 'applied', 'pending']) writePropagation.inc({ outcome }, 0);
  for (const entity of ['user', 'profile', 'post', 'userPosts', 'userDirectory', 'userPage', 'response'])
    consistencyViolations.inc({ entity }, 0);
  breakerState.set(BREAKER_STATES.closed);

  return {
    registry,
    lookups,
    responseAnswers,
    responseKeptHits,
    lockWaits,
    lockWaitTimeouts,
    sqlStatements,
    sqlDuration,
    storeErrors,
    breakerTransitions,
    relayPublished,
    relayErrors,
    consistencyChecks,
    consistencyViolations,
    writePropagation,
    httpDuration,
    dependencyFailures,
    dependencyOutages,
    dependencyMoved(dependency, available) {
      dependencyAvailable.set({ dependency }, available ? 1 : 0);
      if (!available) dependencyOutages.inc({ dependency });
    },
    breakerMoved(to) {
      breakerState.set(BREAKER_STATES[to]);
      breakerTransitions.inc({ to });
    },
  };
}
