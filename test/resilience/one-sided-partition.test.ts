/**
 * Redis out of reach of the writing instance only (docs/consistency.md, "A mutation returns when
 * every instance is safe"): A cannot reach Redis at all (a chaos double fails every call A makes),
 * B can. A's write-through fails, so B's cache still holds the version A's write replaces. The
 * mutation must not return while that is so: it waits until a relay — B's, here — has applied the
 * change's tombstone (seen in PostgreSQL), and only then returns. Past WRITE_PROPAGATION_TIMEOUT_MS
 * it returns anyway, saying `extensions.propagation = "pending"`.
 *
 * B's relay is driven by hand, so that the moment it applies the change is the test's: the mutation
 * is caught waiting before it, and B caught still serving the old version, which is what returning
 * early would have exposed.
 */
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { rowsOf } from '../../src/db/client.js';
import { createTestApp, REDIS_URL, type TestApp } from '../support/app.js';
import { createChaosStore, type ChaosStore } from '../support/chaos-store.js';
import { readProfile, updateProfile } from '../support/consistency-api.js';
import { until } from '../support/until.js';
import { storeOf } from '../support/redis.js';

let a: TestApp;
let b: TestApp;
let aStore: ChaosStore;

beforeAll(async () => {
  b = await createTestApp({ label: 'partition', seed: { users: 10, postsPerUser: 1 }, startRelay: false });
  aStore = createChaosStore(storeOf(loadConfig({ REDIS_URL, CACHE_PREFIX: b.prefix })));
  a = await createTestApp({
    label: 'partition',
    share: b,
    store: aStore,
    // A's relay could not reach Redis either; stopped, it cannot hold the rows B's relay must claim.
    startRelay: false,
    // Generous: this test waits for the relay it drives, not for a deadline.
    env: { WRITE_PROPAGATION_TIMEOUT_MS: '60000' },
  });
}, 60_000);

afterAll(async () => {
  await a?.close();
  await aStore?.close();
  await b?.close();
});

/** A mutation in progress, and whether it has returned. */
function inFlight<T>(work: Promise<T>) {
  let settled = false;
  const done = work.finally(() => (settled = true));
  return { done, returned: () => settled };
}

describe('Redis unreachable from the writer only', () => {
  test('the mutation returns only once a relay on another instance has applied it; then B serves it', async () => {
    const userId = 1;
    // B has version 1 cached.
    expect((await readProfile(b, userId)).value.version).toBe(1);
    expect((await readProfile(b, userId)).xCache).toBe('HIT');

    aStore.chaos.failAll();
    const failuresBefore = aStore.chaos.injected;
    const write = inFlight(updateProfile(a, userId, { bio: 'written while cut off' }));
    // A's write-through has failed (A cannot reach Redis): the change is committed, the cache not.
    await until("A's write-through to fail", () => aStore.chaos.injected > failuresBefore);
    await until('the change to be committed', async () => (await unpublished(userId, 2)) === 1);

    // Had the mutation returned now, this is what a client would read on B: the old version, a HIT.
    const onB = await readProfile(b, userId);
    expect(onB.value.version).toBe(1);
    expect(onB.xCache).toBe('HIT');
    expect(write.returned()).toBe(false);

    // B's relay applies the change (a tombstone at version 2, and the event); the mutation returns.
    expect(await b.app.relay.runOnce()).toBeGreaterThan(0);
    const response = await write.done;
    expect(response.body.errors).toBeUndefined();
    expect(response.body.data?.updateProfile.version).toBe(2);
    expect((response.body as { extensions?: unknown }).extensions).toBeUndefined();
    expect((await readProfile(b, userId)).value.version).toBe(2);
    expect(await metric(a, 'cacheside_write_propagation_total{outcome="applied"}')).toBe(1);
    aStore.chaos.heal();
  });

  test('past WRITE_PROPAGATION_TIMEOUT_MS with no relay able to apply it, it returns saying propagation is pending', async () => {
    const userId = 2;
    expect((await readProfile(b, userId)).value.version).toBe(1);
    // A third instance, cut off like A, with a short bound: no relay will apply its change.
    const c = await createTestApp({
      label: 'partition',
      share: b,
      store: aStore,
      startRelay: false,
      env: { WRITE_PROPAGATION_TIMEOUT_MS: '200' },
    });
    try {
      aStore.chaos.failAll();
      const response = await updateProfile(c, userId, { bio: 'nobody applied this' });
      expect(response.body.errors).toBeUndefined();
      expect(response.body.data?.updateProfile.version).toBe(2);
      expect((response.body as { extensions?: unknown }).extensions).toEqual({ propagation: 'pending' });
      expect(await metric(c, 'cacheside_write_propagation_total{outcome="pending"}')).toBe(1);
      // B still serves the replaced version: exactly what the notice warned about.
      expect((await readProfile(b, userId)).value.version).toBe(1);
      // A relay catches up later; from then on B serves the change.
      aStore.chaos.heal();
      expect(await b.app.relay.runOnce()).toBeGreaterThan(0);
      expect((await readProfile(b, userId)).value.version).toBe(2);
    } finally {
      aStore.chaos.heal();
      await c.close();
    }
  });
});

/** Unpublished outbox rows of a profile's change to `version`. */
async function unpublished(userId: number, version: number): Promise<number> {
  const rows = await b.testDb.database.db.execute<{ n: number }>(
    sql`select count(*)::int as n from outbox
        where entity = 'profile' and entity_id = ${userId} and version = ${version} and published_at is null`,
  );
  return Number(rowsOf<{ n: number }>(rows)[0]?.n ?? 0);
}

/** A sample of the instance's /metrics, by its exact name and labels. */
async function metric(t: TestApp, series: string): Promise<number> {
  const text = await (await t.fetch('/metrics')).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? Number.NaN : Number(line.slice(series.length + 1));
}
