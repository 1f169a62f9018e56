/**
 * The consistency monitor (src/cache/monitor/consistency-monitor.ts) finds what it exists to find:
 * a cached entry — or a page of ids, or a stored answer — still served older than its row a grace
 * after it was sampled. Driven by hand over
 * the memory store and a real database on a fake clock, then end to end in an app, where a stale
 * entry written into Redis behind cacheside's back shows up in /metrics.
 */
import { sql } from 'drizzle-orm';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, test } from 'vitest';
import { createEntryFactory } from '../../src/cache/entities/entries.js';
import { USER_DIRECTORY_ID } from '../../src/cache/entities/keys.js';
import { encodePage } from '../../src/cache/entities/page-codec.js';
import { createEntitySpecs } from '../../src/cache/entities/specs.js';
import { createConsistencyMonitor, type Violation } from '../../src/cache/monitor/consistency-monitor.js';
import type { Dependency } from '../../src/cache/store/contract.js';
import { createMemoryStore } from '../../src/cache/store/memory-store.js';
import { rowsOf } from '../../src/db/client.js';
import { createTestApp, REDIS_URL, type TestApp } from '../support/app.js';
import { insertUser } from '../support/consistency-sql.js';
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
    loadPage: fixture.repositories.userPage,
  });
  const cacheRow = async (userId: number) => {
    const rows = await specs.profile.load([userId]);
    await store.setMany([entries.fill(specs.profile, specs.profile.keyOf(userId), rows.get(userId)!)]);
    return specs.profile.keyOf(userId);
  };
  const changeRow = (userId: number) =>
    fixture.testDb.database.db.execute(sql`update profiles set bio = 'changed' where user_id = ${userId}`);
  /**
   * A page of user ids stored as the page reader stores it: PostgreSQL's range under the directory's
   * current version, unless `as` names other ids or a directory version (written to the store too).
   */
  const cachePage = async (first: number, after: number, as: { ids?: number[]; version?: number } = {}) => {
    const directoryKey = specs.userDirectory.keyOf(USER_DIRECTORY_ID);
    const row = (await specs.userDirectory.load([USER_DIRECTORY_ID])).get(USER_DIRECTORY_ID)!;
    const directory = as.version === undefined ? row : { ...row, version: as.version };
    await store.setMany([entries.fill(specs.userDirectory, directoryKey, directory)]);
    const version = specs.userDirectory.versionOf(directory);
    const key = keys.page(first, after);
    const page = as.ids
      ? { ids: as.ids, hasMore: false }
      : await fixture.repositories.userPage({ first, after });
    const { generation } = await store.getDependent(key, clock.now());
    await store.setDependent({
      key,
      generation,
      payload: encodePage(page),
      dependencies: [{ key: directoryKey, kind: 'value', version }],
      ttlMs: 60_000,
    });
    return { key, directoryKey, version };
  };
  /** The empty page after the last user, then a user inserted with no trigger: one page suspect. */
  const suspectPage = async (tag: string) => {
    const last = await lastId();
    const page = await cachePage(5, last);
    const added = await insertUserUnseen(`monitor_${tag}_${last}`);
    await monitor.check([page.key]);
    expect(monitor.suspects).toBe(1);
    return { ...page, last, added };
  };
  /**
   * A stored answer as the response tier stores it, depending on `dependencies` (whose entries the
   * store must hold at those versions for it to be served).
   */
  const cacheAnswer = async (digest: string, dependencies: Dependency[]) => {
    const key = keys.response(digest.padEnd(16, '0'));
    const { generation } = await store.getDependent(key, clock.now());
    await store.setDependent({
      key,
      generation,
      payload: new TextEncoder().encode('{"data":{}}'),
      dependencies,
      ttlMs: 60_000,
    });
    expect((await store.getDependent(key, clock.now())).status).toBe('current');
    return key;
  };
  /** An answer over user `userId`'s profile at version 1, then that row changed with no relay: one suspect. */
  const suspectAnswer = async (userId: number) => {
    const profile = await cacheRow(userId);
    const key = await cacheAnswer(`answer${userId}`, [{ key: profile, kind: 'value', version: 1 }]);
    await monitor.check([key]);
    expect(monitor.suspects).toBe(0); // as PostgreSQL has it
    await changeRow(userId);
    await monitor.check([key]); // the answer alone: the profile's own entry is not in this sample
    expect(monitor.suspects).toBe(1);
    return { key, profile };
  };
  return {
    clock,
    store,
    specs,
    entries,
    monitor,
    violations,
    cacheRow,
    changeRow,
    cachePage,
    suspectPage,
    cacheAnswer,
    suspectAnswer,
  };
}

/** The highest user id now: a page after it is empty until a user is added. */
async function lastId(): Promise<number> {
  const result = await fixture.testDb.database.db.execute(sql`select max(id) as last from users`);
  return Number(rowsOf<{ last: number }>(result)[0]!.last);
}

