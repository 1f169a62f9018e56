/**
 * The circuit breaker in front of the store (src/cache/store/layers/circuit-breaker.ts), built
 * directly over the chaos double wrapping the memory store, on a fake clock:
 *
 *   breaker ─▶ chaos double (fails on demand) ─▶ recording wrapper ─▶ memory store
 *
 * `chaos.injected` counts the calls that reached the double and were failed on purpose; the recording
 * wrapper (test/support/unit-kit.ts) counts the calls that got all the way to the memory store. A call
 * the breaker refuses shows in neither, and in `breaker.shortCircuited`. Every state change is
 * recorded through `onTransition`. Time only moves when a test advances the clock, so "after openMs"
 * is exact and nothing waits.
 *
 * Not covered here: forwarding of `onReconnect` (another test owns it).
 */
import { describe, expect, test } from 'vitest';
import type { CacheStore, CacheWrite } from '../../src/cache/store/contract.js';
import { StoreReplyError, StoreTimeoutError, StoreUnavailableError } from '../../src/cache/store/errors.js';
import {
  createCircuitBreaker,
  type CircuitBreakerOptions,
} from '../../src/cache/store/layers/circuit-breaker.js';
import { createMemoryStore } from '../../src/cache/store/memory-store.js';
import { createChaosStore } from '../support/chaos-store.js';
import { deferred, fakeClock, gate, spyStore } from '../support/unit-kit.js';

const THRESHOLD = 3;
const OPEN_MS = 100;
const MAX_OPEN_MS = 400;

function build(options: Pick<CircuitBreakerOptions, 'beforeClose'> = {}) {
  const clock = fakeClock();
  const reached = spyStore(createMemoryStore({ now: clock.now }));
  const chaos = createChaosStore(reached);
  const transitions: string[] = [];
  const store = createCircuitBreaker(chaos, {
    failureThreshold: THRESHOLD,
    openMs: OPEN_MS,
    maxOpenMs: MAX_OPEN_MS,
    now: clock.now,
    onTransition: (from, to) => transitions.push(`${from}→${to}`),
    ...options,
  });
  /** Opens the circuit the way an outage does: `THRESHOLD` failed calls in a row. */
  async function openByOutage() {
    chaos.chaos.failAll();
    for (let i = 0; i < THRESHOLD; i += 1) await expect(store.getMany(['k'])).rejects.toThrow(/chaos/);
    expect(store.breaker.state).toBe('open');
  }
  return {
    clock,
    reached: reached.spy,
    chaos: chaos.chaos,
    store,
    breaker: store.breaker,
    transitions,
    openByOutage,
  };
}

/**
 * `build` with a `beforeClose` (the relay's drain) whose first run waits at `slow` until the test
 * opens it, and whose later runs end at once; `drains` counts the runs.
 */
function buildWithSlowFirstDrain() {
  const slow = gate();
  let drains = 0;
  const t = build({
    beforeClose: async () => {
      drains += 1;
      if (drains === 1) await slow.wait();
    },
  });
  return { ...t, slow, drains: () => drains };
}

/** The breaker refused the call itself (it names the circuit's state; the chaos double says "chaos"). */
async function expectRefused(call: Promise<unknown>, state: 'open' | 'half-open' = 'open') {
  const error = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(StoreUnavailableError);
  expect((error as Error).message).toMatch(new RegExp(`skipped: circuit ${state}$`));
}

const aWrite = (key: string): CacheWrite => ({
  key,
  entry: { kind: 'value', version: 1, staleAt: Date.UTC(2030, 0, 1), payload: new Uint8Array([1]) },
  ttlMs: 60_000,
});

/** One call of each guarded method, each failing or passing on its own. */
const guardedCalls = (store: CacheStore) => [
  store.getMany(['k']),
  store.setMany([aWrite('k')]),
  store.ttlMany(['k']),
  store.acquireLocks(['k'], 'token-1', 1_000),
  store.onFill('k', () => {}),
];

