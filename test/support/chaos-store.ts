/**
 * A CacheStore that fails on demand, wrapped around a real one (the chaos double of the tests), so a
 * test can show what the engine does when the cache is down or slow without stopping Redis: every
 * read must still be answered from PostgreSQL, and no request may hang.
 *
 * A decision is taken when a method is called, so `failNext(1)` fails exactly the next call even if
 * calls overlap. `close()` always reaches the inner store; returned `Unsubscribe` functions are the
 * inner store's own.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { CacheStore } from '../../src/cache/store/contract.js';
import { StoreTimeoutError, StoreUnavailableError } from '../../src/cache/store/errors.js';
import {
  STORE_CALLS,
  aroundCalls,
  forwardStore,
  type StoreCall,
} from '../../src/cache/store/layers/forward.js';

/** The store calls faults can be aimed at: every one but `close`, which always reaches the inner store. */
export type ChaosMethod = Exclude<StoreCall, 'close'>;
const CHAOS_METHODS = STORE_CALLS.filter((method): method is ChaosMethod => method !== 'close');

export interface ChaosTarget {
  /** Only these methods are affected. @default every method but close */
  readonly methods?: readonly ChaosMethod[];
}

export interface ChaosControls {
  /** Every call fails with `error` until `heal()`. @default a StoreUnavailableError per call */
  failAll(error?: Error, target?: ChaosTarget): void;
  /** The next `n` calls fail with `error`, then calls pass again. */
  failNext(n: number, error?: Error, target?: ChaosTarget): void;
  /**
   * Every call waits `ms` before reaching the inner store. With `timeoutMs`, a wait that would reach
   * it instead rejects with a StoreTimeoutError after `timeoutMs`, as a command timeout does.
   */
  delay(ms: number, options?: ChaosTarget & { readonly timeoutMs?: number }): void;
  /** Removes every fault: failures and delays. */
  heal(): void;
  /** How many calls have failed on purpose so far. */
  readonly injected: number;
}

export interface ChaosStore extends CacheStore {
  readonly chaos: ChaosControls;
}

export function createChaosStore(inner: CacheStore): ChaosStore {
  let failure: { error?: Error; remaining: number; methods?: readonly ChaosMethod[] } | undefined;
  let latency: { ms: number; timeoutMs?: number; methods?: readonly ChaosMethod[] } | undefined;
  let injected = 0;

  const aims = (methods: readonly ChaosMethod[] | undefined, method: ChaosMethod) =>
    methods === undefined || methods.includes(method);

  async function run<T>(method: ChaosMethod, body: () => Promise<T>): Promise<T> {
    let error: Error | undefined;
    if (failure && failure.remaining > 0 && aims(failure.methods, method)) {
      failure.remaining -= 1;
      error = failure.error ?? new StoreUnavailableError(`cache store ${method} failed: chaos, on purpose`);
    }
    const wait = latency && aims(latency.methods, method) ? latency : undefined;
    if (wait) {
      if (wait.timeoutMs !== undefined && wait.ms >= wait.timeoutMs) {
        await sleep(wait.timeoutMs);
        error ??= new StoreTimeoutError(
          `cache store ${method} failed: chaos, no answer within ${wait.timeoutMs} ms`,
        );
      } else {
        await sleep(wait.ms);
      }
    }
    if (error) {
      injected += 1;
      throw error;
    }
    return body();
  }

  const chaos: ChaosControls = {
    failAll(error, target) {
      failure = { remaining: Number.POSITIVE_INFINITY, ...(error && { error }), ...target };
    },
    failNext(n, error, target) {
      if (!Number.isSafeInteger(n) || n < 0)
        throw new TypeError(`failNext needs a count >= 0, got ${String(n)}`);
      failure = { remaining: n, ...(error && { error }), ...target };
    },
    delay(ms, options) {
      if (!Number.isFinite(ms) || ms < 0) throw new TypeError(`delay needs ms >= 0, got ${String(ms)}`);
      latency = { ms, ...options };
    },
    heal() {
      failure = undefined;
      latency = undefined;
    },
    get injected() {
      return injected;
    },
  };

  return Object.assign(forwardStore(inner, aroundCalls(inner, CHAOS_METHODS, run)), { chaos });
}
