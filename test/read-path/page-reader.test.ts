/**
 * Pages of user ids through the cache (src/cache/read/page-reader.ts), the entity tier alone (no
 * response tier), two instances sharing the real PostgreSQL and Redis: a warm page runs no SQL; a
 * user inserted or deleted by plain SQL ends it on both instances within the relay's bound; a range
 * an insert overtakes is never served again; an insert that fires no trigger ends it once purged;
 * bytes it cannot read, or a store that fails, cost a load, never an error.
 */
import { sql } from 'drizzle-orm';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createEntryFactory } from '../../src/cache/entities/entries.js';
import { createCacheKeys } from '../../src/cache/entities/keys.js';
import { MAX_PAGE_FILLS_PER_REQUEST } from '../../src/cache/read/page-reader.js';
import { forwardStore } from '../../src/cache/store/layers/forward.js';
import { createMemoryStore } from '../../src/cache/store/memory-store.js';
import { invalidateEntity } from '../../src/cache/write/purge.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { createChaosStore } from '../support/chaos-store.js';
import { insertUser, rows, unpublishedCount } from '../support/consistency-sql.js';
import { DEBUG, debugOf } from '../support/debug.js';
import { openForSuite, pauseNext, twoInstances, watchStore, type Pause } from '../support/instance-pair.js';
import { REDIS_URL, scanKeys } from '../support/redis.js';
import { generationOf } from '../support/store-contract.js';
import { until } from '../support/until.js';

/** Installed by a test: pauses the next matching SQL read of either instance (their afterQuery hook). */
let pause: Pause | undefined;

type Page = {
  userPage: { nodes: { id: string; profile: { displayName: string } }[]; nextCursor: string | null };
};
const pageQuery = (first: number, after: number) =>
  `{ userPage(first: ${first}${after === 0 ? '' : `, after: "${after}"`}) { nodes { id profile { displayName } } nextCursor } }`;
const idsOf = (r: { body: { data?: Page | null } }) => r.body.data?.userPage.nodes.map((n) => n.id);

