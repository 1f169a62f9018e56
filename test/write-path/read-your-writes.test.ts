/**
 * Consistency guarantee 1 (docs/consistency.md), read-your-writes across instances: once a mutation
 * has returned on A, B serves the new version, from the cache.
 *
 * How: two app instances, A and B, that share one PostgreSQL database and one Redis key prefix, as
 * two servers would (test/support/instance-pair.ts), with their relays stopped and driven with
 * `relay.runOnce()`, so that every invalidation happens exactly when a test says. Seed: users
 * 1..40, 3 posts each; the tests work on users 1 and 2.
 */
import { describe, expect, test } from 'vitest';
import { createdPost, readNewestPost, readProfile, updated } from '../support/consistency-api.js';
import { profileRow } from '../support/consistency-sql.js';
import { openForSuite, twoInstances } from '../support/instance-pair.js';
import { statusesOf } from '../support/debug.js';

describe('two instances, relays driven by hand', () => {
  const { a, b } = openForSuite(() =>
    twoInstances({ label: 'read_your_writes', relays: 'manual', seed: { users: 40, postsPerUser: 3 } }),
  );

  describe('1. read-your-writes across instances', () => {
    // Users 1 and 2.
    test('after updateProfile returns on A, B serves that version from the cache: HIT, 0 SQL', async () => {
      for (const t of [a, b, a, b]) expect((await readProfile(t, 1)).value.version).toBe(1);
      expect((await readProfile(b, 1)).xCache).toBe('HIT');

      const written = await updated(a, 1, { bio: 'written on A' });
      expect(written.version).toBe(2);

      const onB = await readProfile(b, 1);
      expect(onB.value).toMatchObject({ bio: 'written on A', version: 2 });
      expect(onB.xCache).toBe('HIT');
      expect(onB.outcomes).toEqual(['hit']);
      expect(onB.sql).toBe(0);
      expect(await profileRow(b, 1)).toMatchObject({ version: 2, bio: 'written on A' });
    });

    test("after createPost returns on A, the author's posts(first: 1) on B starts with it", async () => {
      // Warm the list on both, so that B holds a list without the new post.
      const before = await readNewestPost(b, 2);
      expect((await readNewestPost(a, 2)).value).toEqual(before.value);
      expect((await readNewestPost(b, 2)).xCache).toBe('HIT');

      const post = await createdPost(a, 2, 'Fresh from A');
      expect(Number(post.id)).toBeGreaterThan(Number(before.value!.id));

      const onB = await readNewestPost(b, 2);
      expect(onB.value).toEqual({ id: post.id, title: 'Fresh from A' });
      // The list was tombstoned by the write-through, so B reloaded it; the post itself was written through.
      expect(onB.outcomes).toEqual(['miss']);
      expect(statusesOf(onB.debug, `:post:{${post.id}}`)).toEqual(['hit']);
    });
  });
});
