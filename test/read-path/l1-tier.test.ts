/**
 * The in-process tier's rules (src/cache/l1-tier.ts) on a fake clock: what it keeps and for how long,
 * the fences that keep an older version out once a newer one is known (events, tombstones, refused
 * and failed writes), the generation that keeps reads started before a clear out, and the
 * Cache-Status member it adds.
 */
import { describe, expect, it } from 'vitest';
import { createChaosStore } from '../support/chaos-store.js';
import { l1Layer } from '../../src/cache/read/l1-layer.js';
import { createL1Tier, L1_TIER } from '../../src/cache/read/l1-tier.js';
import { createMemoryStore } from '../../src/cache/store/memory-store.js';
import { CacheReport } from '../../src/observability/cache-report.js';
import type { CacheEntry, CacheWrite } from '../../src/cache/store/contract.js';
import { cacheStatus, tieredCacheStatus, xCache } from '../../src/graphql/plugins/use-cache-headers.js';

const HOUR = 3_600_000;

function clock(start = 1_767_225_600_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

function value(version: number, staleAt: number, text = `v${version}`): CacheEntry {
  return { kind: 'value', version, staleAt, payload: new TextEncoder().encode(text) };
}
const tombstone = (version: number, at: number): CacheEntry => ({
  kind: 'tombstone',
  version,
  staleAt: at,
  payload: new Uint8Array(0),
});
const write = (key: string, entry: CacheEntry): CacheWrite => ({ key, entry, ttlMs: HOUR });

describe('L1 tier', () => {
  it('serves an offered entry for ttlMs, never past its logical expiry', () => {
    const c = clock();
    const l1 = createL1Tier({ maxEntries: 10, ttlMs: 1000, now: c.now });
    l1.offer('a', value(1, c.now() + HOUR), c.now());
    l1.offer('b', value(1, c.now() + 300), c.now());
    expect(l1.get('a')?.version).toBe(1);
    c.advance(299);
    expect(l1.get('b')?.version).toBe(1);
    c.advance(1);
    expect(l1.get('b')).toBeUndefined();
    c.advance(700);
    expect(l1.get('a')?.version).toBe(1);
    c.advance(1);
    expect(l1.get('a')).toBeUndefined();
  });

  it('counts an entry’s life from when the store held it, not from when the reply was processed', () => {
    const c = clock();
    const l1 = createL1Tier({ maxEntries: 10, ttlMs: 1000, now: c.now });
    const readAt = c.now();
    c.advance(400); // a slow reply
    l1.offer('a', value(1, c.now() + HOUR), readAt);
    c.advance(600);
    expect(l1.get('a')?.version).toBe(1);
    c.advance(1);
    expect(l1.get('a')).toBeUndefined();
  });

  it('is bounded: the least recently used entry goes first', () => {
    const c = clock();
    const l1 = createL1Tier({ maxEntries: 2, ttlMs: 1000, now: c.now });
    l1.offer('a', value(1, c.now() + HOUR), c.now());
    l1.offer('b', value(1, c.now() + HOUR), c.now());
    l1.get('a');
    l1.offer('c', value(1, c.now() + HOUR), c.now());
    expect([l1.get('a')?.version, l1.get('b'), l1.get('c')?.version]).toEqual([1, undefined, 1]);
    expect(l1.size).toBe(2);
  });

  it('never replaces a newer version with an older one; an equal version renews', () => {
    const c = clock();
    const l1 = createL1Tier({ maxEntries: 10, ttlMs: 1000, now: c.now });
    l1.offer('a', value(3, c.now() + HOUR), c.now());
    l1.offer('a', value(2, c.now() + HOUR), c.now());
    expect(l1.get('a')?.version).toBe(3);
    c.advance(900);
    l1.offer('a', value(3, c.now() + HOUR), c.now());
    c.advance(900);
    expect(l1.get('a')?.version).toBe(3);
  });

  it('an event evicts older entries and fences them out; duplicates and older events change nothing', () => {
    const c = clock();
    const l1 = createL1Tier({ maxEntries: 10, ttlMs: 1000, now: c.now });
    l1.offer('a', value(1, c.now() + HOUR), c.now());
    l1.offer('b', value(5, c.now() + HOUR), c.now());
    l1.invalidate('a', 2);
    l1.invalidate('b', 5); // the writer's own value, announced afterwards
    l1.invalidate('b', 4); // late, older
    expect(l1.get('a')).toBeUndefined();
    expect(l1.get('b')?.version).toBe(5);
    // A read that started before the event delivers version 1 after it: refused.
    l1.offer('a', value(1, c.now() + HOUR), c.now());
    expect(l1.get('a')).toBeUndefined();
    l1.offer('a', value(2, c.now() + HOUR), c.now());
    expect(l1.get('a')?.version).toBe(2);
  });

  it('an event that arrives before any entry (reordered with a read) still fences it out', () => {
    const c = clock();
    const l1 = createL1Tier({ maxEntries: 10, ttlMs: 1000, now: c.now });
    l1.invalidate('a', 7);
    l1.offer('a', value(6, c.now() + HOUR), c.now());
    expect(l1.get('a')).toBeUndefined();
    // A negative entry (version 0) is older than any event.
    l1.offer(
      'a',
      { kind: 'negative', version: 0, staleAt: c.now() + HOUR, payload: new Uint8Array(0) },
      c.now(),
    );
    expect(l1.get('a')).toBeUndefined();
  });

  it('a clear drops everything, and a read that started before it cannot refill it', () => {
    const c = clock();
    const l1 = createL1Tier({ maxEntries: 10, ttlMs: 1000, now: c.now });
    const before = l1.generation;
    l1.offer('a', value(1, c.now() + HOUR), c.now());
    l1.clear();
    expect(l1.get('a')).toBeUndefined();
    l1.offer('a', value(1, c.now() + HOUR), c.now(), before);
    expect(l1.get('a')).toBeUndefined();
    l1.offer('a', value(1, c.now() + HOUR), c.now(), l1.generation);
    expect(l1.get('a')?.version).toBe(1);
  });

  it('refuses nonsense options with the bad value in the message', () => {
    expect(() => createL1Tier({ maxEntries: 0, ttlMs: 1000 })).toThrow(/maxEntries .* got 0/);
    expect(() => createL1Tier({ maxEntries: 10, ttlMs: 1.5 })).toThrow(/ttlMs .* got 1.5/);
  });

  describe('over(store)', () => {
    it('offers what the store reads, keeps tombstones as fences, and copies payloads', async () => {
      const c = clock();
      const store = createMemoryStore({ now: c.now });
      const l1 = createL1Tier({ maxEntries: 10, ttlMs: 1000, now: c.now });
      await store.setMany([write('a', value(1, c.now() + HOUR)), write('t', tombstone(4, c.now()))]);
      l1.offer('t', value(3, c.now() + HOUR), c.now());
      const found = await l1Layer(store, l1).getMany(['a', 't', 'missing']);
      expect(found.map((e) => e?.kind)).toEqual(['value', 'tombstone', undefined]);
      expect(l1.get('a')?.version).toBe(1);
      expect(l1.get('a')?.payload).not.toBe(found[0]!.payload);
      expect(l1.get('t')).toBeUndefined();
      expect(l1.get('missing')).toBeUndefined();
    });

    it('takes a write that landed; a refused write fences at its version', async () => {
      const c = clock();
      const store = createMemoryStore({ now: c.now });
      const l1 = createL1Tier({ maxEntries: 10, ttlMs: 1000, now: c.now });
      const layered = l1Layer(store, l1);
      // A write-through on this instance: its L1 serves the new version at once.
      expect(await layered.setMany([write('a', value(2, c.now() + HOUR))])).toEqual([true]);
      expect(l1.get('a')?.version).toBe(2);
      // Another instance stored version 5; this L1 still holds 2 (it missed the event). A fill of
      // version 4 is refused by the store — which tells L1 that 2 is old.
      await store.setMany([write('a', value(5, c.now() + HOUR))]);
      expect(await layered.setMany([write('a', value(4, c.now() + HOUR))])).toEqual([false]);
      expect(l1.get('a')).toBeUndefined();
    });

    it('a write-through fences its version: a read begun before it cannot put the old value back once other reads pushed the new one out', async () => {
      const c = clock();
      const store = createMemoryStore({ now: c.now });
      const l1 = createL1Tier({ maxEntries: 4, ttlMs: 1000, now: c.now });
      const readBegan = c.now(); // a read of version 1 is in flight on this instance
      await l1Layer(store, l1).setMany([write('a', value(2, c.now() + HOUR))]);
      // Other reads fill L1 past its size: the written entry is the least recently used and goes.
      for (let i = 0; i < 4; i += 1) l1.offer(`hot${i}`, value(1, c.now() + HOUR), c.now());
      expect(l1.get('a')).toBeUndefined();
      // The read's reply lands after the mutation returned: refused, so the writer reads Redis.
      l1.offer('a', value(1, c.now() + HOUR), readBegan);
      expect(l1.get('a')).toBeUndefined();
    });

    it('a failed write (Redis down after commit) drops the older entry: the writer never reads its old value', async () => {
      const c = clock();
      const chaos = createChaosStore(createMemoryStore({ now: c.now }));
      const l1 = createL1Tier({ maxEntries: 10, ttlMs: 1000, now: c.now });
      l1.offer('a', value(1, c.now() + HOUR), c.now());
      chaos.chaos.failNext(1, undefined, { methods: ['setMany'] });
      await expect(l1Layer(chaos, l1).setMany([write('a', value(2, c.now() + HOUR))])).rejects.toThrow(
        /chaos/,
      );
      expect(l1.get('a')).toBeUndefined();
      l1.offer('a', value(1, c.now() + HOUR), c.now());
      expect(l1.get('a')).toBeUndefined();
    });
  });
});

describe('Cache-Status with the L1 tier', () => {
  const lookup = (tier: string, outcome: 'hit' | 'miss' | 'collapsed' | 'negative_hit') => ({
    entity: 'profile',
    key: 'cs:v1:profile:{1}',
    tier,
    outcome,
    ttlMs: undefined,
    version: 1,
    absent: false,
    cached: true,
  });
  const reportOf = (...lookups: ReturnType<typeof lookup>[]) => {
    const report = new CacheReport();
    report.l1Tier = L1_TIER;
    for (const l of lookups) report.record(l);
    return report;
  };

  it('lists the store, then L1 (origin-nearest first), each with its own counts', () => {
    const forwarded = reportOf(lookup('cacheside-redis', 'hit'), lookup('cacheside-redis', 'hit'));
    expect(tieredCacheStatus('cacheside-redis', forwarded)).toBe(
      'cacheside-redis; hit; detail="hit=2 miss=0", cacheside-l1; fwd=miss; detail="hit=0 miss=2"',
    );
    const mixed = reportOf(lookup(L1_TIER, 'hit'), lookup('cacheside-redis', 'miss'));
    mixed.stored = 1;
    expect(tieredCacheStatus('cacheside-redis', mixed)).toBe(
      'cacheside-redis; fwd=miss; stored; detail="hit=0 miss=1", cacheside-l1; fwd=partial; detail="hit=1 miss=1"',
    );
    expect(xCache(mixed)).toBe('PARTIAL');
  });

  it('an answer entirely from L1 names L1 alone (the store was not consulted) and is a HIT', () => {
    const report = reportOf(lookup(L1_TIER, 'hit'), lookup(L1_TIER, 'negative_hit'));
    expect(tieredCacheStatus('cacheside-redis', report)).toBe('cacheside-l1; hit; detail="hit=2 miss=0"');
    expect(xCache(report)).toBe('HIT');
    expect(report.hits).toBe(2);
  });

  it('without L1 the single member is unchanged', () => {
    const report = new CacheReport();
    report.record(lookup('cacheside-redis', 'hit'));
    expect(cacheStatus('cacheside-redis', report)).toBe('cacheside-redis; hit; detail="hit=1 miss=0"');
  });
});
