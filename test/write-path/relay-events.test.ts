/**
 * Consistency guarantee 5 (docs/consistency.md), the outbox relay: it publishes what a write-
 * through missed (a change by plain SQL, a write-through that failed after commit, posts inserted,
 * re-dated or deleted by SQL), and a duplicated or reordered event changes nothing.
 *
 * How: two app instances, A and B, that share one PostgreSQL database and one Redis key prefix, as
 * two servers would (test/support/instance-pair.ts), with their relays stopped and driven with
 * `relay.runOnce()`, so that every invalidation happens exactly when a test says. Seed: users
 * 1..40, 3 posts each; the tests work on users 21 to 27.
 */
import { sql } from 'drizzle-orm';
import { describe, expect, test } from 'vitest';
import { createChaosStore } from '../support/chaos-store.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { readNewestPost, readProfile, updated } from '../support/consistency-api.js';
import { drainOutbox, outboxRows, rows } from '../support/consistency-sql.js';
import {
  eventsChannel,
  eventsIn,
  headerOf,
  listen,
  profileKey,
  rawEntry,
  redis,
  useRawRedis,
} from '../support/consistency-redis.js';
import { openForSuite, twoInstances } from '../support/instance-pair.js';
import { storeOf } from '../support/redis.js';

useRawRedis();

