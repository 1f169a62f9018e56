/**
 * Small tools for the component tests, which build one part of the cache directly instead of going
 * through HTTP: a clock the test moves by hand, a pause the test opens when it wants, a store wrapper
 * that records every call that reaches the store (and can hold one), and a logger whose lines the test
 * can read. None of them changes what the part under test does; they only let a test see it, or make
 * an interleaving happen on purpose.
 */
import type { DestinationStream } from 'pino';
import type { CacheStore } from '../../src/cache/store/contract.js';
import { STORE_CALLS, forwardStore, type StoreCall } from '../../src/cache/store/layers/forward.js';
import { createLogger, type Logger } from '../../src/observability/logger.js';

/** Epoch ms the fake clocks start at (2026-01-01), far from 0 so that `staleAt` arithmetic is realistic. */
export const CLOCK_START = 1_767_225_600_000;

export interface FakeClock {
  /** The current fake time, epoch ms: pass as the `now` option. */
  readonly now: () => number;
  advance(ms: number): void;
}

export function fakeClock(start = CLOCK_START): FakeClock {
  let t = start;
  return {
    now: () => t,
    advance(ms) {
      t += ms;
    },
  };
}

export interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * A point where one side of a race stops until the test lets it go. The paused side awaits `wait()`;
 * the test awaits `reached` (so it acts while the other side is provably inside), then calls `open()`.
 */
export interface Gate {
  /** Resolves once some caller is waiting at the gate. */
  readonly reached: Promise<void>;
  /** What the paused side awaits: marks the gate reached, then waits until `open()`. */
  wait(): Promise<void>;
  open(): void;
}

export function gate(): Gate {
  const reached = deferred();
  const opened = deferred();
  return {
    reached: reached.promise,
    async wait() {
      reached.resolve();
      await opened.promise;
    },
    open: () => opened.resolve(),
  };
}

/** One call that reached the store: the method and the keys (or channel) it named. */
export interface StoreCallRecord {
  readonly method: StoreCall;
  readonly keys: readonly string[];
}

export interface StoreSpy {
  /** Every call that went through, in the order they were made. */
  readonly calls: readonly StoreCallRecord[];
  /** The methods called, in order: a compact picture of a code path's round trips. */
  methods(): StoreCall[];
  count(method: StoreCall): number;
  reset(): void;
}

export interface SpyStore extends CacheStore {
  readonly spy: StoreSpy;
}

export interface SpyStoreOptions {
  /**
   * Runs before a call is passed on (after it was recorded); the call waits for it. Lets a test hold
   * one call, e.g. a relay's `setMany` inside its transaction.
   */
  readonly before?: (method: StoreCall, keys: readonly string[]) => Promise<void> | void;
}

/** A thin wrapper that records every call it passes to `inner`; it changes no answer. */
export function spyStore(inner: CacheStore, options: SpyStoreOptions = {}): SpyStore {
  const calls: StoreCallRecord[] = [];
  const overrides: Record<string, unknown> = {};
  for (const method of STORE_CALLS) {
    if (method === 'close') continue;
    const call = inner[method] as (...args: unknown[]) => Promise<unknown>;
    overrides[method] = async (...args: unknown[]) => {
      const keys = keysOf(method, args[0]);
      calls.push({ method, keys });
      await options.before?.(method, keys);
      return call.apply(inner, args);
    };
  }
  const spy: StoreSpy = {
    calls,
    methods: () => calls.map((c) => c.method),
    count: (method) => calls.filter((c) => c.method === method).length,
    reset: () => void calls.splice(0),
  };
  return Object.assign(forwardStore(inner, overrides as Parameters<typeof forwardStore>[1]), { spy });
}

export interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly [field: string]: unknown;
}

/** A real (pino) logger whose lines are kept for the test to read. */
export function capturingLogger(level = 'debug'): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const destination: DestinationStream = {
    write(line: string) {
      lines.push(JSON.parse(line) as LogLine);
    },
  };
  return { logger: createLogger(level, destination), lines };
}

// Private:

function keysOf(method: StoreCall, first: unknown): readonly string[] {
  switch (method) {
    case 'setMany':
      return (first as readonly { key: string }[]).map((w) => w.key);
    case 'getMany':
    case 'ttlMany':
    case 'acquireLocks':
    case 'releaseLocks':
      return [...(first as readonly string[])];
    case 'onFill':
    case 'publish':
    case 'subscribe':
    case 'scanKeys':
    case 'purgePrefix':
      return [first as string];
    case 'close':
      return [];
  }
}
