/**
 * A circuit breaker in front of the store. While Redis is down or hung, every call would otherwise
 * wait out the command timeout before the read falls back to PostgreSQL; the breaker notices the
 * failures and then fails calls at once, until a probe shows Redis is back.
 *
 *   closed ──(failureThreshold consecutive outage errors)──▶ open
 *   open ──(openMs elapsed)──▶ half-open: one probe, every other call still fails fast (but
 *                                          write-throughs, which only make Redis newer)
 *   half-open ──probe ok and `beforeClose` done, no trip meanwhile──▶ closed
 *   half-open ──probe fails──▶ open (openMs doubles);  ──tripped during the probe──▶ open
 *
 * `beforeClose` is how recovery stays correct: writes committed during the outage left outbox rows
 * whose tombstones never reached Redis, so Redis still holds the old values. The breaker closes only
 * after the relay has applied them; until then reads keep going to PostgreSQL.
 *
 * Only outages trip it (unavailable, timeout): a reply error is a bug, and skipping Redis would not
 * fix it.
 */
import type { CacheStore } from '../contract.js';
import { StoreUnavailableError, isCacheStoreError, type CacheStoreError } from '../errors.js';
import { aroundCalls, forwardStore } from './forward.js';

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface CircuitBreakerOptions {
  /** Consecutive outage errors that open the circuit. @default 3 */
  readonly failureThreshold?: number;
  /** How long the circuit stays open before a probe, ms; doubles after a failed probe. @default 500 */
  readonly openMs?: number;
  /** Cap of the doubling `openMs`, ms. @default 5000 */
  readonly maxOpenMs?: number;
  /** Must succeed before the circuit closes (e.g. the relay drains the outbox). */
  readonly beforeClose?: () => Promise<void>;
  readonly onTransition?: (from: BreakerState, to: BreakerState) => void;
  /** @default Date.now */
  readonly now?: () => number;
}

export interface BreakerStore extends CacheStore {
  readonly breaker: {
    readonly state: BreakerState;
    /** Calls refused without reaching the store since creation. */
    readonly shortCircuited: number;
    /**
     * Opens the circuit now. A failed write-through calls it: Redis may still hold the value that
     * write replaced, so reads go to PostgreSQL until the relay has applied the write's tombstone.
     */
    trip(): void;
  };
}

/**
 * Store methods on the request path; pub/sub, maintenance and the reconnect hook go straight
 * through. Releasing a lock is never skipped: a held lock left behind while the circuit is open
 * would make other instances wait its whole TTL (the call fails fast anyway when Redis is down).
 */
const GUARDED = [
  'getMany',
  'setMany',
  'fillMany',
  'setDependent',
  'getDependent',
  'ttlMany',
  'acquireLocks',
  'onFill',
] as const;

export function createCircuitBreaker(inner: CacheStore, options: CircuitBreakerOptions = {}): BreakerStore {
  const threshold = options.failureThreshold ?? 3;
  const baseOpenMs = options.openMs ?? 500;
  const maxOpenMs = options.maxOpenMs ?? 5000;
  const now = options.now ?? Date.now;
  if (!Number.isInteger(threshold) || threshold < 1) {
    throw new RangeError(`failureThreshold must be a positive integer, got ${String(threshold)}`);
  }

  let state: BreakerState = 'closed';
  let failures = 0;
  let openMs = baseOpenMs;
  let openedAt = 0;
  let probing = false;
  let shortCircuited = 0;
  /** Counts `trip()`s: one during a probe means its recovery may predate what tripped it. */
  let trips = 0;
  /** Counts probes begun: the latest is the one that may move the circuit. */
  let probes = 0;

  const moveTo = (next: BreakerState) => {
    if (next === state) return;
    const from = state;
    state = next;
    options.onTransition?.(from, next);
  };
  const open = () => {
    openedAt = now();
    probing = false;
    moveTo('open');
  };
  const refuse = (operation: string): never => {
    shortCircuited += 1;
    throw new StoreUnavailableError(`cache store ${operation} skipped: circuit ${state}`);
  };
  const isOutage = (error: unknown): error is CacheStoreError =>
    isCacheStoreError(error) && error.code !== 'CACHE_STORE_REPLY';

  /**
   * The first call after the open period. With a `beforeClose`, that runs first and is the real probe
   * (the relay reaching Redis): the call itself must not read Redis before the backlog is applied,
   * or it could return a value an outage-time write already replaced.
   */
  async function probe<T>(operation: string, call: () => Promise<T>): Promise<T> {
    probing = true;
    // Only the latest probe moves the circuit: one tripped mid-drain may end after the next has
    // begun (its drain outlasting the open period), and must not reopen the circuit under it.
    const id = ++probes;
    const tripsBefore = trips;
    /** Not Redis failing: the open period stays as it is. */
    let retripped = false;
    try {
      await options.beforeClose?.();
      // Tripped while it ran (a write-through failed, Redis came back again): the drain may have run
      // before what tripped it, so this probe neither reads nor closes the circuit; the next one,
      // after the open period, drains again (test/store/circuit-breaker.test.ts, "a trip during a
      // probe …").
      if (trips !== tripsBefore) {
        retripped = true;
        throw new StoreUnavailableError(`cache store ${operation} skipped: tripped during recovery`);
      }
      const result = await call();
      if (trips !== tripsBefore || id !== probes) return result;
      failures = 0;
      openMs = baseOpenMs;
      probing = false;
      moveTo('closed');
      return result;
    } catch (error) {
      // Tripped: `trip()` opened it already.
      if (id === probes && !retripped) {
        if (isOutage(error)) openMs = Math.min(maxOpenMs, openMs * 2);
        open();
      }
      // Whatever failed (Redis, or PostgreSQL under the relay), to the caller it is the store being
      // unavailable: it goes to PostgreSQL.
      throw isCacheStoreError(error)
        ? error
        : new StoreUnavailableError(`cache store ${operation} skipped: recovery not complete`, {
            cause: error,
          });
    }
  }

  async function guard<T>(operation: string, call: () => Promise<T>): Promise<T> {
    if (state === 'open') {
      if (now() - openedAt < openMs) return refuse(operation);
      moveTo('half-open');
    }
    if (state === 'half-open') {
      // Write-throughs and tombstones go through during the probe: they only ever make Redis newer
      // (fenced), so sending them cannot serve anything stale, and refusing them would trip the
      // circuit again on every probe under write load — it would never close (the test "under write
      // load, a probe still closes …"). One that really fails trips it, through its caller.
      if (probing && operation === 'setMany') return call();
      if (probing) return refuse(operation);
      return probe(operation, call);
    }
    try {
      const result = await call();
      failures = 0;
      return result;
    } catch (error) {
      if (isOutage(error) && ++failures >= threshold) open();
      throw error;
    }
  }

  return Object.assign(forwardStore(inner, aroundCalls(inner, GUARDED, guard)), {
    breaker: {
      get state() {
        return state;
      },
      get shortCircuited() {
        return shortCircuited;
      },
      trip() {
        trips += 1;
        if (state !== 'open') open();
      },
    },
  });
}
