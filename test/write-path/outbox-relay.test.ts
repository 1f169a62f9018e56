/**
 * The outbox relay (src/cache/write/outbox-relay.ts), built directly over a private PostgreSQL
 * database and the memory store. Rows reach the outbox the way they do in production: the migration's
 * triggers write them when a test changes `profiles` or `posts` by plain SQL. Each test then drives the
 * relay by hand (`runOnce`, `drain`; the polling loop is never started) and looks at
 *   - the outbox rows themselves (published or not),
 *   - what the store holds afterwards (tombstones and their versions),
 *   - the messages on the events channel (through the store's own `subscribe`),
 *   - the store calls (a recording wrapper that can also hold a call, test/support/unit-kit.ts).
 * Faults come from the chaos double; the overlap of two relays is made to happen on purpose by
 * holding one inside its transaction (its `setMany` waits on a gate the test opens).
 *
 * Seed: users 1..30 with a profile each (version 1) and one post each; the seed leaves no outbox rows,
 * and every test starts with an empty outbox. Each test changes its own users.
 */
import { setImmediate as settle } from 'node:timers/promises';
import { asc, isNull, sql } from 'drizzle-orm';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { createEntryFactory } from '../../src/cache/entities/entries.js';
import { createCacheKeys } from '../../src/cache/entities/keys.js';
import { createEntitySpecs } from '../../src/cache/entities/specs.js';
import {
  decodeEvents,
  isCachedEntity,
  type InvalidationEvent,
} from '../../src/cache/events/invalidation-events.js';
import type { CacheStore } from '../../src/cache/store/contract.js';
import { createMemoryStore } from '../../src/cache/store/memory-store.js';
import { createOutboxRelay, type OutboxRelay } from '../../src/cache/write/outbox-relay.js';
import { loadConfig } from '../../src/config.js';
import { createDatabase, rowsOf, type Database, type Db } from '../../src/db/client.js';
import { createOutboxRepository } from '../../src/db/outbox-repository.js';
import { createRepositories } from '../../src/db/repositories.js';
import { outbox } from '../../src/db/schema.js';
import { seedDatabase } from '../../src/db/seed.js';
import type { Logger } from '../../src/observability/logger.js';
import { createLogger } from '../../src/observability/logger.js';
import { createChaosStore } from '../support/chaos-store.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { uniquePrefix } from '../support/redis.js';
import { capturingLogger, deferred, fakeClock, gate, spyStore } from '../support/unit-kit.js';

const prefix = uniquePrefix('outbox_relay');
const config = loadConfig({ CACHE_PREFIX: prefix, LOG_LEVEL: 'silent' }).cache;
const keys = createCacheKeys(prefix);

let testDb: TestDatabase;
let db: Db;

beforeAll(async () => {
  testDb = await createTestDatabase('outbox_relay');
  db = testDb.database.db;
  await seedDatabase(db, { users: 30, postsPerUser: 1, announce: false });
});
beforeEach(async () => {
  await db.delete(outbox);
});
afterAll(async () => {
  await testDb?.drop();
});

interface RelayParts {
  /** The store the relay writes to. @default the memory store itself */
  readonly store?: CacheStore;
  readonly db?: Db;
  readonly batchSize?: number;
  readonly logger?: Logger;
}

/** A relay over `store` (by default the memory store), as one instance builds it. */
function relayOver(memory: CacheStore, clock: ReturnType<typeof fakeClock>, parts: RelayParts = {}) {
  const applied: InvalidationEvent[][] = [];
  const on = parts.db ?? db;
  const relay: OutboxRelay = createOutboxRelay({
    db: on,
    outbox: createOutboxRepository(),
    store: parts.store ?? memory,
    keys,
    specs: createEntitySpecs({ keys, repositories: createRepositories(on), config }),
    entries: createEntryFactory({ config, now: clock.now }),
    logger: parts.logger ?? createLogger('silent'),
    // Never used: the polling loop is not started; tests call runOnce and drain.
    intervalMs: 60_000,
    ...(parts.batchSize !== undefined && { batchSize: parts.batchSize }),
    onApplied: (events) => applied.push([...events]),
  });
  return { relay, applied };
}

