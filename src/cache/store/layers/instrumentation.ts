/**
 * Wraps a store so that every call is counted as one round trip against the current request and its
 * wait added to the request's cache time (Server-Timing `cache;dur`). Counting here, at the store
 * boundary, is what lets a test assert "a warm request makes exactly as many round trips as it has
 * loader batches" without trusting the engine's own bookkeeping.
 */
import { currentRequestStats } from '../../../observability/request-scope.js';
import type { CacheStore } from '../contract.js';

export function instrumentStore(inner: CacheStore): CacheStore {
  const measure =
    <A extends unknown[], R>(call: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      const stats = currentRequestStats();
      if (stats === undefined) return call(...args);
      stats.storeRoundTrips += 1;
      const start = performance.now();
      try {
        return await call(...args);
      } finally {
        stats.storeMs += performance.now() - start;
      }
    };

  return {
    tier: inner.tier,
    getMany: measure((keys) => inner.getMany(keys)),
    setMany: measure((writes) => inner.setMany(writes)),
    ttlMany: measure((keys) => inner.ttlMany(keys)),
    acquireLocks: measure((keys, token, ttlMs) => inner.acquireLocks(keys, token, ttlMs)),
    releaseLocks: measure((keys, token) => inner.releaseLocks(keys, token)),
    onFill: measure((key, listener) => inner.onFill(key, listener)),
    publish: (channel, message) => inner.publish(channel, message),
    subscribe: (channel, listener) => inner.subscribe(channel, listener),
    ...(inner.onReconnect && { onReconnect: inner.onReconnect.bind(inner) }),
    scanKeys: (prefix, onBatch) => inner.scanKeys(prefix, onBatch),
    purgePrefix: (prefix) => inner.purgePrefix(prefix),
    close: () => inner.close(),
  };
}
