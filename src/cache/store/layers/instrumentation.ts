/**
 * Wraps a store so that every call on the request path is counted as one round trip against the
 * current request and its wait added to the request's cache time (Server-Timing `cache;dur`).
 * Counting here, at the store boundary, is what lets a test assert "a warm request makes exactly as
 * many round trips as it has loader batches" without trusting the engine's own bookkeeping.
 */
import { currentRequestStats } from '../../../observability/request-scope.js';
import type { CacheStore } from '../contract.js';
import { aroundCalls, forwardStore } from './forward.js';

/** The calls a request makes; pub/sub and maintenance belong to no request. */
const MEASURED = [
  'getMany',
  'setMany',
  'fillMany',
  'setDependent',
  'getDependent',
  'ttlMany',
  'acquireLocks',
  'releaseLocks',
  'onFill',
] as const;

export function instrumentStore(inner: CacheStore): CacheStore {
  return forwardStore(
    inner,
    aroundCalls(inner, MEASURED, async (_method, call) => {
      const stats = currentRequestStats();
      if (stats === undefined) return call();
      stats.storeRoundTrips += 1;
      const start = performance.now();
      try {
        return await call();
      } finally {
        stats.storeMs += performance.now() - start;
      }
    }),
  );
}
