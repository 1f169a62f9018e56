/**
 * The consistency monitor (src/cache/monitor/consistency-monitor.ts) finds what it exists to find:
 * a cached entry still served older than its row a grace after it was sampled. Driven by hand over
 * the memory store and a real database on a fake clock, then end to end in an app, where a stale
 * entry written into Redis behind cacheside's back shows up in /metrics.
 */
import { sql } from 'drizzle-orm';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, test } from 'vitest';
import { createEntryFactory } from '../../src/cache/entities/entries.js';
import { createEntitySpecs } from '../../src/cache/entities/specs.js';
import { createConsistencyMonitor, type Violation } from '../../src/cache/monitor/consistency-monitor.js';
import { createMemoryStore } from '../../src/cache/store/memory-store.js';
import { createTestApp, REDIS_URL, type TestApp } from '../support/app.js';
import { fakeClock, readPathFixture } from '../support/unit-kit.js';
import { until } from '../support/until.js';

const fixture = readPathFixture('consistency_monitor', 10);
const GRACE_MS = 5_000;

function build() {
  const clock = fakeClock();
  const store = createMemoryStore({ now: clock.now });
  const { config, keys, logger } = fixture;
  const specs = createEntitySpecs({ keys, repositories: fixture.repositories, config });
  const entries = createEntryFactory({ config, now: clock.now });
  const violations: Violation[] = [];
  const monitor = createConsistencyMonitor({
    store,
    specs,
    keys,
    logger,
    intervalMs: 1_000,
    graceMs: GRACE_MS,
    now: clock.now,
    onViolation: (v) => violations.push(v),
  });
  const cacheRow = async (userId: number) => {
    const rows = await specs.profile.load([userId]);
    await store.setMany([entries.fill(specs.profile, specs.profile.keyOf(userId), rows.get(userId)!)]);
    return specs.profile.keyOf(userId);
  };
  const changeRow = (userId: number) =>
    fixture.testDb.database.db.execute(sql`update profiles set bio = 'changed' where user_id = ${userId}`);
  return { clock, store, specs, entries, monitor, violations, cacheRow, changeRow };
}

describe('the monitor, driven by hand', () => {
  test('an entry still served older than its row a grace after the sample is a violation, with both versions', async () => {
    const t = build();
    const key = await t.cacheRow(1);
    await t.monitor.check([key]);
    expect(t.monitor.suspects).toBe(0); // current: nothing to suspect

    await t.changeRow(1); // version 2 in PostgreSQL; no relay runs here
    await t.monitor.check([key]);
    expect(t.monitor.suspects).toBe(1);
    t.clock.advance(GRACE_MS - 1);
    await t.monitor.check([]);
    expect(t.monitor.violations).toBe(0); // within the grace
    t.clock.advance(1);
    await t.monitor.check([]);
    expect(t.monitor.violations).toBe(1);
    expect(t.violations).toEqual([{ entity: 'profile', key, cachedVersion: 1, currentVersion: 2 }]);
  });

  test('a suspect repaired within the grace (the relay tombstoned it) is not a violation', async () => {
    const t = build();
    const key = await t.cacheRow(2);
    await t.changeRow(2);
    await t.monitor.check([key]);
    expect(t.monitor.suspects).toBe(1);
    await t.store.setMany([t.entries.tombstone(key, 2)]);
    t.clock.advance(GRACE_MS);
    await t.monitor.check([]);
    expect(t.monitor.violations).toBe(0);
    expect(t.monitor.suspects).toBe(0);
  });

  test('a negative entry for a row that exists is a violation too; locks and foreign keys are not sampled', async () => {
    const t = build();
    const key = t.specs.profile.keyOf(3);
    await t.store.setMany([t.entries.fill(t.specs.profile, key, null)]);
    await t.monitor.check([key, `${key}:lock`, 'foreign:key']);
    t.clock.advance(GRACE_MS);
    await t.monitor.check([]);
    expect(t.violations).toEqual([{ entity: 'profile', key, cachedVersion: 0, currentVersion: 1 }]);
  });
});

describe('the monitor in an app', () => {
  let t: TestApp | undefined;
  const redis = new Redis(REDIS_URL);
  afterAll(async () => {
    await t?.close();
    redis.disconnect();
  });

  test('a stale entry written into Redis behind the API is found and counted in /metrics', async () => {
    t = await createTestApp({
      label: 'monitor_app',
      env: { CONSISTENCY_SAMPLE_INTERVAL_MS: '20', CONSISTENCY_GRACE_MS: '200' },
      expectViolations: true,
    });
    const app = t;
    expect((await app.gql('{ user(id: "4") { profile { bio } } }')).body.errors).toBeUndefined();
    // Someone rewrites the cached profile at version 0, below its row's 1, bypassing every fence.
    const key = `${app.prefix}:v1:profile:{4}`;
    const raw = (await redis.getBuffer(key))!;
    await redis.set(key, Buffer.concat([Buffer.from('v:0'), raw.subarray(raw.indexOf(':', 2))]), 'KEEPTTL');

    await until('the monitor to count the violation', async () => {
      const text = await (await app.fetch('/metrics')).text();
      return /cacheside_consistency_violations_total\{entity="profile"\} [1-9]/.test(text);
    });
    expect(app.app.cache.monitor!.violations).toBeGreaterThan(0);
  });

  test('CONSISTENCY_SAMPLE_INTERVAL_MS=0 turns it off', async () => {
    const off = await createTestApp({
      label: 'monitor_off',
      seed: false,
      env: { CONSISTENCY_SAMPLE_INTERVAL_MS: '0' },
    });
    try {
      expect(off.app.cache.monitor).toBeUndefined();
    } finally {
      await off.close();
    }
  });
});
