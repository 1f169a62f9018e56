/**
 * Consistency guarantee 2 (docs/consistency.md), the stale-set race, made to happen on purpose: a
 * hook pauses a reader on A that holds old rows while a writer on B commits. The late fill is
 * refused by the version fence, and a read that starts after the write returned never gets the old
 * rows.
 *
 * How: two app instances, A and B, that share one PostgreSQL database and one Redis key prefix, as
 * two servers would (test/support/instance-pair.ts), with their relays stopped and driven with
 * `relay.runOnce()`, so that every invalidation happens exactly when a test says. A pauses after its
 * SQL reads when a test asks (`pauseA`), and its store tells when a request has looked at the cache
 * (`aStore.nextRead`). Seed: users 1..40, 3 posts each; the tests work on users 11 to 14.
 */
import { setImmediate as nextMacrotask } from 'node:timers/promises';
import { sql } from 'drizzle-orm';
import { afterEach, describe, expect, test } from 'vitest';
import { createdPost, readNewestPost, readProfile, updated } from '../support/consistency-api.js';
import { drainOutbox, rows } from '../support/consistency-sql.js';
import { headerOf, postListKey, profileKey, redis, useRawRedis } from '../support/consistency-redis.js';
import { openForSuite, twoInstances } from '../support/instance-pair.js';

useRawRedis();

describe('two instances, relays driven by hand', () => {
  const { a, b, aStore, pauseA, releasePause } = openForSuite(() =>
    twoInstances({ label: 'stale_set_race', relays: 'manual', seed: { users: 40, postsPerUser: 3 } }),
  );

  afterEach(() => {
    // A failed test must not leave a request paused for the next one.
    releasePause();
  });

  describe('2. the stale-set race, made to happen', () => {
    // Users 11, 12, 13 and 14.
    test('a reader paused with old rows loses to a writer on the other instance (the key held a tombstone)', async () => {
      const key = profileKey(a, 11);
      expect((await readProfile(a, 11)).value.version).toBe(1);
      // A change outside the API, announced by the relay: the key now holds a tombstone at version 2.
      await rows(b, sql`update profiles set bio = 'changed by SQL' where user_id = 11`);
      await drainOutbox(b);
      expect(headerOf(await redis.getBuffer(key))).toEqual({ kind: 'tombstone', version: 2 });

      const pause = pauseA('profiles', 11);
      const reader = readProfile(a, 11);
      await pause.reached; // A has read version 2 from PostgreSQL and holds it, unfilled.

      const written = await updated(b, 11, { bio: 'written on B' });
      expect(written.version).toBe(3);
      const afterWrite = await redis.getBuffer(key);
      expect(headerOf(afterWrite)).toEqual({ kind: 'value', version: 3 });

      pause.release();
      const late = await reader;
      // It started before the write, so the older answer is allowed; its fill is not.
      expect(late.value).toMatchObject({ version: 2, bio: 'changed by SQL' });
      expect(late.outcomes).toEqual(['miss']);
      expect(late.cacheStatus).not.toMatch(/stored/);
      expect(await redis.getBuffer(key)).toEqual(afterWrite);

      for (const t of [a, b]) {
        const after = await readProfile(t, 11);
        expect(after.value).toMatchObject({ version: 3, bio: 'written on B' });
        expect(after.xCache).toBe('HIT');
        expect(after.sql).toBe(0);
      }
    });

    test('the same when the key held nothing at all', async () => {
      const key = profileKey(a, 12);
      await a.gql(`{ user(id: "12") { name } }`); // the user only: the profile key stays empty
      expect(await redis.getBuffer(key)).toBeNull();

      const pause = pauseA('profiles', 12);
      const reader = readProfile(a, 12);
      await pause.reached;

      const written = await updated(b, 12, { bio: 'written on B' });
      expect(written.version).toBe(2);
      const afterWrite = await redis.getBuffer(key);
      expect(headerOf(afterWrite)).toEqual({ kind: 'value', version: 2 });

      pause.release();
      const late = await reader;
      expect(late.value.version).toBe(1);
      expect(late.cacheStatus).not.toMatch(/stored/);
      expect(await redis.getBuffer(key)).toEqual(afterWrite);

      for (const t of [a, b]) {
        const after = await readProfile(t, 12);
        expect(after.value).toMatchObject({ version: 2, bio: 'written on B' });
        expect(after.xCache).toBe('HIT');
        expect(after.sql).toBe(0);
      }
    });

    test('a read that starts after createPost returned does not get a list loaded before it (same instance)', async () => {
      // Reader 1 on A loads author 13's list and is paused holding it; the writer on B commits a post
      // and tombstones the list; reader 2 on A starts after the write returned, misses the tombstone —
      // and must not be handed reader 1's list, which was read before the post existed.
      await a.gql(`{ user(id: "13") { name } }`);
      const key = postListKey(a, 13);
      const pause = pauseA('postIdsByAuthor', 13);
      const first = readNewestPost(a, 13);
      await pause.reached;

      const post = await createdPost(b, 13, 'Posted on B');
      expect(headerOf(await redis.getBuffer(key))).toMatchObject({ kind: 'tombstone' });

      const looked = aStore.nextRead(key);
      const second = readNewestPost(a, 13);
      await looked; // reader 2 has seen the tombstone…
      await nextMacrotask(); // …and acted on it (everything it does next without I/O is done)
      pause.release();

      expect((await first).value?.id).not.toBe(post.id); // started before the write: allowed
      expect((await second).value).toEqual({ id: post.id, title: 'Posted on B' });
      expect((await readNewestPost(a, 13)).value?.id).toBe(post.id);
      expect((await readNewestPost(b, 13)).value?.id).toBe(post.id);
    });

    test('a read that starts after updateProfile returned (and the relay announced it) does not get the older row (same instance)', async () => {
      // The same race for a profile: reader 1 on A holds version 1; the write on B returns version 2
      // and the relay publishes its event; reader 2 on A starts now. It must see version 2, whether
      // from the cache (the event must not have made the written-through value unservable) or from
      // its own load — never from reader 1's flight.
      await a.gql(`{ user(id: "14") { name } }`);
      const pause = pauseA('profiles', 14);
      const first = readProfile(a, 14);
      await pause.reached; // reader 1 holds version 1

      const written = await updated(b, 14, { bio: 'written on B' });
      expect(written.version).toBe(2);
      // The relay announces the write, as it does within OUTBOX_POLL_INTERVAL_MS in production.
      expect(await drainOutbox(b)).toBeGreaterThanOrEqual(1);

      const key = profileKey(a, 14);
      const looked = aStore.nextRead(key);
      const second = readProfile(a, 14);
      await looked;
      await nextMacrotask();
      pause.release();

      expect((await first).value.version).toBe(1);
      const late = await second;
      expect(late.value).toMatchObject({ version: 2, bio: 'written on B' });
    });
  });
});
