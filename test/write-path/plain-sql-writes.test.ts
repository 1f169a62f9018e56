/**
 * Consistency guarantee 3 (docs/consistency.md): a change made by plain SQL, outside the API,
 * reaches the cache through the outbox relay, and both instances serve it within a bounded time.
 *
 * How: two app instances, A and B, that share one PostgreSQL database and one Redis key prefix, as
 * two servers would (test/support/instance-pair.ts), with their relays polling every 20 ms (as in
 * production, but faster). Seed: users 1..20, 3 posts each; the test works on user 15. The default
 * TTL: a short one let B's read, on a busy machine, come after A's fill had expired (a MISS where
 * the test needs the entry that the relay must invalidate).
 */
import { sql } from 'drizzle-orm';
import { describe, expect, test } from 'vitest';
import { until } from '../support/until.js';
import { readProfile, type ProfileOut } from '../support/consistency-api.js';
import { profileRow, rows } from '../support/consistency-sql.js';
import { openForSuite, twoInstances } from '../support/instance-pair.js';

describe('two instances, relays polling every 20 ms', () => {
  const env = { OUTBOX_POLL_INTERVAL_MS: '20' };
  const { a, b } = openForSuite(() =>
    twoInstances({ label: 'plain_sql_writes', relays: 'live', seed: { users: 20, postsPerUser: 3 }, env }),
  );

  test('3. an UPDATE by plain SQL is invalidated by the relay and served within a bounded time', async () => {
    // User 15.
    const before = (await readProfile(a, 15)).value;
    expect((await readProfile(b, 15)).xCache).toBe('HIT');

    await rows(a, sql`update profiles set bio = 'x' where user_id = 15`);

    // Until both serve it (the bound is liveness only: the relays poll every 20 ms).
    const served = new Map<string, ProfileOut>();
    await until('both instances to serve the change', async () => {
      for (const [name, t] of [
        ['A', a],
        ['B', b],
      ] as const) {
        const { value } = await readProfile(t, 15);
        if (value.bio === 'x') served.set(name, value);
      }
      return served.size === 2;
    });
    expect([...served.keys()].sort()).toEqual(['A', 'B']);
    for (const value of served.values()) {
      expect(value.version).toBeGreaterThan(before.version);
      expect(value.version).toBe((await profileRow(a, 15)).version);
    }
  });
});