/** A fresh memory store and a listener on its events channel. */
async function setup() {
  const clock = fakeClock();
  const memory = createMemoryStore({ now: clock.now });
  const messages: string[] = [];
  let arrived = deferred();
  await memory.subscribe(keys.eventsChannel, (_channel, message) => {
    messages.push(message);
    arrived.resolve();
  });
  return {
    clock,
    memory,
    /** Every message published so far, decoded. */
    published: () =>
      messages.map((m) => {
        const decoded = decodeEvents(m);
        if (decoded instanceof Error) throw decoded;
        return decoded.events;
      }),
    /** Resolves once the next message has arrived (at once if one arrived since the last call). */
    async nextMessage() {
      await arrived.promise;
      arrived = deferred();
    },
    /** What the store holds for events' keys: kind and version. */
    async held(events: readonly Pick<InvalidationEvent, 'entity' | 'id'>[]) {
      const found = await memory.getMany(events.map((e) => keys.entity(e.entity, e.id)));
      return found.map((e) => (e === undefined ? undefined : { kind: e.kind, version: e.version }));
    },
  };
}

/** A change by plain SQL, outside the API: the triggers raise the versions and write outbox rows. */
async function touchProfiles(userIds: readonly number[]): Promise<void> {
  await db.execute(
    sql`update profiles set bio = bio || '.' where user_id = any(${`{${userIds.join(',')}}`}::int[])`,
  );
}

async function insertPost(authorId: number): Promise<number> {
  const [row] = rowsOf<{ id: number }>(
    await db.execute(
      sql`insert into posts (author_id, title, body) values (${authorId}, 'relayed', 'a post') returning id`,
    ),
  );
  return Number(row!.id);
}

/** The events the outbox rows stand for, oldest first (the rows these tests read name cached entities). */
async function outboxEvents(): Promise<InvalidationEvent[]> {
  const rows = await db.select().from(outbox).orderBy(asc(outbox.id));
  return rows.map((r) => {
    if (!isCachedEntity(r.entity)) throw new Error(`unexpected outbox row of entity ${r.entity}`);
    return { entity: r.entity, id: r.entityId, version: r.version };
  });
}

async function unpublished(): Promise<number> {
  return (await db.select({ id: outbox.id }).from(outbox).where(isNull(outbox.publishedAt))).length;
}

