/**
 * The postgres.js defects behind "a PostgreSQL restart crashed the API process"
 * (patches/postgres+3.4.9.patch; porsager/postgres#1154, #1066, #1208, LanternOps/breeze#3225): a
 * connection that closes while the driver has a write buffered either throws from a setImmediate —
 * an uncaught exception, and the process exits — or is left unable to flush ever again, so every
 * later statement on it hangs.
 *
 * The close is made to happen on cue, at exactly that moment (test/support/pg-proxy.ts), on the
 * app's one pooled connection: in a request that reads twice in sequence, in a mutation's
 * transaction, and in the relay's transaction. Each time the operation caught by the close fails
 * cleanly (or is retried), nothing is thrown out of a caller's reach (vitest fails the file on an
 * uncaught exception), and the next operations succeed: the connection is not poisoned.
 *
 * Without the patch this file fails: an uncaught TypeError, then operations that never return.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createApp, type App } from '../../src/app/create-app.js';
import { signToken } from '../../src/auth/tokens.js';
import { loadConfig } from '../../src/config.js';
import { createDatabase, type Database } from '../../src/db/client.js';
import { seedDatabase } from '../../src/db/seed.js';
import { postQuery, TEST_AUTH_SECRET } from '../support/app.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { createSocketTap } from '../support/pg-proxy.js';
import { purgeKeys, REDIS_URL, uniquePrefix } from '../support/redis.js';
import { until } from '../support/until.js';

const tap = createSocketTap();
const prefix = uniquePrefix('pg_driver');
let testDb: TestDatabase;
let database: Database;
let app: App;

/** A liveness bound: an operation on a poisoned connection never returns at all. */
const LIVENESS_MS = 20_000;
function within<T>(what: string, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not return: the connection hangs`)), LIVENESS_MS);
  });
  return Promise.race([work, hung]).finally(() => clearTimeout(timer));
}

const gql = async (query: string, token?: string) => (await postQuery(app, query, token)).body;
const codes = (body: Awaited<ReturnType<typeof gql>>) => (body.errors ?? []).map((e) => e.extensions?.code);

beforeAll(async () => {
  testDb = await createTestDatabase('pg_driver');
  await seedDatabase(testDb.database.db, { users: 20, postsPerUser: 1, announce: false });
  // One pooled connection, through the tap: whatever it is doing when cut is what each test is about.
  database = await createDatabase({ kind: 'postgres', url: testDb.url }, { poolSize: 1, socket: tap.socket });
  app = await createApp(
    loadConfig({
      DATABASE_URL: testDb.url,
      REDIS_URL,
      CACHE_PREFIX: prefix,
      AUTH_SECRET: TEST_AUTH_SECRET,
      LOG_LEVEL: 'silent',
      CONSISTENCY_SAMPLE_INTERVAL_MS: '0',
    }),
    { database, startRelay: false },
  );
}, 60_000);

afterAll(async () => {
  await app?.close();
  await database?.close();
  await testDb?.drop();
  await purgeKeys(`${prefix}:`);
});

/** The next operations on the connection succeed: a cold read (SQL), a mutation, a relay run. */
async function theConnectionStillWorks(userId: number) {
  const read = await within('a cold read', gql(`{ user(id: "${userId}") { name profile { bio } } }`));
  expect(read.errors).toBeUndefined();
  const token = await signToken(TEST_AUTH_SECRET, userId);
  const write = await within(
    'a mutation',
    gql(`mutation { updateProfile(input: { bio: "after the cut" }) { version } }`, token),
  );
  expect(write.errors).toBeUndefined();
  expect(await within('a relay run', app.relay.runOnce())).toBeGreaterThanOrEqual(0);
}

describe('the app’s connection closed while the driver has a write buffered', () => {
  test('in a request that reads twice in sequence: it is answered (the read is retried), nothing crashes, later operations succeed', async () => {
    const cuts = tap.cuts;
    // Cold: the user's row first, then (after its reply, in the same turn) the profile's query.
    const cut = tap.cutAfterNextReply();
    const read = within('the request caught by the cut', gql('{ user(id: "1") { name profile { bio } } }'));
    await cut;
    const body = await read;
    // A read that met a lost connection runs once more on a fresh one (src/db/repositories.ts).
    expect(codes(body).every((code) => code === 'SERVICE_UNAVAILABLE')).toBe(true);
    expect(tap.cuts).toBe(cuts + 1);
    await theConnectionStillWorks(2);
  });

  test("in a mutation's transaction: it fails with SERVICE_UNAVAILABLE or commits, nothing crashes, later operations succeed", async () => {
    const token = await signToken(TEST_AUTH_SECRET, 3);
    await gql('{ user(id: "3") { id } }', token); // the caller is cached: only the transaction runs SQL
    const cut = tap.cutAfterNextReply(); // the reply to BEGIN (or the UPDATE): the next statement is buffered
    const write = within(
      'the mutation caught by the cut',
      gql(`mutation { updateProfile(input: { bio: "cut mid-transaction" }) { version } }`, token),
    );
    await cut;
    const body = await write;
    expect(codes(body).every((code) => code === 'SERVICE_UNAVAILABLE')).toBe(true);
    await theConnectionStillWorks(4);
  });

  test("in the relay's transaction: the run fails and is retried, nothing crashes, later operations succeed", async () => {
    const token = await signToken(TEST_AUTH_SECRET, 5);
    expect(
      (await gql(`mutation { updateProfile(input: { bio: "to relay" }) { version } }`, token)).errors,
    ).toBeUndefined();
    const cut = tap.cutAfterNextReply();
    const run = within(
      'the relay run caught by the cut',
      app.relay.runOnce().then(
        (published) => published,
        (error: unknown) => error,
      ),
    );
    await cut;
    await run; // published, or a connection error the relay's loop retries with backoff
    // The statements the driver still had for that connection (the transaction's ROLLBACK) settle
    // with CONNECTION_CLOSED: the next run may meet that once; one after it succeeds.
    await until('a relay run to succeed after the cut', () =>
      app.relay.drain().then(
        () => true,
        () => false,
      ),
    );
    await theConnectionStillWorks(6);
  });
});