describe('pages of user ids, entity tier only, two instances', () => {
  const { a, b } = openForSuite(() =>
    twoInstances({
      label: 'page_reader',
      relays: 'live',
      seed: { users: 12, postsPerUser: 1 },
      env: { RESPONSE_CACHE: 'off', OUTBOX_POLL_INTERVAL_MS: '20' },
      repositoryOptions: { afterQuery: (query, ids) => pause?.hook(query, ids) },
    }),
  );
  const page = (t: TestApp, first: number, after: number) =>
    t.gql<Page>(pageQuery(first, after), { headers: DEBUG });

  test('cold, a page is read by one range scan after the directory and stored; warm, on either instance, it runs 0 SQL and one round trip per loader level', async () => {
    const cold = await page(a, 4, 2);
    expect(cold.body.errors).toBeUndefined();
    expect(idsOf(cold)).toEqual(['3', '4', '5', '6']);
    expect(cold.body.data?.userPage.nextCursor).toBe('6');
    const coldKeys = debugOf(cold).lookups.map((l) => l.key);
    expect(coldKeys).toContain(a.app.cache.keys.entity('userDirectory', 1));

    for (const t of [a, b]) {
      const warm = await page(t, 4, 2);
      expect(idsOf(warm)).toEqual(['3', '4', '5', '6']);
      expect(warm.body.data?.userPage.nextCursor).toBe('6');
      const debug = debugOf(warm);
      // Three loader levels: the page, its users, their profiles — and no directory lookup.
      expect({ sql: debug.sqlStatements, roundTrips: debug.storeRoundTrips }).toEqual({
        sql: 0,
        roundTrips: 3,
      });
      expect(debug.lookups.map((l) => l.key)).not.toContain(a.app.cache.keys.entity('userDirectory', 1));
      expect(warm.headers.get('x-cache')).toBe('HIT');
    }
    // The last page says so, from the cache too.
    await page(a, 5, 10);
    const last = await page(b, 5, 10);
    expect([idsOf(last), last.body.data?.userPage.nextCursor, debugOf(last).sqlStatements]).toEqual([
      ['11', '12'],
      null,
      0,
    ]);
  });

  test('a user inserted or deleted by plain SQL ends the page on both instances', async () => {
    await page(a, 20, 8);
    expect(idsOf(await page(b, 20, 8))).toEqual(['9', '10', '11', '12']);

    await insertUser(a, 'Added by SQL');
    // Liveness only: the relays poll every 20 ms; the directory's tombstone ends the page.
    for (const t of [a, b]) {
      await until(
        'the inserted user on the page',
        async () => idsOf(await page(t, 20, 8))?.includes('13') === true,
      );
    }
    await rows(a, sql`delete from users where id = 10`);
    for (const t of [a, b]) {
      await until(
        'the deleted user gone from the page',
        async () => idsOf(await page(t, 20, 8))?.includes('10') === false,
      );
    }
    // Stored again at the new version: served with no SQL.
    await until(
      'the new page served from the cache',
      async () => debugOf(await page(b, 20, 8)).sqlStatements === 0,
    );
    expect(idsOf(await page(b, 20, 8))).toEqual(['9', '11', '12', '13']);
  });

  test('a page whose range an insert overtakes (paused after it, the relay run meanwhile) is never served again: the directory is read before the range', async () => {
    // The race this closes: were the directory read after the range, it would find the insert's
    // tombstone, load the new version, and vouch for a page that lacks the new user.
    const paused = (pause = pauseNext('userPage'));
    const first = page(a, 50, 1); // never asked before: loaded, and stored
    await paused.reached;
    await insertUser(a, 'Overtaking insert');
    await until('the relay to publish the insert', async () => (await unpublishedCount(a)) === 0);
    paused.release();
    const before = idsOf(await first) ?? [];
    const next = await page(a, 50, 1);
    expect(debugOf(next).sqlStatements).toBeGreaterThan(0);
    expect(idsOf(next)?.length).toBe(before.length + 1);
  });

  test('a user inserted by SQL that fires no trigger is on the page once an operator purges the directory', async () => {
    await page(a, 30, 0);
    const before = idsOf(await page(b, 30, 0)) ?? [];
    await insertUser(a, 'Bulk loaded', { triggers: false });
    // Nothing told the cache: the page is what it was (docs/consistency.md, race 11).
    expect(idsOf(await page(b, 30, 0))).toEqual(before);
    const deps = {
      store: a.app.store,
      keys: createCacheKeys(a.prefix),
      entries: createEntryFactory({ config: a.config.cache }),
    };
    expect(await invalidateEntity(deps, 'userDirectory', 1)).toBe(1);
    // The purge's tombstone gone (as it is after its TTL), another page refills the directory at the
    // version it had (no trigger bumped it): every version the stored page names is current again,
    // and only the purge's new generation ends it.
    const redis = new Redis(REDIS_URL);
    await redis.del(deps.keys.entity('userDirectory', 1)).finally(() => redis.quit());
    await page(a, 1, 99);
    const [directory] = await a.app.store.getMany([a.app.cache.keys.entity('userDirectory', 1)]);
    expect(directory?.kind).toBe('value');
    for (const t of [b, a]) expect(idsOf(await page(t, 30, 0))?.length).toBe(before.length + 1);
  });

  test('one request stores at most MAX_PAGE_FILLS_PER_REQUEST pages, each for at most a tombstone lifetime; the rest are answered', async () => {
    const aliases = Array.from(
      { length: 6 },
      (_, i) => `p${i}: userPage(first: 2, after: "${200 + i}") { nodes { id } }`,
    );
    const many = await a.gql(`{ ${aliases.join(' ')} }`, { headers: DEBUG });
    expect(many.body.errors).toBeUndefined();
    const stored = (await scanKeys(`${a.prefix}:v1:userDirectory:{1}:page:`)).filter((k) =>
      /:page:20[0-5]:2$/.test(k.key),
    );
    expect(stored).toHaveLength(MAX_PAGE_FILLS_PER_REQUEST);
    for (const { key, ttlMs } of stored) expect(ttlMs, key).toBeLessThanOrEqual(60_000);
  });

  test('a page it cannot read (foreign bytes) is loaded and replaced; never an error', async () => {
    await page(a, 3, 0); // the directory cached, so the foreign page below is current
    const store = a.app.store;
    const [directory] = await store.getMany([a.app.cache.keys.entity('userDirectory', 1)]);
    await store.setDependent({
      key: a.app.cache.keys.page(3, 0),
      generation: await generationOf(store),
      payload: new TextEncoder().encode('1:9,8,7'),
      dependencies: [
        { key: a.app.cache.keys.entity('userDirectory', 1), kind: 'value', version: directory!.version },
      ],
      ttlMs: 60_000,
    });
    const read = await page(a, 3, 0);
    expect(read.body.errors).toBeUndefined();
    expect(idsOf(read)).toEqual(['1', '2', '3']);
    expect(debugOf(read).sqlStatements).toBeGreaterThan(0);
    expect(debugOf(await page(a, 3, 0)).sqlStatements).toBe(0);
  });
});

