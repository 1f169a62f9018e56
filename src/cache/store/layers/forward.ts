/**
 * The one way to build a CacheStore that wraps another (the circuit breaker, the instrumentation,
 * the L1 layer, the chaos double of the tests): name the methods you change, and every other member
 * of the contract is forwarded to the inner store — the optional `onReconnect` included, exactly
 * when the inner store has it.
 *
 * Forwarding by hand, method by method, is how a wrapper silently drops a member: the breaker once
 * lost `onReconnect`, so an L1 tier connected through it would never have been cleared after a lost
 * subscription (test/store/layers.test.ts proves every layer passes it on). A member added to the
 * contract must be added to `CALLS` below, or this file stops compiling.
 */
import type { CacheStore } from '../contract.js';

/** Every member of the contract but `tier`. */
export type StoreMethod = Exclude<keyof CacheStore, 'tier'>;
/** The members that are calls to the store (everything but the `onReconnect` hook). */
export type StoreCall = Exclude<StoreMethod, 'onReconnect'>;

// A Record over the union: a contract member missing here, or one that is not in the contract, is a
// type error, so the list cannot fall behind the interface.
const CALLS: Record<StoreCall, true> = {
  getMany: true,
  setMany: true,
  fillMany: true,
  setDependent: true,
  getDependent: true,
  invalidateDependents: true,
  ttlMany: true,
  acquireLocks: true,
  releaseLocks: true,
  onFill: true,
  publish: true,
  subscribe: true,
  scanKeys: true,
  purgePrefix: true,
  close: true,
};
export const STORE_CALLS = Object.keys(CALLS) as readonly StoreCall[];

type Overrides = Partial<Pick<CacheStore, StoreMethod>>;

/**
 * A store that answers with `overrides` where given and forwards everything else to `inner`.
 * `tier` is read from `inner` on every access, so a wrapper never reports a stale name.
 */
export function forwardStore(inner: CacheStore, overrides: Overrides = {}): CacheStore {
  const forwarded: Record<string, unknown> = {};
  for (const method of STORE_CALLS) {
    forwarded[method] = overrides[method] ?? (inner[method] as (...args: never[]) => unknown).bind(inner);
  }
  const onReconnect = overrides.onReconnect ?? inner.onReconnect?.bind(inner);
  if (onReconnect) forwarded.onReconnect = onReconnect;
  Object.defineProperty(forwarded, 'tier', { get: () => inner.tier, enumerable: true });
  return forwarded as unknown as CacheStore;
}

/**
 * Overrides for `forwardStore` that run each of `methods` through `around`: the wrapper sees the
 * method's name and a thunk that makes the inner call with the caller's arguments.
 */
export function aroundCalls<M extends StoreCall>(
  inner: CacheStore,
  methods: readonly M[],
  around: <T>(method: M, call: () => Promise<T>) => Promise<T>,
): Pick<CacheStore, M> {
  const wrapped: Record<string, unknown> = {};
  for (const method of methods) {
    const call = inner[method] as (...args: unknown[]) => Promise<unknown>;
    wrapped[method] = (...args: unknown[]) => around(method, () => call.apply(inner, args));
  }
  return wrapped as Pick<CacheStore, M>;
}
