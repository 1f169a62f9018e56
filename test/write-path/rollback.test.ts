/**
 * Consistency guarantee 4 (docs/consistency.md): a rollback never touches the cache, the outbox or
 * the events channel, whether a trigger fails the transaction at COMMIT (the latest moment, the one
 * that catches a cache write made too early) or expectedVersion ends it with a CONFLICT: Redis
 * stays byte-identical.
 *
 * How: two app instances, A and B, that share one PostgreSQL database and one Redis key prefix, as
 * two servers would (test/support/instance-pair.ts), with their relays stopped and driven with
 * `relay.runOnce()`, so that every invalidation happens exactly when a test says. Seed: users
 * 1..40, 3 posts each; the tests work on users 31 and 32.
 */
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readProfile, updated, updateProfile } from '../support/consistency-api.js';
import { drainOutbox, lastOutboxId, profileRow, rows, unpublishedCount } from '../support/consistency-sql.js';
import {
  dumpRedis,
  eventsChannel,
  eventsIn,
  listen,
  profileKey,
  useRawRedis,
} from '../support/consistency-redis.js';
import { openForSuite, twoInstances } from '../support/instance-pair.js';

useRawRedis();

describe('two instances, relays driven by hand', () => {
  const { a, b } = openForSuite(() =>
    twoInstances({ label: 'rollback', relays: 'manual', seed: { users: 40, postsPerUser: 3 } }),
  );

  describe('4. a rollback leaves no trace', () => {
    // Users 31 and 32.
    let events: Awaited<ReturnType<typeof listen>>;

    beforeAll(async () => {
      // Fails the transaction at COMMIT, after the UPDATE (and its outbox row) went through: the
      // latest moment a failure can happen, and the one that catches a cache write made too early.
      await rows(
        b,
        sql.raw(`
          create function test_reject_at_commit() returns trigger language plpgsql as $$
          begin
            if new.bio = 'rejected at commit' then raise exception 'rejected at commit by the test'; end if;
            return null;
          end $$`),
      );
      await rows(
        b,
        sql.raw(`
          create constraint trigger test_reject_at_commit after update on profiles
            deferrable initially deferred for each row execute function test_reject_at_commit()`),
      );
      events = await listen(eventsChannel(b));
    });

    afterAll(async () => {
      await events?.close();
    });

    /** Warms the profile on both instances and empties the backlog, so nothing else moves. */
    async function quiet(userId: number) {
      await readProfile(a, userId);
      await readProfile(b, userId);
      await drainOutbox(b);
      await events.flush();
      expect(await unpublishedCount(b)).toBe(0);
    }

    async function expectNoTrace(run: () => Promise<void>, userId: number) {
      const rowBefore = await profileRow(b, userId);
      const redisBefore = await dumpRedis(b);
      const outboxBefore = await lastOutboxId(b);
      expect(Object.keys(redisBefore)).toContain(profileKey(b, userId));

      await run();

      expect(await profileRow(b, userId)).toEqual(rowBefore);
      expect(await lastOutboxId(b)).toBe(outboxBefore);
      expect(await unpublishedCount(b)).toBe(0);
      expect(await dumpRedis(b)).toEqual(redisBefore);
      expect(await b.app.relay.runOnce()).toBe(0);
      expect(await a.app.relay.runOnce()).toBe(0);
      expect(await events.flush()).toEqual([]);
      expect(await dumpRedis(b)).toEqual(redisBefore);
    }

    test('a transaction that fails at commit: Redis byte-identical, no outbox row, no event', async () => {
      await quiet(31);
      await expectNoTrace(async () => {
        const response = await updateProfile(a, 31, { bio: 'rejected at commit' });
        expect(response.body.data ?? null).toBeNull();
        expect(response.body.errors).toHaveLength(1);
      }, 31);
      // Both instances still serve the committed row.
      for (const t of [a, b]) expect((await readProfile(t, 31)).value).toMatchObject({ version: 1 });

      // The control: the same path with a committed change does leave an outbox row and an event.
      const written = await updated(a, 31, { bio: 'accepted' });
      expect(await drainOutbox(b)).toBe(1);
      expect(eventsIn(await events.flush())).toEqual([
        { entity: 'profile', id: 31, version: written.version },
      ]);
    });

    test('an expectedVersion CONFLICT: Redis byte-identical, no outbox row, no event', async () => {
      await quiet(32);
      await expectNoTrace(async () => {
        const response = await updateProfile(b, 32, { bio: 'too late', expectedVersion: 7 });
        expect(response.body.errors?.map((e) => e.extensions?.code)).toEqual(['CONFLICT']);
      }, 32);
    });
  });
});