test('a page whose store fails is read from PostgreSQL, and the answer is whole', async () => {
  const store = createChaosStore(createMemoryStore());
  const t = await createTestApp({
    label: 'page_chaos',
    store,
    seed: { users: 6, postsPerUser: 1 },
    env: { RESPONSE_CACHE: 'off' },
  });
  try {
    store.chaos.failAll(undefined, { methods: ['getDependent', 'setDependent'] });
    const failing = await t.gql<Page>(pageQuery(3, 1), { headers: DEBUG });
    expect(failing.body.errors).toBeUndefined();
    expect(idsOf(failing)).toEqual(['2', '3', '4']);
    expect(store.chaos.injected).toBeGreaterThan(0);
    store.chaos.heal();
    // Once the breaker has closed again (liveness only), the page is stored and served.
    await until('the page served from the store', async () => {
      const healed = await t.gql<Page>(pageQuery(3, 1), { headers: DEBUG });
      expect(idsOf(healed)).toEqual(['2', '3', '4']);
      return debugOf(healed).sqlStatements === 0;
    });
  } finally {
    await t.close();
    await store.close();
  }
});

describe('pages of user ids, a burst on one instance', () => {
  /** Range scans of pages this instance ran (its beforeQuery hook). */
  let rangeScans = 0;
  let held: Pause | undefined;
  const watched = watchStore(createMemoryStore());
  /** Holds the next page check (`getDependent`) of one key, when a test installs it. */
  let checkHold: { key: string; pause: Pause } | undefined;
  const store = forwardStore(watched.store, {
    getDependent: async (key, at) => {
      if (checkHold?.key === key) await checkHold.pause.hook('userPage', []);
      return watched.store.getDependent(key, at);
    },
  });
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({
      label: 'page_burst',
      store,
      seed: { users: 12, postsPerUser: 1 },
      env: { RESPONSE_CACHE: 'off' },
      repositoryOptions: {
        beforeQuery: (query) => void (query === 'userPage' && (rangeScans += 1)),
        afterQuery: (query, ids) => held?.hook(query, ids),
      },
    });
  });
  afterAll(async () => {
    await t?.close();
    await watched.store.close();
  });
  const ask = (first: number, after: number) => t.gql<Page>(pageQuery(first, after), { headers: DEBUG });

  test('a burst of requests for a cold page runs one range scan on the instance, and every request gets the page', async () => {
    // The directory cold and its load held: every request of the burst has arrived, and looked the
    // directory up, before any page load can begin.
    const directoryKey = t.app.cache.keys.entity('userDirectory', 1);
    held = pauseNext('userDirectory');
    const burst: ReturnType<typeof ask>[] = [];
    for (let i = 0; i < 8; i += 1) {
      const looked = watched.nextRead(directoryKey);
      burst.push(ask(4, 3));
      await looked;
    }
    const before = rangeScans;
    held.release();
    const answers = await Promise.all(burst);
    expect(answers.map(idsOf)).toEqual(Array.from({ length: 8 }, () => ['4', '5', '6', '7']));
    expect(rangeScans - before).toBe(1);
  });

  test('a request that arrived after a load began does not join it: after a change that fired no trigger and its purge, it sees the change', async () => {
    await ask(1, 11); // the directory cached
    held = pauseNext('userPage');
    const first = ask(20, 0); // its range read before the change, then held
    await held.reached;
    await insertUser(t, 'Loaded behind the cache', { triggers: false });
    const deps = {
      store: t.app.store,
      keys: t.app.cache.keys,
      entries: createEntryFactory({ config: t.config.cache }),
    };
    await invalidateEntity(deps, 'userDirectory', 1);
    // The directory is read again at the version it had (no trigger bumped it): the held load is one
    // of the same page under the same version, begun before this request arrived.
    const before = rangeScans;
    const asked = ask(20, 0);
    try {
      await until('the later request to scan the range itself', () => rangeScans > before);
    } finally {
      held.release();
    }
    const second = await asked;
    const heldIds = idsOf(await first) ?? [];
    expect(idsOf(second)?.length).toBe(heldIds.length + 1);
  });

  test('a request that read a newer directory version does not join a load begun under an older one, even one begun after it arrived', async () => {
    await ask(1, 11); // the directory cached
    // J arrives first and is held at its page check, before it reads the directory.
    const pageKey = t.app.cache.keys.page(30, 0);
    checkHold = { key: pageKey, pause: pauseNext('userPage') };
    const j = ask(30, 0);
    await checkHold.pause.reached;
    // S arrives after J, reads the directory at V, begins the load — after J arrived — and is held
    // once its range has been read, before the insert below.
    held = pauseNext('userPage');
    const s = ask(30, 0);
    await held.reached;
    await insertUser(t, 'Inserted under a held load');
    await until('the relay to publish the insert', async () => (await unpublishedCount(t)) === 0);
    // J reads the directory now, at V + 1: it must scan the range itself, not take S's older one.
    const before = rangeScans;
    checkHold.pause.release();
    try {
      await until('J to scan the range itself', () => rangeScans > before);
    } finally {
      held.release();
    }
    const [fromJ, fromS] = await Promise.all([j, s]);
    expect(idsOf(fromJ)?.length).toBe((idsOf(fromS)?.length ?? 0) + 1);
  });
});
