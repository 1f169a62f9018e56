/**
 * Two app instances, A and B, that share one PostgreSQL database and one Redis key prefix, as two
 * servers would (`twoInstances`), and the hooks that pause a reader of A with old rows or tell when
 * it has looked at the cache. The consistency tests of test/write-path build one pair per file, so
 * each has its own database and prefix; test/support/consistency-{api,sql,redis}.ts have the means to watch them.
 */
import { afterAll, beforeAll } from 'vitest';
import type { CacheStore } from '../../src/cache/store/contract.js';
import { forwardStore } from '../../src/cache/store/layers/forward.js';
import type { BeforeQueryHook, RepositoryOptions, RepositoryQuery } from '../../src/db/repositories.js';
import { createTestApp, type TestApp } from './app.js';
import { storeOf } from './redis.js';

// Two instances

export interface InstancePair {
  readonly a: TestApp;
  readonly b: TestApp;
  /** Closes both instances; the one that owns them drops the database and purges the prefix. */
  close(): Promise<void>;
}

/** The `manual` pair: A can be paused mid-read and watched as it reads the cache. */
export interface ManualPair extends InstancePair {
  /** A's store: its own Redis connections (as another server would have), behind a watcher. */
  readonly aStore: WatchedStore;
  /** Installs a pause for A's next SQL read of `query` that asks for `id` (one pause at a time). */
  pauseA(query: RepositoryQuery, id: number): Pause;
  /** Releases and forgets A's pause, if any. */
  releasePause(): void;
}

interface PairOptions {
  /** Names the database and key prefix. */
  readonly label: string;
  /** Demo rows: users 1..`users` with `postsPerUser` posts each. */
  readonly seed: { users: number; postsPerUser: number };
}

export interface ManualPairOptions extends PairOptions {
  /**
   * Relays stopped, driven with `relay.runOnce()`, so that every invalidation happens exactly when a
   * test says.
   */
  readonly relays: 'manual';
}

export interface LivePairOptions extends PairOptions {
  /** Relays polling every OUTBOX_POLL_INTERVAL_MS, as in production. */
  readonly relays: 'live';
  /** Environment of both instances (OUTBOX_POLL_INTERVAL_MS, CACHE_TTL_SECONDS, …). */
  readonly env: Readonly<Record<string, string>>;
  /** Repository hooks of both instances. */
  readonly repositoryOptions?: RepositoryOptions;
}

/**
 * Builds A and B on a fresh, seeded database and a fresh prefix. `manual`: B owns the database and
 * A shares it through a watched store of its own, with a pause hook after its SQL reads. `live`: A
 * owns it, and both run their relays.
 */
export function twoInstances(options: ManualPairOptions): Promise<ManualPair>;
export function twoInstances(options: LivePairOptions): Promise<InstancePair>;
export function twoInstances(options: ManualPairOptions | LivePairOptions): Promise<InstancePair> {
  return options.relays === 'manual' ? manualPair(options) : livePair(options);
}

/**
 * Opens what `open` builds before the tests of the calling `describe` and closes it after the last
 * one. What it returns stands for the opened object from the first test on: each of its members
 * forwards to the opened object's member at the moment it is used, so a suite names them once —
 * `const { a, b } = openForSuite(() => twoInstances({ … }))` — instead of assigning variables in a
 * hook. Using a member before the suite's `beforeAll` ran is an error that says so.
 */
export function openForSuite<T extends { close(): Promise<void> }>(open: () => Promise<T>): T {
  let opened: T | undefined;
  beforeAll(async () => {
    opened = await open();
  });
  afterAll(async () => {
    await opened?.close();
  });
  const current = (): T => {
    if (opened === undefined) throw new Error('a suite fixture was used before its beforeAll opened it');
    return opened;
  };
  return new Proxy({} as T, {
    // Once opened, a member is the opened object's own; before (a suite destructuring the fixture
    // as it is defined), a stand-in for it, which must then be an object or a function.
    get: (_target, key) =>
      opened !== undefined ? Reflect.get(opened, key) : late(() => Reflect.get(current(), key) as object),
  });
}

