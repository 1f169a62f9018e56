/**
 * Per-request figures that code deep below the resolvers contributes to without being handed the
 * request: the drizzle logger counts SQL statements, the instrumented store counts round trips.
 * AsyncLocalStorage carries the current request's `RequestStats` through DataLoader's batch
 * scheduling (nextTick / promise jobs keep the async context), so a statement is counted against the
 * request whose resolver caused it, not against whatever else the process is doing.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';

export interface RequestStats {
  /** Correlates this request's log lines (from `x-request-id`, or generated). */
  requestId: string;
  /** `query`, `mutation`, `batch`… once known; labels the request's duration metric and log line. */
  operation: string;
  /** SQL statements sent on behalf of this request. */
  sqlStatements: number;
  /** Milliseconds this request spent waiting on PostgreSQL. */
  dbMs: number;
  /** Round trips to the cache store on behalf of this request. */
  storeRoundTrips: number;
  /** Milliseconds this request spent waiting on the cache store. */
  storeMs: number;
}

export function createRequestStats(requestId: string = randomUUID()): RequestStats {
  return { requestId, operation: 'none', sqlStatements: 0, dbMs: 0, storeRoundTrips: 0, storeMs: 0 };
}

const scope = new AsyncLocalStorage<RequestStats>();

export function runInRequestScope<T>(stats: RequestStats, fn: () => T): T {
  return scope.run(stats, fn);
}

/** The stats of the request the caller runs on behalf of, if any (startup work and the relay have none). */
export function currentRequestStats(): RequestStats | undefined {
  return scope.getStore();
}

/** Runs `fn` and adds its wall time to the current request's `field`. */
export async function timed<T>(field: 'dbMs' | 'storeMs', fn: () => Promise<T>): Promise<T> {
  const stats = scope.getStore();
  if (stats === undefined) return fn();
  const start = performance.now();
  try {
    return await fn();
  } finally {
    stats[field] += performance.now() - start;
  }
}