describe('two instances, relays driven by hand', () => {
  const { a, b } = openForSuite(() =>
    twoInstances({ label: 'relay_events', relays: 'manual', seed: { users: 40, postsPerUser: 3 } }),
  );

  describe('5. the outbox relay', () => {
    // Users 21 to 27.
    test('a committed change without write-through (plain SQL) is published by B.relay.runOnce()', async () => {
      const events = await listen(eventsChannel(b));
      try {
        await drainOutbox(b);
        await events.flush();
        for (const t of [a, b]) await readProfile(t, 21);
        expect((await readProfile(b, 21)).value.version).toBe(1);

        await rows(b, sql`update profiles set bio = 'fixed by an admin' where user_id = 21`);
        expect(await outboxRows(b, 'profile', 21)).toEqual([
          { id: expect.any(Number), version: 2, published: false },
        ]);
        // Until the relay runs, the cache legitimately still serves the old row.
        expect((await readProfile(b, 21)).value).toMatchObject({ version: 1 });

        expect(await b.app.relay.runOnce()).toBe(1);
        expect(await outboxRows(b, 'profile', 21)).toEqual([
          { id: expect.any(Number), version: 2, published: true },
        ]);
        expect(headerOf(await redis.getBuffer(profileKey(b, 21)))).toEqual({ kind: 'tombstone', version: 2 });
        expect(eventsIn(await events.flush())).toEqual([{ entity: 'profile', id: 21, version: 2 }]);

        const onA = await readProfile(a, 21);
        expect(onA.value).toMatchObject({ version: 2, bio: 'fixed by an admin' });
        expect(onA.outcomes).toEqual(['miss']);
        const again = await readProfile(b, 21);
        expect(again.value.version).toBe(2);
        expect(again.xCache).toBe('HIT');
      } finally {
        await events.close();
      }
    });

    test('a mutation whose write-through failed (Redis error after commit) still succeeds; one relay run heals the cache', async () => {
      // User 27, written through a third instance whose store refuses the write-through.
      const chaos = createChaosStore(storeOf(b.config));
      const d = await createTestApp({ label: 'consistency', share: b, store: chaos, startRelay: false });
      try {
        await drainOutbox(b);
        for (const t of [a, b, d]) expect((await readProfile(t, 27)).value.version).toBe(1);
        const key = profileKey(b, 27);
        const before = await rawEntry(key);

        chaos.chaos.failNext(1, undefined, { methods: ['setMany'] });
        const written = await updated(d, 27, { bio: 'committed while Redis failed' });
        expect(written.version).toBe(2);
        expect(chaos.chaos.injected).toBe(1);
        expect(await rawEntry(key)).toBe(before); // the write-through really did not happen
        expect(await outboxRows(b, 'profile', 27)).toEqual([
          { id: expect.any(Number), version: 2, published: false },
        ]);

        expect(await b.app.relay.runOnce()).toBe(1);
        for (const t of [a, b, d]) {
          expect((await readProfile(t, 27)).value).toMatchObject({
            version: 2,
            bio: 'committed while Redis failed',
          });
        }
      } finally {
        await d.close();
        await chaos.close();
      }
    });

    test('a post inserted by plain SQL reaches the author list on both instances after one relay run', async () => {
      await drainOutbox(b);
      const before = await readNewestPost(a, 22);
      await readNewestPost(b, 22);
      const [inserted] = await rows<{ id: number }>(
        b,
        sql`insert into posts (author_id, title, body) values (22, 'Backfilled', 'by SQL') returning id`,
      );
      const postId = Number(inserted!.id);
      const announced = await outboxRows(b, 'userPosts', 22);
      expect(announced).toEqual([{ id: expect.any(Number), version: expect.any(Number), published: false }]);
      expect((await readNewestPost(b, 22)).value).toEqual(before.value); // not yet

      expect(await b.app.relay.runOnce()).toBe(2); // the post and its author's list
      expect(await outboxRows(b, 'userPosts', 22)).toEqual([{ ...announced[0], published: true }]);
      for (const t of [a, b])
        expect((await readNewestPost(t, 22)).value).toEqual({ id: String(postId), title: 'Backfilled' });
    });

    test("a post re-dated by plain SQL (moved to the top of its author's list) reaches the list after one relay run", async () => {
      // User 25: posts 73 < 74 < 75, newest first. An admin pins the oldest one by giving it a new date.
      await drainOutbox(b);
      const [oldest] = await rows<{ id: number }>(
        b,
        sql`select min(id) as id from posts where author_id = 25`,
      );
      const pinned = String(oldest!.id);
      for (const t of [a, b]) expect((await readNewestPost(t, 25)).value?.id).not.toBe(pinned);

      await rows(b, sql`update posts set created_at = now() where id = ${Number(pinned)}`);
      // The trigger announces the post and its author's list.
      const announced = await outboxRows(b, 'userPosts', 25);
      expect(announced.length).toBeGreaterThan(0);
      expect(announced.every((r) => !r.published)).toBe(true);
      expect(await drainOutbox(b)).toBe(1 + announced.length);
      expect((await outboxRows(b, 'userPosts', 25)).every((r) => r.published)).toBe(true);

      for (const t of [a, b]) expect((await readNewestPost(t, 25)).value?.id).toBe(pinned);
    });

    test("a post deleted by plain SQL leaves its author's list after one relay run", async () => {
      // User 26: three posts. The middle one is deleted; posts(first: 2) must then be the other two.
      await drainOutbox(b);
      const ids = (
        await rows<{ id: number }>(b, sql`select id from posts where author_id = 26 order by id desc`)
      ).map((r) => String(r.id));
      expect(ids).toHaveLength(3);
      const FIRST_TWO = `query($id: ID!) { user(id: $id) { posts(first: 2) { id } } }`;
      const firstTwo = async (t: TestApp) =>
        (
          await t.gql<{ user: { posts: { id: string }[] } }>(FIRST_TWO, { variables: { id: '26' } })
        ).body.data?.user.posts.map((p) => p.id);
      for (const t of [a, b]) expect(await firstTwo(t)).toEqual([ids[0], ids[1]]);

      await rows(b, sql`delete from posts where id = ${Number(ids[1])}`);
      expect(await b.app.relay.runOnce()).toBe(2);

      for (const t of [a, b]) expect(await firstTwo(t)).toEqual([ids[0], ids[2]]);
    });

    test('reordered events (older versions, published late) change nothing', async () => {
      await updated(a, 23, { bio: 'second' });
      const latest = await updated(a, 23, { bio: 'third' });
      expect(latest.version).toBe(3);
      await drainOutbox(b);
      await readProfile(b, 23); // whatever the relay left, the key now holds version 3
      const key = profileKey(b, 23);
      const before = await redis.getBuffer(key);
      expect(headerOf(before)).toEqual({ kind: 'value', version: 3 });

      // A relay that was slow delivers the events of versions 2 and 1 now.
      await rows(
        b,
        sql`insert into outbox (entity, entity_id, version) values ('profile', 23, 2), ('profile', 23, 1)`,
      );
      expect(await b.app.relay.runOnce()).toBe(2);
      expect((await outboxRows(b, 'profile', 23)).every((r) => r.published)).toBe(true);

      expect(await redis.getBuffer(key)).toEqual(before);
      for (const t of [a, b]) {
        const after = await readProfile(t, 23);
        expect(after.value).toMatchObject({ version: 3, bio: 'third' });
        expect(after.xCache).toBe('HIT');
        expect(after.sql).toBe(0);
      }
    });

    test('a duplicated event (the relay announcing a write that was already written through) changes nothing', async () => {
      await drainOutbox(b);
      for (const t of [a, b]) await readProfile(t, 24);
      const written = await updated(a, 24, { bio: 'written through' });
      const key = profileKey(b, 24);
      const before = await rawEntry(key);
      expect(headerOf(await redis.getBuffer(key))).toEqual({ kind: 'value', version: written.version });

      // The write's own outbox row, and the same event once more, as an at-least-once relay may send it.
      await rows(
        b,
        sql`insert into outbox (entity, entity_id, version) values ('profile', 24, ${written.version})`,
      );
      expect(await b.app.relay.runOnce()).toBe(2);

      const onB = await readProfile(b, 24);
      expect.soft(onB.value).toMatchObject({ version: written.version, bio: 'written through' });
      expect.soft({ xCache: onB.xCache, sql: onB.sql }).toEqual({ xCache: 'HIT', sql: 0 });
      expect.soft(await rawEntry(key)).toEqual(before);
    });
  });
});
