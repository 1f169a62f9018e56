/**
 * The bypass loads (src/cache/read/bypass.ts), built directly over the real profile spec of a
 * private, seeded PostgreSQL database: requests whose store lookups fail one after another — as
 * they do behind a stalled Redis, each at its own timeout — share one PostgreSQL load, as long as
 * each failed while the load was still waiting for the lookups of its keys.
 *
 * The lookups are promises the test settles by hand, so the interleaving is made, not hoped for.
 * Seed: users 1..5, each with a profile.
 */
import { setImmediate as settle } from 'node:timers/promises';
import { expect, test } from 'vitest';
import { createEntitySpecs } from '../../src/cache/entities/specs.js';
import { createBypassLoads } from '../../src/cache/read/bypass.js';
import { deferred, readPathFixture } from '../support/unit-kit.js';

const fixture = readPathFixture('bypass', 5);

test('three lookups of one key failing in turn, the third begun after the first failed: one SQL load', async () => {
  const { profile } = createEntitySpecs({
    keys: fixture.keys,
    repositories: fixture.repositories,
    config: fixture.config,
  });
  let clock = 0;
  const bypass = createBypassLoads(() => ++clock);
  const key = profile.keyOf(1);

  /** A request: its store lookup (settled by the test), then, once it failed, the bypass load. */
  const request = () => {
    const lookup = deferred<never>();
    const loadCalled = deferred();
    const answer = bypass
      .track([key], () => lookup.promise)
      .catch(() => {
        const loaded = bypass.load(profile, [1]);
        loadCalled.resolve();
        return loaded;
      });
    return { fail: () => lookup.reject(new Error('store timeout')), loadCalled: loadCalled.promise, answer };
  };

  const a = request();
  const b = request();
  a.fail();
  // A's load is waiting for B's lookup of the same key.
  await a.loadCalled;
  // C looks up only now: the load must wait for it too, or C, failing after it was issued, loads again.
  const c = request();
  b.fail();
  await b.loadCalled;
  await settle();
  await settle();
  c.fail();

  const answers = await Promise.all([a.answer, b.answer, c.answer]);
  for (const answer of answers) expect(answer.get(1)?.value).toMatchObject({ userId: 1 });
  expect(fixture.loads).toEqual([{ query: expect.any(String), ids: [1] }]);
});