/** A user inserted with the row triggers off (a bulk load): no directory bump, no outbox row. */
async function insertUserUnseen(name: string): Promise<number> {
  return fixture.testDb.database.db.transaction(async (tx) => {
    await tx.execute(sql`set local session_replication_role = replica`);
    const [row] = rowsOf<{ id: number }>(
      await tx.execute(
        sql`insert into users (name, email) values (${name}, ${`${name}@example.com`}) returning id`,
      ),
    );
    await tx.execute(sql`insert into profiles (user_id, display_name) values (${row!.id}, 'unseen')`);
    return Number(row!.id);
  });
}

/** The same user deleted again, triggers off. */
async function deleteUserUnseen(id: number): Promise<void> {
  await fixture.testDb.database.db.transaction(async (tx) => {
    await tx.execute(sql`set local session_replication_role = replica`);
    await tx.execute(sql`delete from profiles where user_id = ${id}`);
    await tx.execute(sql`delete from users where id = ${id}`);
  });
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

describe('the monitor on pages of user ids', () => {
  test('a page still vouched for a grace after PostgreSQL gained an id in its range is a violation, with both', async () => {
    const t = build();
    const last = await lastId();
    const { key } = await t.cachePage(5, last);
    await t.monitor.check([key]);
    expect(t.monitor.suspects).toBe(0); // as PostgreSQL has it: empty

    const added = await insertUserUnseen(`monitor_unseen_${last}`); // no trigger: no directory bump
    await t.monitor.check([key]);
    expect(t.monitor.suspects).toBe(1);
    t.clock.advance(GRACE_MS - 1);
    await t.monitor.check([]);
    expect(t.monitor.violations).toBe(0); // within the grace
    t.clock.advance(1);
    await t.monitor.check([]);
    expect(t.violations).toEqual([{ entity: 'userPage', key, cachedIds: [], currentIds: [added] }]);
  });

  test('nor is one recomputed under a newer directory version with the same ids (an insert and its delete relayed)', async () => {
    const t = build();
    const { key, last, version } = await t.suspectPage('aba');
    // The relay bumped the directory twice (the insert, then a delete), and the page was computed
    // again under the newer version — and another insert is still in its relay's window (as the
    // unseen user stands for here).
    expect((await t.cachePage(5, last, { ids: [], version: version + 2 })).key).toBe(key);
    t.clock.advance(GRACE_MS);
    await t.monitor.check([]);
    expect([t.monitor.violations, t.monitor.suspects]).toEqual([0, 0]);
  });

  test('nor one whose range PostgreSQL gave back within the grace', async () => {
    const t = build();
    const { added } = await t.suspectPage('back');
    await deleteUserUnseen(added); // PostgreSQL holds what the page says again
    t.clock.advance(GRACE_MS);
    await t.monitor.check([]);
    expect([t.monitor.violations, t.monitor.suspects]).toEqual([0, 0]);
  });

  test('nor one the store replaced with other ids within the grace', async () => {
    const t = build();
    const { last } = await t.suspectPage('replaced');
    await t.cachePage(5, last); // what PostgreSQL has now, at the same directory version
    t.clock.advance(GRACE_MS);
    await t.monitor.check([]);
    expect([t.monitor.violations, t.monitor.suspects]).toEqual([0, 0]);
  });

  test('a page whose directory moved within the grace (the relay tombstoned it) is not a violation', async () => {
    const t = build();
    const { directoryKey, version } = await t.suspectPage('repaired');
    await t.store.setMany([t.entries.tombstone(directoryKey, version + 1)]);
    t.clock.advance(GRACE_MS);
    await t.monitor.check([]);
    expect([t.monitor.violations, t.monitor.suspects]).toEqual([0, 0]);
  });
});

describe('the monitor on stored answers', () => {
  test('an answer still vouched for a grace after a row it read changed is a violation, naming the dependency', async () => {
    const t = build();
    const { key, profile } = await t.suspectAnswer(6);
    t.clock.advance(GRACE_MS - 1);
    await t.monitor.check([]);
    expect(t.monitor.violations).toBe(0); // within the grace
    t.clock.advance(1);
    await t.monitor.check([]);
    expect(t.violations).toEqual([
      { entity: 'response', key, dependency: profile, cachedVersion: 1, currentVersion: 2 },
    ]);
  });

  test('nor one that stopped validating within the grace (the relay tombstoned what it read)', async () => {
    const t = build();
    const { profile } = await t.suspectAnswer(7);
    await t.store.setMany([t.entries.tombstone(profile, 2)]);
    t.clock.advance(GRACE_MS);
    await t.monitor.check([]);
    expect([t.monitor.violations, t.monitor.suspects]).toEqual([0, 0]);
  });

  test('nor one stored again under its key at the new version within the grace', async () => {
    const t = build();
    const { profile } = await t.suspectAnswer(8);
    await t.cacheRow(8); // the row's version 2
    await t.cacheAnswer('answer8', [{ key: profile, kind: 'value', version: 2 }]);
    t.clock.advance(GRACE_MS);
    await t.monitor.check([]);
    expect([t.monitor.violations, t.monitor.suspects]).toEqual([0, 0]);
  });

  test('an answer over a row that is gone is a violation too', async () => {
    const t = build();
    const added = await insertUserUnseen(`monitor_gone_${await lastId()}`);
    const user = t.specs.user.keyOf(added);
    const row = (await t.specs.user.load([added])).get(added)!;
    await t.store.setMany([t.entries.fill(t.specs.user, user, row)]);
    const key = await t.cacheAnswer(`gone${added}`, [{ key: user, kind: 'value', version: row.version }]);
    await deleteUserUnseen(added); // no trigger: no tombstone for the user's entry
    await t.monitor.check([key]);
    t.clock.advance(GRACE_MS);
    await t.monitor.check([]);
    expect(t.violations).toEqual([
      { entity: 'response', key, dependency: user, cachedVersion: row.version, currentVersion: undefined },
    ]);
  });

  test('an answer that read "no such id" for a row that exists is a violation too', async () => {
    const t = build();
    const added = await insertUserUnseen(`monitor_answer_${await lastId()}`);
    try {
      const user = t.specs.user.keyOf(added);
      await t.store.setMany([t.entries.fill(t.specs.user, user, null)]);
      const key = await t.cacheAnswer(`absent${added}`, [{ key: user, kind: 'negative', version: 0 }]);
      await t.monitor.check([key]);
      t.clock.advance(GRACE_MS);
      await t.monitor.check([]);
      expect(t.violations).toEqual([
        { entity: 'response', key, dependency: user, cachedVersion: 0, currentVersion: 1 },
      ]);
    } finally {
      await deleteUserUnseen(added);
    }
  });
});

describe('the monitor in an app', () => {
  let t: TestApp | undefined;
  const redis = new Redis(REDIS_URL);
  afterAll(async () => {
    await t?.close();
    redis.disconnect();
  });
  /** An app whose monitor samples often and forgives little: a violation is what the test makes. */
  const watchedApp = (label: string) =>
    createTestApp({
      label,
      env: { CONSISTENCY_SAMPLE_INTERVAL_MS: '20', CONSISTENCY_GRACE_MS: '200' },
      expectViolations: true,
    });
  const untilCounted = (app: TestApp, entity: string) =>
    until(`the monitor to count a violation of ${entity}`, async () => {
      const text = await (await app.fetch('/metrics')).text();
      return new RegExp(`cacheside_consistency_violations_total\\{entity="${entity}"\\} [1-9]`).test(text);
    });

  test('a stale entry written into Redis behind the API is found and counted in /metrics', async () => {
    t = await watchedApp('monitor_app');
    const app = t;
    expect((await app.gql('{ user(id: "4") { profile { bio } } }')).body.errors).toBeUndefined();
    // Someone rewrites the cached profile at version 0, below its row's 1, bypassing every fence.
    const key = `${app.prefix}:v1:profile:{4}`;
    const raw = (await redis.getBuffer(key))!;
    await redis.set(key, Buffer.concat([Buffer.from('v:0'), raw.subarray(raw.indexOf(':', 2))]), 'KEEPTTL');

    await untilCounted(app, 'profile');
    expect(app.app.cache.monitor!.violations).toBeGreaterThan(0);
  });

  test('a page of ids cached before a user was inserted with no trigger is found and counted in /metrics', async () => {
    const app = await watchedApp('monitor_page');
    try {
      const page = '{ userPage(first: 100, after: "1") { nodes { id } } }';
      const before = await app.gql<{ userPage: { nodes: { id: string }[] } }>(page);
      expect(before.body.errors).toBeUndefined();
      // A bulk load behind the cache's back, and no purge: the cached page lacks the new user.
      await insertUser(app, 'monitor page unseen', { triggers: false });
      await untilCounted(app, 'userPage');
    } finally {
      await app.close();
    }
  });

  test('an answer stored before its profile was changed with no trigger is found and counted in /metrics', async () => {
    const app = await createTestApp({
      label: 'monitor_answer',
      env: { CONSISTENCY_SAMPLE_INTERVAL_MS: '20', CONSISTENCY_GRACE_MS: '200', RESPONSE_CACHE: 'on' },
      expectViolations: true,
    });
    try {
      // The series exists from the start, at 0: an alert on its increase sees the first violation.
      expect(await (await app.fetch('/metrics')).text()).toContain(
        'cacheside_consistency_violations_total{entity="response"} 0',
      );
      const query = '{ user(id: "5") { profile { bio } } }';
      await app.gql(query);
      expect((await app.gql(query)).headers.get('x-cache')).toBe('HIT'); // stored, and served
      // A bulk update behind the cache's back, and no purge: the profile's entry and the answer over
      // it both stay at version 1.
      await app.testDb.database.db.transaction(async (tx) => {
        await tx.execute(sql`set local session_replication_role = replica`);
        await tx.execute(sql`update profiles set bio = 'unseen', version = version + 1 where user_id = 5`);
      });
      await untilCounted(app, 'response');
    } finally {
      await app.close();
    }
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
