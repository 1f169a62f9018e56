/**
 * Reads that cannot use the store (it failed, or its circuit is open), shared within the instance:
 * concurrent requests for a cold key load it from PostgreSQL once, not once each — the in-process
 * single flight of the cached path, kept when the cache is gone.
 *
 * A load may be shared only with callers that were already waiting when it was issued: one that
 * arrives after a statement was sent may be asking after a write returned that the statement did not
 * see. So a bypass load is joinable until it is issued, and it is issued only once the other lookups
 * of its keys that are in flight on this instance have settled (plus one turn of the event loop, for
 * their callers to join). When Redis is slow or stalled, the requests piled up behind its timeout all
 * fail together and all join one load. test/resilience/bypass-single-flight.test.ts counts the loads.
 */
import type { EntitySpec } from '../entities/entity-spec.js';
import type { Resolution } from './resolution.js';

export interface BypassLoads {
  /** Runs a store lookup of `keys`, counted as in flight until it settles. */
  track<T>(keys: readonly string[], lookup: () => Promise<T>): Promise<T>;
  /** The rows of ids from PostgreSQL (outcome `bypass`), joining the loads of this instance not yet issued. */
  load<T>(spec: EntitySpec<T>, ids: readonly number[]): Promise<Map<number, Resolution<T>>>;
}

type Answers = Map<number, Resolution<unknown>>;

/** One store lookup in flight (`track`): its keys, and the bypass loads waiting for it to settle. */
interface InFlightLookup {
  readonly keys: readonly string[];
  waiters?: (() => void)[];
}

/** `tick` orders reads and joins in this process (a resolution's `readAt`). */
export function createBypassLoads(tick: () => number): BypassLoads {
  /**
   * The store lookups in flight, one entry per batch, not per key: tracking runs on every read and
   * waiting only when the store fails. Per-key counts cost ~6 string-keyed map operations per key
   * (3.6 % + 2.1 % self time of a warm `users(ids: 20)` request, 120 keys, in a Node 24 profile);
   * this is one Set add and delete per batch, and the rare waiter scans the batches instead.
   */
  const inFlight = new Set<InFlightLookup>();
  /** Loads not issued yet, by key: the ones a caller may still join. */
  const open = new Map<string, Promise<Answers>>();

  // Until no lookup of these keys is in flight: the batches found, then any that started meanwhile
  // (a caller whose lookup fails later must still find this load open to join — three requests
  // behind one stalled Redis, staggered, make one load: test/read-path/bypass.test.ts).
  const whenSettled = async (keys: readonly string[]) => {
    if (inFlight.size === 0) return;
    const wanted = new Set(keys);
    for (;;) {
      const waits: Promise<void>[] = [];
      for (const batch of inFlight) {
        if (!batch.keys.some((key) => wanted.has(key))) continue;
        waits.push(new Promise<void>((resolve) => (batch.waiters ??= []).push(resolve)));
      }
      if (waits.length === 0) return;
      await Promise.all(waits);
    }
  };

  async function issue<T>(
    spec: EntitySpec<T>,
    ids: readonly number[],
    keys: readonly string[],
    self: () => Promise<Answers>,
  ) {
    await whenSettled(keys);
    // The callers whose lookups just failed join in their continuations, which run before this.
    await new Promise<void>((resolve) => setImmediate(resolve));
    const flight = self();
    for (const key of keys) if (open.get(key) === flight) open.delete(key);
    const readAt = tick();
    const rows = await spec.load(ids);
    return new Map(
      ids.map((id) => [id, { value: rows.get(id) ?? null, outcome: 'bypass', ttlMs: undefined, readAt }]),
    ) as Answers;
  }

  return {
    async track(keys, lookup) {
      const batch: InFlightLookup = { keys };
      inFlight.add(batch);
      try {
        return await lookup();
      } finally {
        inFlight.delete(batch);
        for (const wake of batch.waiters ?? []) wake();
      }
    },

    async load<T>(spec: EntitySpec<T>, ids: readonly number[]) {
      const keys = ids.map(spec.keyOf);
      const waits: { id: number; flight: Promise<Answers> }[] = [];
      const mine: number[] = [];
      ids.forEach((id, i) => {
        const flight = open.get(keys[i]!);
        if (flight) waits.push({ id, flight });
        else mine.push(id);
      });
      if (mine.length > 0) {
        const mineKeys = mine.map(spec.keyOf);
        const flight: Promise<Answers> = issue(spec, mine, mineKeys, () => flight);
        for (const key of mineKeys) open.set(key, flight);
        // Closed to joiners once settled too (a load that failed before it was issued).
        const close = () => mineKeys.forEach((key) => open.get(key) === flight && open.delete(key));
        void flight.then(close, close);
        for (const id of mine) waits.push({ id, flight });
      }
      const answers = new Map<number, Resolution<T>>();
      for (const { id, flight } of waits) answers.set(id, (await flight).get(id) as Resolution<T>);
      return answers;
    },
  };
}