/** A stand-in for the object (or function) `resolve` returns when it is used. */
function late<T extends object>(resolve: () => T): T {
  // A function target, so that a stand-in for a function can be called.
  return new Proxy(function standIn() {} as unknown as T, {
    get(_target, key) {
      const target = resolve();
      const value: unknown = Reflect.get(target, key);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
    has: (_target, key) => Reflect.has(resolve(), key),
    apply: (_target, _this, args: unknown[]) =>
      Reflect.apply(resolve() as (...a: unknown[]) => unknown, undefined, args),
  });
}

async function manualPair({ label, seed }: ManualPairOptions): Promise<ManualPair> {
  /** The afterQuery hook of instance A; a test installs a pause here. */
  let pauseOnA: Pause | undefined;
  const releasePause = () => {
    pauseOnA?.release();
    pauseOnA = undefined;
  };
  const b = await createTestApp({ label, seed, startRelay: false });
  // A has its own Redis connections (as another server would), behind a watcher.
  const aStore = watchStore(storeOf(b.config));
  const a = await createTestApp({
    label,
    share: b,
    store: aStore.store,
    startRelay: false,
    repositoryOptions: { afterQuery: (query, ids) => pauseOnA?.hook(query, ids) },
  }).catch(async (error: unknown) => {
    await aStore.store.close();
    await b.close();
    throw error;
  });
  return {
    a,
    b,
    aStore,
    pauseA(query, id) {
      pauseOnA = pauseNext(query, id);
      return pauseOnA;
    },
    releasePause,
    async close() {
      releasePause();
      await a.close();
      await aStore.store.close();
      await b.close();
    },
  };
}

async function livePair({ label, seed, env, repositoryOptions }: LivePairOptions): Promise<InstancePair> {
  const a = await createTestApp({ label, seed, env, repositoryOptions });
  const b = await createTestApp({ label, share: a, env, repositoryOptions }).catch(async (error: unknown) => {
    await a.close();
    throw error;
  });
  return {
    a,
    b,
    async close() {
      await b.close();
      await a.close();
    },
  };
}

// Test hooks

/**
 * A pause for the next SQL read of `query` that asks for `id` (any read of `query` without one: a
 * page of users asks for no id) on an instance: the reader has its rows (old data) and stops before
 * it fills the cache, until `release()`.
 */
export interface Pause {
  readonly hook: BeforeQueryHook;
  /** Resolves once the reader is paused. */
  readonly reached: Promise<void>;
  release(): void;
}

export function pauseNext(query: RepositoryQuery, id?: number): Pause {
  let reachedResolve: () => void = () => {};
  let release: () => void = () => {};
  const reached = new Promise<void>((resolve) => (reachedResolve = resolve));
  const released = new Promise<void>((resolve) => (release = resolve));
  let used = false;
  return {
    reached,
    release,
    hook: async (q, ids) => {
      if (used || q !== query || (id !== undefined && !ids.includes(id))) return;
      used = true;
      reachedResolve();
      await released;
    },
  };
}

/**
 * A store that tells the test when a `getMany` touching a key has been answered, so a test can wait
 * until a request has looked at the cache (and decided what to do about a miss) without sleeping.
 */
export interface WatchedStore {
  readonly store: CacheStore;
  /** Resolves after the next `getMany` that includes `key` has its answer (or failed). */
  nextRead(key: string): Promise<void>;
}

export function watchStore(inner: CacheStore): WatchedStore {
  const waiting: { key: string; resolve: () => void }[] = [];
  async function getMany(keys: readonly string[]) {
    try {
      return await inner.getMany(keys);
    } finally {
      // Answered or failed, the request has looked at the cache and decided what to do next.
      for (const waiter of waiting.filter((w) => keys.includes(w.key))) {
        waiting.splice(waiting.indexOf(waiter), 1);
        waiter.resolve();
      }
    }
  }
  // Everything but getMany reaches the real store untouched, whatever the interface grows.
  const store = forwardStore(inner, { getMany });
  return {
    store,
    nextRead: (key) => new Promise<void>((resolve) => waiting.push({ key, resolve })),
  };
}
