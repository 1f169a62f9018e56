/**
 * Waiting for other callers' fills. A waiter subscribes to the fill notifications of the keys it
 * does not hold *before* it re-reads them: a fill that lands between a re-read and a subscription
 * would otherwise go unnoticed until the deadline. A notification that arrives between the re-read
 * and the wait is kept (`signalled`), so the wait that follows returns at once instead of sleeping.
 */
import type { CacheStore, Unsubscribe } from '../store/contract.js';

export interface FillWatch {
  /** Subscribes to the fills of the keys not watched yet; resolves once the server confirmed. Returns those keys. */
  watch(keys: readonly string[]): Promise<string[]>;
  /** Forgets earlier notifications: called right before a re-read, which sees whatever they announced. */
  rearm(): void;
  /** Resolves on the next notification since `rearm()` (at once if one came), or after `ms`. */
  wait(ms: number): Promise<void>;
  /** Unsubscribes from everything watched. */
  close(): Promise<void>;
}

export function createFillWatch(store: CacheStore): FillWatch {
  const watched = new Set<string>();
  const subscriptions: Unsubscribe[] = [];
  let signalled = false;
  let wake: () => void = () => {};
  const onFill = () => {
    signalled = true;
    wake();
  };

  return {
    async watch(keys) {
      const fresh = keys.filter((key) => !watched.has(key));
      subscriptions.push(...(await Promise.all(fresh.map((key) => store.onFill(key, onFill)))));
      for (const key of fresh) watched.add(key);
      return fresh;
    },
    rearm() {
      signalled = false;
    },
    async wait(ms) {
      if (signalled) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ms);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = () => {};
    },
    async close() {
      await Promise.all(subscriptions.map((unsubscribe) => unsubscribe().catch(() => {})));
    },
  };
}
