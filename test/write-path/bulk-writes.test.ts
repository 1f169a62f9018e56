/**
 * Writes that fire no row trigger reach every instance too (docs/consistency.md, "Writes outside
 * the API"). The seed turns the outbox triggers off (it would otherwise leave an event per row) and
 * writes one outbox row that stands for everything instead; the relay answers it by invalidating the
 * whole namespace — values, negative entries and fills in flight — and telling every instance to
 * forget its L1.
 *
 * The case that showed the gap: an id looked up before the seed was cached as "no such user", so
 * afterwards it stayed `null`, and a token naming it was refused, until the negative entry expired.
 */
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { rowsOf } from '../../src/db/client.js';
import { seedDatabase } from '../../src/db/seed.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { pauseNext, type Pause } from '../support/instance-pair.js';
import { until } from '../support/until.js';

let a: TestApp;
let b: TestApp;
let pauseOnA: Pause | undefined;

const USER = `query ($id: ID!) { user(id: $id) { id name } }`;

beforeAll(async () => {
  // An empty database: nothing exists until the seed.
  a = await createTestApp({
    label: 'bulk_writes',
    seed: false,
    env: { OUTBOX_POLL_INTERVAL_MS: '20' },
    repositoryOptions: { afterQuery: (query, ids) => pauseOnA?.hook(query, ids) },
  });
  // B keeps an in-process L1 in front of Redis: it must forget what it holds, too.
  b = await createTestApp({
    label: 'bulk_writes',
    share: a,
    env: { OUTBOX_POLL_INTERVAL_MS: '20', CACHE_L1_MAX_ENTRIES: '1000', CACHE_L1_TTL_MS: '600000' },
  });
}, 60_000);

afterAll(async () => {
  pauseOnA?.release();
  await b?.close();
  await a?.close();
});

async function unpublishedOutbox(): Promise<number> {
  const result = await a.testDb.database.db.execute(
    sql`select count(*)::int as n from outbox where published_at is null`,
  );
  return Number(rowsOf<{ n: number }>(result)[0]?.n ?? 0);
}

describe('the seed, which fires no row trigger', () => {
  test('ids looked up before it, cached as unknown, exist right after its relay run, on every instance and for tokens', async () => {
    // Looked up before the seed: "no such user", cached in Redis and in B's L1 (or, with the response
    // tier on, B's whole answer, which depends on that negative entry).
    for (const t of [a, b, b])
      expect((await t.gql(USER, { variables: { id: '5' } })).body.data).toEqual({ user: null });
    expect((await b.gql(USER, { variables: { id: '5' } })).headers.get('cache-status')).toMatch(
      /^cacheside-l1; hit|^cacheside-response; hit/,
    );
    const token = await a.token(5);
    expect((await a.gql('{ me { id } }', { token })).status).toBe(401);
    // A fill in flight across the seed: A read "no such user 7" before the seed committed.
    pauseOnA = pauseNext('users', 7);
    const lateRead = a.gql(USER, { variables: { id: '7' } });
    await pauseOnA.reached;

    await seedDatabase(a.testDb.database.db, { users: 10, postsPerUser: 1 });
    await until('the relay to apply the seed', async () => (await unpublishedOutbox()) === 0);
    pauseOnA.release();
    expect((await lateRead).body.data).toEqual({ user: null }); // it overlapped the seed

    for (const t of [a, b]) {
      expect((await t.gql(USER, { variables: { id: '5' } })).body.data?.user).toMatchObject({ id: '5' });
      // The late fill of "no such user 7" was refused: its grant went with the seed.
      expect((await t.gql(USER, { variables: { id: '7' } })).body.data?.user).toMatchObject({ id: '7' });
    }
    const me = await a.gql<{ me: { id: string } }>('{ me { id } }', { token });
    expect(me.status).toBe(200);
    expect(me.body.data?.me).toEqual({ id: '5' });
  });
});