describe('outbox relay', () => {
  test('runOnce tombstones each event’s key at its version, publishes one message, marks the rows published', async () => {
    const t = await setup();
    const store = spyStore(t.memory);
    const { relay, applied } = relayOver(t.memory, t.clock, { store });
    await touchProfiles([1, 2]);
    const postId = await insertPost(3);
    const events = await outboxEvents();
    // What the triggers wrote: both profiles at version 2; the new post at 1, and its author's list.
    expect([...events].sort((x, y) => x.entity.localeCompare(y.entity) || x.id - y.id)).toEqual([
      { entity: 'post', id: postId, version: 1 },
      { entity: 'profile', id: 1, version: 2 },
      { entity: 'profile', id: 2, version: 2 },
      { entity: 'userPosts', id: 3, version: 1 },
    ]);

    expect(await relay.runOnce()).toBe(4);

    expect(await t.held(events)).toEqual(events.map((e) => ({ kind: 'tombstone', version: e.version })));
    await t.nextMessage();
    await settle(); // a second message, if one had been published, would have arrived by now
    expect(t.published()).toEqual([events]);
    expect(applied).toEqual([events]);
    expect(await unpublished()).toBe(0);
    expect(store.spy.methods()).toEqual(['setMany', 'publish']);

    // Nothing left: the next run publishes nothing and touches no key.
    expect(await relay.runOnce()).toBe(0);
    await settle();
    expect(t.published()).toHaveLength(1);
    expect(store.spy.methods()).toEqual(['setMany', 'publish']);
  });

  test.each(['setMany', 'publish'] as const)(
    'a store failure in runOnce (%s) rolls the transaction back: the rows stay unpublished and the next run applies them',
    async (method) => {
      const t = await setup();
      const chaos = createChaosStore(t.memory);
      const { relay } = relayOver(t.memory, t.clock, { store: chaos });
      await touchProfiles([4, 5]);
      const events = await outboxEvents();
      chaos.chaos.failNext(1, undefined, { methods: [method] });

      await expect(relay.runOnce()).rejects.toThrow(/chaos/);

      expect(chaos.chaos.injected).toBe(1);
      expect(await unpublished()).toBe(2);
      await settle();
      expect(t.published()).toEqual([]);
      // A failed publish comes after the tombstones landed: they stay (fenced, so applying them again
      // is harmless); a failed setMany landed nothing.
      expect(await t.held(events)).toEqual(
        method === 'publish'
          ? events.map((e) => ({ kind: 'tombstone', version: e.version }))
          : [undefined, undefined],
      );

      expect(await relay.runOnce()).toBe(2);

      expect(await unpublished()).toBe(0);
      await t.nextMessage();
      expect(t.published()).toEqual([events]);
      expect(await t.held(events)).toEqual(events.map((e) => ({ kind: 'tombstone', version: e.version })));
    },
  );

  test('a row of an unknown entity is skipped, marked published and logged', async () => {
    const t = await setup();
    const { logger, lines } = capturingLogger();
    const { relay } = relayOver(t.memory, t.clock, { logger });
    // Written by a newer build that caches something this one does not know.
    const [foreign] = await db
      .insert(outbox)
      .values({ entity: 'comment', entityId: 5, version: 1 })
      .returning();
    await touchProfiles([6]);

    // The count is of rows published (claimed and marked), the skipped row included: drain() and the
    // polling loop compare it with the batch size.
    expect(await relay.runOnce()).toBe(2);

    expect(await unpublished()).toBe(0);
    await t.nextMessage();
    expect(t.published()).toEqual([[{ entity: 'profile', id: 6, version: 2 }]]);
    const warnings = lines.filter((l) => l.msg === 'skipping outbox row of an unknown entity');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ level: 40, entity: 'comment', outboxId: foreign!.id });
    // Skipped for good: the next run does not see it again.
    expect(await relay.runOnce()).toBe(0);
    expect(lines.filter((l) => l.msg === 'skipping outbox row of an unknown entity')).toHaveLength(1);
  });

  test('drain() runs batches until the backlog is below a batch', async () => {
    const t = await setup();
    const store = spyStore(t.memory);
    const { relay } = relayOver(t.memory, t.clock, { store, batchSize: 3 });
    await touchProfiles([7, 8, 9, 10, 11, 12, 13, 14]);
    const events = await outboxEvents();
    expect(events).toHaveLength(8);

    await relay.drain();

    expect(await unpublished()).toBe(0);
    // Three batches, oldest rows first: 3, 3, then 2 (a short batch: nothing more was waiting).
    expect(store.spy.methods()).toEqual(['setMany', 'publish', 'setMany', 'publish', 'setMany', 'publish']);
    while (t.published().length < 3) await t.nextMessage();
    expect(t.published()).toEqual([events.slice(0, 3), events.slice(3, 6), events.slice(6)]);

    // An empty backlog: one look, no store call.
    store.spy.reset();
    await relay.drain();
    expect(store.spy.calls).toEqual([]);
  });

  test('drain() does not stop early when a full batch contains a row of an unknown entity', async () => {
    // runOnce counts the rows it claimed, not the events it applied: a full batch with one skipped
    // row is still a full batch, so drain (like the polling loop) goes on.
    const t = await setup();
    const { relay } = relayOver(t.memory, t.clock, { batchSize: 3 });
    await db.insert(outbox).values({ entity: 'comment', entityId: 1, version: 1 });
    await touchProfiles([15, 16, 17]);

    await relay.drain();

    expect(await unpublished()).toBe(0);
  });

  describe('two relays on one database', () => {
    let second: Database;
    beforeAll(async () => {
      // Its own pool, as another instance would have.
      second = await createDatabase({ kind: 'postgres', url: testDb.url }, { poolSize: 2 });
    });
    afterAll(async () => {
      await second?.close();
    });

    test('overlapping runs never publish one row twice: the second skips the rows the first holds', async () => {
      const t = await setup();
      const held = gate();
      let holding = true;
      // Relay A stops inside its transaction, with its rows claimed (locked), before it writes.
      const storeA = spyStore(t.memory, {
        before: (method) => (method === 'setMany' && holding ? held.wait() : undefined),
      });
      const a = relayOver(t.memory, t.clock, { store: storeA, batchSize: 3 });
      const b = relayOver(t.memory, t.clock, { db: second.db, batchSize: 3 });
      await touchProfiles([21, 22, 23, 24, 25, 26]);
      const events = await outboxEvents();

      const runA = a.relay.runOnce();
      try {
        await held.reached;
        holding = false;
        // B skips A's three rows (FOR UPDATE SKIP LOCKED) and takes the next three…
        expect(await b.relay.runOnce()).toBe(3);
        // …and then finds nothing it may take: the rest is A's.
        expect(await b.relay.runOnce()).toBe(0);
        expect(await unpublished()).toBe(3);
      } finally {
        held.open();
      }
      expect(await runA).toBe(3);

      expect(await unpublished()).toBe(0);
      expect(a.applied).toEqual([events.slice(0, 3)]);
      expect(b.applied).toEqual([events.slice(3)]);
      while (t.published().length < 2) await t.nextMessage();
      const all = t.published().flat();
      expect(all).toHaveLength(6);
      expect(new Set(all.map((e) => `${e.entity}:${e.id}:${e.version}`)).size).toBe(6);
      expect(await t.held(events)).toEqual(events.map((e) => ({ kind: 'tombstone', version: e.version })));
    });
  });
});