describe('circuit breaker', () => {
  test('opens after failureThreshold consecutive outage errors; a success in between starts the count again', async () => {
    const t = build();
    t.chaos.failAll();
    for (let i = 0; i < THRESHOLD - 1; i += 1) await expect(t.store.getMany(['k'])).rejects.toThrow(/chaos/);
    expect(t.breaker.state).toBe('closed');

    t.chaos.heal();
    await expect(t.store.getMany(['k'])).resolves.toEqual([undefined]);

    // Timeouts are outages too.
    t.chaos.failAll(new StoreTimeoutError('cache store getMany failed: chaos, timed out'));
    for (let i = 0; i < THRESHOLD - 1; i += 1) {
      await expect(t.store.getMany(['k'])).rejects.toBeInstanceOf(StoreTimeoutError);
    }
    expect(t.breaker.state).toBe('closed');
    await expect(t.store.setMany([aWrite('k')])).rejects.toBeInstanceOf(StoreTimeoutError);

    expect(t.breaker.state).toBe('open');
    expect(t.transitions).toEqual(['closed→open']);
    expect(t.chaos.injected).toBe(2 * THRESHOLD - 1);
    expect(t.breaker.shortCircuited).toBe(0);
  });

  test('open: every guarded call is refused at once, without reaching the store', async () => {
    const t = build();
    await t.openByOutage();
    const injected = t.chaos.injected;
    t.reached.reset();

    for (const call of guardedCalls(t.store)) await expectRefused(call);

    expect(t.breaker.shortCircuited).toBe(5);
    expect(t.chaos.injected).toBe(injected);
    expect(t.reached.calls).toEqual([]);
  });

  test('after openMs, one probe goes through while concurrent calls are still refused; its success closes the circuit', async () => {
    const t = build();
    await t.openByOutage();
    t.chaos.heal();
    t.reached.reset();

    t.clock.advance(OPEN_MS - 1);
    await expectRefused(t.store.getMany(['k']));
    expect(t.breaker.state).toBe('open');

    t.clock.advance(1);
    const probe = t.store.getMany(['k']);
    expect(t.breaker.state).toBe('half-open');
    await expectRefused(t.store.getMany(['k']), 'half-open');
    await expectRefused(t.store.acquireLocks(['k'], 'token-1', 1_000), 'half-open');

    await expect(probe).resolves.toEqual([undefined]);
    expect(t.breaker.state).toBe('closed');
    expect(t.reached.methods()).toEqual(['getMany']);
    expect(t.breaker.shortCircuited).toBe(3);
    expect(t.transitions).toEqual(['closed→open', 'open→half-open', 'half-open→closed']);
    // Closed again: calls pass.
    await expect(t.store.ttlMany(['k'])).resolves.toEqual([-1]);
  });

  test('a probe closes only once beforeClose has resolved, and beforeClose runs before the probe’s call reaches the store', async () => {
    const recovery = gate();
    const seenByBeforeClose: { state: string; storeCalls: number }[] = [];
    const t = build({
      beforeClose: async () => {
        seenByBeforeClose.push({ state: t.breaker.state, storeCalls: t.reached.calls.length });
        await recovery.wait();
        seenByBeforeClose.push({ state: t.breaker.state, storeCalls: t.reached.calls.length });
      },
    });
    await t.openByOutage();
    t.chaos.heal();
    t.reached.reset();
    t.clock.advance(OPEN_MS);

    const probe = t.store.getMany(['k']);
    await recovery.reached;
    // Recovery (the relay's drain, in production) is under way: still half-open, other calls still
    // go to PostgreSQL, and the probe has not read the store.
    expect(t.breaker.state).toBe('half-open');
    await expectRefused(t.store.getMany(['k']), 'half-open');
    expect(t.reached.calls).toEqual([]);

    recovery.open();
    await expect(probe).resolves.toEqual([undefined]);
    expect(seenByBeforeClose).toEqual([
      { state: 'half-open', storeCalls: 0 },
      { state: 'half-open', storeCalls: 0 },
    ]);
    expect(t.reached.methods()).toEqual(['getMany']);
    expect(t.breaker.state).toBe('closed');
  });

  test('a beforeClose that fails re-opens the circuit and the caller is told the store is unavailable', async () => {
    const cause = new Error('relay could not drain: PostgreSQL is down');
    let failRecovery = true;
    const t = build({
      beforeClose: async () => {
        if (failRecovery) throw cause;
      },
    });
    await t.openByOutage();
    t.chaos.heal();
    t.reached.reset();
    t.clock.advance(OPEN_MS);

    const error = await t.store.getMany(['k']).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect((error as Error).message).toMatch(/recovery not complete/);
    expect((error as Error).cause).toBe(cause);
    expect(t.breaker.state).toBe('open');
    expect(t.reached.calls).toEqual([]);

    // Not a store outage, so the open period is not lengthened: the next probe comes after openMs.
    failRecovery = false;
    t.clock.advance(OPEN_MS - 1);
    await expectRefused(t.store.getMany(['k']));
    t.clock.advance(1);
    await expect(t.store.getMany(['k'])).resolves.toEqual([undefined]);
    expect(t.breaker.state).toBe('closed');
  });

  test('a failed probe re-opens with openMs doubled, capped at maxOpenMs; a successful one resets it', async () => {
    const t = build();
    await t.openByOutage();

    /** The circuit refuses until `ms` have passed since it opened, then lets one probe reach the store. */
    async function expectProbeAfter(ms: number) {
      const injected = t.chaos.injected;
      t.clock.advance(ms - 1);
      await expectRefused(t.store.getMany(['k']));
      expect(t.chaos.injected).toBe(injected);
      t.clock.advance(1);
      const probe = t.store.getMany(['k']);
      return { probe, reachedChaos: () => t.chaos.injected === injected + 1 };
    }

    for (const ms of [OPEN_MS, 2 * OPEN_MS, 4 * OPEN_MS, MAX_OPEN_MS]) {
      const { probe, reachedChaos } = await expectProbeAfter(ms);
      await expect(probe).rejects.toThrow(/chaos/); // the store is still down
      expect(reachedChaos()).toBe(true);
      expect(t.breaker.state).toBe('open');
    }
    expect(4 * OPEN_MS).toBe(MAX_OPEN_MS); // so the last round above was the capped one

    t.chaos.heal();
    const { probe } = await expectProbeAfter(MAX_OPEN_MS);
    await expect(probe).resolves.toEqual([undefined]);
    expect(t.breaker.state).toBe('closed');

    // Back to the base period after a success.
    await t.openByOutage();
    t.chaos.heal();
    const again = await expectProbeAfter(OPEN_MS);
    await expect(again.probe).resolves.toEqual([undefined]);
  });

  test('reply errors never trip it: they are bugs, and skipping the store would not fix them', async () => {
    const t = build();
    t.chaos.failAll(new StoreReplyError('cache store getMany failed: WRONGTYPE'));

    for (let i = 0; i < 4 * THRESHOLD; i += 1) {
      await expect(t.store.getMany(['k'])).rejects.toBeInstanceOf(StoreReplyError);
    }

    expect(t.breaker.state).toBe('closed');
    expect(t.transitions).toEqual([]);
    expect(t.breaker.shortCircuited).toBe(0);
    expect(t.chaos.injected).toBe(4 * THRESHOLD);
  });

  test('releaseLocks, publish and subscribe are never refused, even while open', async () => {
    const t = build();
    expect((await t.store.acquireLocks(['k'], 'token-1', 60_000)).map((a) => a.acquired)).toEqual([true]);
    t.breaker.trip();
    expect(t.breaker.state).toBe('open');
    t.reached.reset();

    const message = deferred<string>();
    await t.store.subscribe('events', (_channel, m) => message.resolve(m));
    await t.store.publish('events', 'hello');
    // A lock left behind while the circuit is open would make other instances wait out its TTL.
    expect(await t.store.releaseLocks(['k'], 'token-1')).toEqual([true]);

    expect(await message.promise).toBe('hello');
    expect(t.reached.methods()).toEqual(['subscribe', 'publish', 'releaseLocks']);
    expect(t.breaker.shortCircuited).toBe(0);
    expect(t.breaker.state).toBe('open');
  });

  test('trip() opens it at once; tripping an open circuit changes nothing; after openMs a probe closes it', async () => {
    const t = build();
    t.breaker.trip();
    expect(t.breaker.state).toBe('open');
    await expectRefused(t.store.getMany(['k']));

    t.clock.advance(OPEN_MS - 1);
    t.breaker.trip(); // a second failed write-through: the open period does not restart
    t.clock.advance(1);
    await expect(t.store.getMany(['k'])).resolves.toEqual([undefined]);

    expect(t.breaker.state).toBe('closed');
    expect(t.transitions).toEqual(['closed→open', 'open→half-open', 'half-open→closed']);
  });

  test('a trip during a probe keeps the circuit open: its drain may have run before what tripped it', async () => {
    const t = buildWithSlowFirstDrain();
    const drained = t.slow;
    t.breaker.trip();
    t.clock.advance(OPEN_MS);
    t.reached.reset();
    const probe = t.store.getMany(['k']);
    await drained.reached;
    // The drain is under way: a write-through fails now, perhaps after the rows it applied.
    t.breaker.trip();
    drained.open();
    // The probe neither reads the store nor closes the circuit.
    await expect(probe).rejects.toThrow(/tripped during recovery/);
    expect(t.reached.calls).toEqual([]);
    expect(t.breaker.state).toBe('open');
    await expectRefused(t.store.getMany(['k']));
    // The next probe, after the open period, drains again and closes it.
    t.clock.advance(OPEN_MS);
    await expect(t.store.getMany(['k'])).resolves.toEqual([undefined]);
    expect(t.drains()).toBe(2);
    expect(t.breaker.state).toBe('closed');
  });

  test('a tripped probe whose drain outlasts the open period does not reopen the circuit under the next probe', async () => {
    const t = buildWithSlowFirstDrain();
    const { slow } = t;
    t.breaker.trip();
    t.clock.advance(OPEN_MS);
    const first = t.store.getMany(['k']);
    await slow.reached;
    t.breaker.trip(); // a write-through failed during the first drain
    t.clock.advance(OPEN_MS);
    const second = t.store.getMany(['k']); // the next probe: its drain ends at once
    await expect(second).resolves.toEqual([undefined]);
    expect(t.breaker.state).toBe('closed');
    slow.open();
    await expect(first).rejects.toThrow(/tripped during recovery/);
    // The first probe's end changes nothing: the circuit the second closed stays closed.
    expect(t.breaker.state).toBe('closed');
    await expect(t.store.setMany([aWrite('w')])).resolves.toEqual([true]);
  });

  test('under write load, a probe still closes: write-throughs go through while it drains, and only a failed one trips', async () => {
    const t = buildWithSlowFirstDrain();
    const drained = t.slow;
    t.breaker.trip();
    t.clock.advance(OPEN_MS);
    const probe = t.store.getMany(['k']);
    await drained.reached;
    // Mutations keep writing through meanwhile: they reach the store (they only make it newer).
    await expect(t.store.setMany([aWrite('w1')])).resolves.toEqual([true]);
    await expectRefused(t.store.getMany(['k']), 'half-open');
    drained.open();
    await expect(probe).resolves.toEqual([undefined]);
    expect(t.breaker.state).toBe('closed');
    expect(t.drains()).toBe(1);
  });

  test('onTransition sees every move, in order', async () => {
    const t = build();
    await t.openByOutage(); // closed → open
    t.clock.advance(OPEN_MS);
    await expect(t.store.getMany(['k'])).rejects.toThrow(/chaos/); // → half-open → open
    t.chaos.heal();
    t.clock.advance(2 * OPEN_MS);
    await t.store.getMany(['k']); // → half-open → closed
    t.breaker.trip(); // → open

    expect(t.transitions).toEqual([
      'closed→open',
      'open→half-open',
      'half-open→open',
      'open→half-open',
      'half-open→closed',
      'closed→open',
    ]);
  });

  test('refuses a failureThreshold that is not a positive integer, naming the value', () => {
    const inner = createMemoryStore();
    expect(() => createCircuitBreaker(inner, { failureThreshold: 0 })).toThrow(/failureThreshold .* got 0/);
    expect(() => createCircuitBreaker(inner, { failureThreshold: 1.5 })).toThrow(/got 1\.5/);
  });
});
