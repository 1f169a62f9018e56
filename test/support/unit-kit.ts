/**
 * Small tools for the component tests, which build one part of the cache directly instead of going
 * through HTTP: a clock the test moves by hand, a pause the test opens when it wants, a store wrapper
 * that records every call that reaches the store (and can hold one), a logger whose lines the test
 * can read, and a seeded database whose loads a test can count and hold. None of them changes what the part under test does; they only let a test see it, or make
 * an interleaving happen on purpose.
 */
import type { DestinationStream } from 'pino';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { createCacheKeys, type CacheKeys } from '../../src/cache/entities/keys.js';
import type { CacheStore } from '../../src/cache/store/contract.js';
import { STORE_CALLS, forwardStore, type StoreCall } from '../../src/cache/store/layers/forward.js';
import { loadConfig, type CacheConfig } from '../../src/config.js';
import {
  createRepositories,
  type BeforeQueryHook,
  type Repositories,
  type RepositoryQuery,
} from '../../src/db/repositories.js';
import { seedDatabase } from '../../src/db/seed.js';
import { createLogger, type Logger } from '../../src/observability/logger.js';
import { createTestDatabase, type TestDatabase } from './database.js';
import { uniquePrefix } from './redis.js';

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
    case 'setDependent':
      return [(first as { key: string }).key];
    case 'setMany':
    case 'fillMany':
      return (first as readonly { key: string }[]).map((w) => w.key);
    case 'getMany':
    case 'ttlMany':
    case 'acquireLocks':
    case 'releaseLocks':
      return [...(first as readonly string[])];
    case 'getDependent':
    case 'onFill':
    case 'publish':
    case 'subscribe':
    case 'scanKeys':
    case 'purgePrefix':
      return [first as string];
    case 'close':
    case 'invalidateDependents':
      return [];
  }
}

/** What a component test of the read path works on: see `readPathFixture`. */
export interface ReadPathFixture {
  /** The configured defaults (1 h TTL, 60 s negative TTL, 300 s grace), as production has them. */
  readonly config: CacheConfig;
  readonly keys: CacheKeys;
  readonly logger: Logger;
  /** Every SQL statement the repositories ran, with the ids it asked for, in order; emptied after each test. */
  readonly loads: { query: RepositoryQuery; ids: number[] }[];
  /** Set by a test to hold (or fail) a load before it runs, or after it read its rows; reset after each test. */
  readonly hooks: { before?: BeforeQueryHook; after?: BeforeQueryHook };
  /** The seeded test database, once the file's `beforeAll` has run. */
  readonly testDb: TestDatabase;
  /** Repositories over it that record `loads` and run `hooks`. */
  readonly repositories: Repositories;
}

/**
 * A database of the file's own, seeded with `users` users (one post each), and repositories over it
 * that log every load and let a test hold one; a cache prefix of the file's own. The database is
 * dropped after the file.
 */
export function readPathFixture(label: string, users: number): ReadPathFixture {
  const prefix = uniquePrefix(label);
  const loads: ReadPathFixture['loads'] = [];
  const hooks: ReadPathFixture['hooks'] = {};
  let testDb: TestDatabase | undefined;
  let repositories: Repositories | undefined;
  beforeAll(async () => {
    testDb = await createTestDatabase(label);
    await seedDatabase(testDb.database.db, { users, postsPerUser: 1, announce: false });
    repositories = createRepositories(testDb.database.db, {
      beforeQuery: async (query, ids) => {
        loads.push({ query, ids: [...ids] });
        await hooks.before?.(query, ids);
      },
      afterQuery: async (query, ids) => {
        await hooks.after?.(query, ids);
      },
    });
  });
  afterEach(() => {
    loads.length = 0;
    delete hooks.before;
    delete hooks.after;
  });
  afterAll(async () => {
    await testDb?.drop();
  });
  const opened = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error(`${label}: the fixture is used before its beforeAll ran`);
    return value;
  };
  return {
    config: loadConfig({ CACHE_PREFIX: prefix, LOG_LEVEL: 'silent' }).cache,
    keys: createCacheKeys(prefix),
    logger: createLogger('silent'),
    loads,
    hooks,
    get testDb() {
      return opened(testDb);
    },
    get repositories() {
      return opened(repositories);
    },
  };
}
