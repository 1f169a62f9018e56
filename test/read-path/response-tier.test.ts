/**
 * The response tier (src/cache/response/response-tier.ts) against the real Redis and PostgreSQL, two
 * instances sharing both: a query answered before is served without executing — 0 SQL, 1 store round
 * trip, no entity lookup, the same bytes — while everything it read is at the version it read; a
 * write through either instance, or by plain SQL, makes it execute again; answers are never shared
 * across viewers; what cannot be validated by versions is never stored; and HTTP revalidation with a
 * real client: a strong ETag, `304 Not Modified` while nothing changed, never after a write.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { DEBUG, debugOf } from '../support/debug.js';
import { updated } from '../support/consistency-api.js';
import { insertUser, rows, unpublishedCount } from '../support/consistency-sql.js';
import { openForSuite, pauseNext, twoInstances, type Pause } from '../support/instance-pair.js';
import { until } from '../support/until.js';
import { generationOf } from '../support/store-contract.js';
import { currentRequestStats } from '../../src/observability/request-scope.js';
import { createMemoryStore } from '../../src/cache/store/memory-store.js';
import { forwardStore } from '../../src/cache/store/layers/forward.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { validationDigest } from '../../src/graphql/create-yoga.js';

const QUERY = `query Nested($id: ID!) {
  user(id: $id) { name profile { displayName bio version } posts(first: 2) { title author { name } } }
}`;
// A stored answer outlives every wait of this file: only a changed version may end it here.
const env = { RESPONSE_CACHE: 'on', RESPONSE_CACHE_TTL_SECONDS: '3600', OUTBOX_POLL_INTERVAL_MS: '20' };

/** Installed by a test: pauses the next matching SQL read of either instance (their afterQuery hook). */
let pageReadPause: Pause | undefined;

describe('the response tier, two instances', () => {
  const { a, b } = openForSuite(() =>
    twoInstances({
      label: 'response_tier',
      relays: 'live',
      seed: { users: 12, postsPerUser: 3 },
      env,
      repositoryOptions: { afterQuery: (query, ids) => pageReadPause?.hook(query, ids) },
    }),
  );
  const read = (t: typeof a, id: number, headers: Record<string, string> = DEBUG, token?: string) =>
    t.gql<{ user: { profile: { bio: string; version: number } } }>(QUERY, {
      variables: { id: String(id) },
      headers,
      ...(token && { token }),
    });

  test('a stored answer is served with no SQL, one store round trip, no lookup, the same bytes', async () => {
    const first = await read(a, 1);
    expect(first.headers.get('cache-status')).toMatch(/cacheside-response; fwd=miss; stored$/);
    expect(debugOf(first).lookups.length).toBeGreaterThan(0);

    const hit = await read(a, 1);
    expect(hit.headers.get('x-cache')).toBe('HIT');
    expect(hit.headers.get('cache-status')).toMatch(/^cacheside-response; hit; detail="dependencies=\d+"$/);
    const debug = debugOf(hit);
    expect({ sql: debug.sqlStatements, roundTrips: debug.storeRoundTrips, lookups: debug.lookups }).toEqual({
      sql: 0,
      roundTrips: 1,
      lookups: [],
    });
    expect(debug.response).toEqual({
      outcome: 'hit',
      dependencies: debugOf(first).lookups.length,
      checked: 'store',
    });
    expect(hit.body.data).toEqual(first.body.data);

    // Without the debug extension the body is the stored text itself, byte for byte what B executes.
    const raw = async (t: typeof a) =>
      (
        await t.fetch('/graphql', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ query: QUERY, variables: { id: '1' } }),
        })
      ).text();
    const fromA = await raw(a);
    // B has stored nothing of its own: it validates A's answer against the shared Redis.
    expect(fromA).toBe(await raw(b));
    expect(fromA).toBe(JSON.stringify({ data: first.body.data }));
  });

  test('once a mutation on either instance has returned, neither serves the older answer', async () => {
    for (const [writer, other] of [
      [a, b],
      [b, a],
    ] as const) {
      await read(writer, 2);
      await read(other, 2); // both hit one stored answer now
      expect((await read(other, 2)).headers.get('x-cache')).toBe('HIT');
      const written = await updated(writer, 2, { bio: `written ${Math.random()}` });
      for (const t of [a, b]) {
        const after = await read(t, 2);
        expect(after.body.data?.user.profile).toMatchObject({ bio: written.bio, version: written.version });
      }
      // The first read after the write found the profile's version changed, and said which key.
      expect((await read(writer, 2)).headers.get('x-cache')).toBe('HIT');
    }
  });

  test('names the dependency that changed, and stores the new answer', async () => {
    await read(a, 3);
    await updated(a, 3, { bio: 'changed' });
    const after = await read(a, 3);
    expect(debugOf(after).response).toEqual({ outcome: 'miss', failed: `${a.prefix}:v1:profile:{3}` });
    expect(after.headers.get('cache-status')).toMatch(/cacheside-response; fwd=stale; stored$/);
  });

  test('a write by plain SQL (triggers → outbox → relay) stops the stored answer on both instances', async () => {
    await read(a, 4);
    expect((await read(b, 4)).headers.get('x-cache')).toBe('HIT');
    await rows(a, sql`update profiles set bio = 'plain sql' where user_id = 4`);
    // Liveness only: the relays poll every 20 ms.
    await until('both instances to answer the change', async () => {
      const answers = await Promise.all([read(a, 4), read(b, 4)]);
      return answers.every((r) => r.body.data?.user.profile.bio === 'plain sql');
    });
  });

  test('answers are the viewer’s own: user 5’s email never reaches user 6 or an anonymous caller', async () => {
    const ME = `{ me { id email } user(id: "5") { email } }`;
    const five = await a.token(5);
    const six = await a.token(6);
    const asFive = () =>
      a.gql<{ me: { email: string | null }; user: { email: string | null } }>(ME, { token: five });
    expect((await asFive()).body.data?.me.email).toMatch(/@/);
    const stored = await asFive();
    expect(stored.headers.get('x-cache')).toBe('HIT');
    expect(stored.body.data?.user.email).toMatch(/@/);

    const asSix = await b.gql<{ me: { id: string; email: string }; user: { email: string | null } }>(ME, {
      token: six,
    });
    expect(asSix.body.data?.me.id).toBe('6');
    expect(asSix.body.data?.user.email).toBeNull();
    expect(asSix.headers.get('cache-status')).toMatch(/fwd=miss; stored$/);
    const anonymous = await b.gql<{ me: null; user: { email: string | null } }>(ME);
    expect(anonymous.body.data).toEqual({ me: null, user: { email: null } });
    expect((await b.gql(ME)).headers.get('x-cache')).toBe('HIT');
    expect((await b.gql<{ me: null }>(ME)).body.data?.me).toBeNull();
  });

  const PAGE = `{ userPage(first: 5, after: "10") { nodes { id name profile { displayName } } nextCursor } }`;
  const page = (t: typeof a) => t.gql<{ userPage: { nodes: { id: string }[] } }>(PAGE, { headers: DEBUG });
  const pageIds = (r: Awaited<ReturnType<typeof page>>) => r.body.data?.userPage.nodes.map((n) => n.id);
  const servedFromTier = (r: { headers: Headers }) =>
    /^cacheside-response; hit/.test(r.headers.get('cache-status') ?? '');

  test('a page of users is served with no SQL (it depends on the user directory); a user inserted or deleted by plain SQL ends it on both instances', async () => {
    await page(a);
    const hit = await page(a);
    expect(servedFromTier(hit)).toBe(true);
    // No range scan: the directory's version is one more dependency of the one checked read.
    expect([debugOf(hit).sqlStatements, debugOf(hit).storeRoundTrips]).toEqual([0, 1]);
    expect(pageIds(hit)).toEqual(['11', '12']);
    expect(servedFromTier(await page(b))).toBe(true);

    await insertUser(a, 'Added by SQL');
    // Liveness only: the relays poll every 20 ms; the directory's tombstone ends the answer.
    for (const t of [a, b]) {
      await until(
        'the inserted user on the page',
        async () => pageIds(await page(t))?.includes('13') === true,
      );
    }
    const changed = await page(a);
    expect(pageIds(changed)).toEqual(['11', '12', '13']);

    await rows(a, sql`delete from users where id = 12`);
    for (const t of [a, b]) {
      await until(
        'the deleted user gone from the page',
        async () => pageIds(await page(t))?.includes('12') === false,
      );
    }
    // Stored again once the relay's events have landed, and served from the tier with the new page.
    await until('the new page to be served from the tier', async () => {
      const again = await page(b);
      if (!servedFromTier(again)) return false;
      expect(pageIds(again)).toEqual(['11', '13']);
      return true;
    });
  });

  test('a page whose SQL an insert overtakes (paused after it, the relay run meanwhile) is never served again: the directory is read first', async () => {
    // The race this closes: were the directory read after the range, it would find the insert's
    // tombstone, load the new version, and vouch for a page that lacks the new user.
    const RACE = `{ userPage(first: 20, after: "5") { nodes { id name } nextCursor } }`;
    const racePage = () => a.gql<{ userPage: { nodes: { id: string }[] } }>(RACE, { headers: DEBUG });
    const pause = (pageReadPause = pauseNext('userPage'));
    const paused = racePage(); // never asked before: executed, and stored
    await pause.reached;
    await insertUser(a, 'Overtaking insert');
    await until('the relay to publish the insert', async () => (await unpublishedCount(a)) === 0);
    pause.release();
    const first = await paused;
    expect(first.headers.get('cache-status')).toMatch(/cacheside-response; fwd=miss; stored$/);
    // What A just stored names the directory's version from before the insert: it cannot validate.
    const next = await racePage();
    expect(servedFromTier(next)).toBe(false);
    expect(pageIds(next)?.length).toBe((pageIds(first)?.length ?? 0) + 1);
  });

  test('an answer over a page the entity tier served from the cache names the directory too: an insert by plain SQL ends it', async () => {
    // The race this closes: a page served from the cache is no lookup of the answer's, so the answer
    // depends on the directory only through the read before the page's check. Without it the answer
    // would name its users alone and outlive the insert (src/cache/read/page-reader.ts).
    const warm = `{ userPage(first: 10, after: "10") { nodes { id } } }`;
    const answer = `{ userPage(first: 10, after: "10") { nodes { id name } } }`;
    const ask = (query: string) =>
      a.gql<{ userPage: { nodes: { id: string }[] } }>(query, { headers: DEBUG });
    await ask(warm); // the page of ids, and its users, cached by another query
    const stored = await ask(answer);
    expect(stored.headers.get('cache-status')).toMatch(/cacheside-response; fwd=miss; stored$/);
    expect(debugOf(stored).sqlStatements).toBe(0);
    const before = pageIds(stored) ?? [];
    expect(servedFromTier(await ask(answer))).toBe(true);

    await insertUser(a, 'Inserted under a cached page');
    await until('the relay to publish the insert', async () => (await unpublishedCount(a)) === 0);
    const after = await ask(answer);
    expect(servedFromTier(after)).toBe(false);
    expect(pageIds(after)?.length).toBe(before.length + 1);
  });

  test('no stored answer outlives a tombstone, whatever RESPONSE_CACHE_TTL_SECONDS says (3600 here)', async () => {
    // A row deleted and inserted again under its id starts again at version 1: an answer about the
    // deleted row must be gone before the delete's tombstone is, or it would validate again.
    await read(a, 7);
    const key = a.app.cache.response!.keyOf({
      query: QUERY,
      operationName: undefined,
      variables: { id: '7' },
      viewerId: null,
      validation: validationDigest(),
    })!;
    const [ttl] = await a.app.store.ttlMany([key]);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60_000);
  });

  test('a stored answer it cannot read (foreign bytes) is a miss, executed and replaced; never an error', async () => {
    const key = a.app.cache.response!.keyOf({
      query: QUERY,
      operationName: undefined,
      variables: { id: '8' },
      viewerId: null,
      validation: validationDigest(),
    })!;
    await a.app.store.setDependent({
      generation: await generationOf(a.app.store),
      key,
      payload: new TextEncoder().encode('not an answer'),
      dependencies: [],
      ttlMs: 60_000,
    });
    const first = await read(a, 8);
    expect(first.status).toBe(200);
    expect(first.body.errors).toBeUndefined();
    expect(debugOf(first).response).toEqual({ outcome: 'miss', failed: key });
    expect((await read(a, 8)).headers.get('cache-status')).toMatch(/^cacheside-response; hit/);
  });

  test('variables nested too deep to serialise are answered as without the tier (200), not a 500', async () => {
    const response = await a.fetch('/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: `{"query":"{ __typename }","variables":{"a":${'['.repeat(20_000)}1${']'.repeat(20_000)}}}`,
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ data: { __typename: 'Query' } });
  });

  test('counts what it answered in /metrics and says it in the access log line', async () => {
    const count = async (result: string) => {
      const text = await (await a.fetch('/metrics')).text();
      const line = text
        .split('\n')
        .find((l) => l.startsWith(`cacheside_response_answers_total{result="${result}"}`));
      return Number(line?.split(' ')[1] ?? Number.NaN);
    };
    const before = { hit: await count('hit'), miss: await count('miss'), stale: await count('stale') };
    await read(a, 6); // miss, stored
    await read(a, 6); // hit
    await updated(a, 6, { bio: 'counted' });
    await read(a, 6); // stale
    expect({ hit: await count('hit'), miss: await count('miss'), stale: await count('stale') }).toEqual({
      hit: before.hit + 1,
      miss: before.miss + 1,
      stale: before.stale + 1,
    });
  });

  test('never stores mutations, introspection, answers with errors, batches', async () => {
    const notStored = async (query: string, expected: RegExp | null) => {
      await a.gql(query);
      const again = await a.gql(query);
      const status = again.headers.get('cache-status') ?? '';
      if (expected === null) expect(status).not.toMatch(/cacheside-response/);
      else expect(status).toMatch(expected);
      expect(status).not.toMatch(/cacheside-response; hit/);
    };
    await notStored(`{ __schema { queryType { name } } }`, null);
    await notStored(`{ a: user(id: "7") { name } b: user(id: "not-an-id") { name } }`, /skip: errors/);
    const mutation = await a.gql(`mutation { updateProfile(input: { bio: "m" }) { version } }`, {
      token: await a.token(7),
    });
    expect(mutation.headers.get('cache-status')).not.toMatch(/cacheside-response/);

    const batch = JSON.stringify([
      { query: `{ user(id: "8") { name } }` },
      { query: `{ user(id: "9") { name } }` },
    ]);
    for (let i = 0; i < 2; i += 1) {
      const response = await a.fetch('/graphql', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: batch,
      });
      expect(response.status).toBe(200);
      expect(response.headers.get('cache-status')).not.toMatch(/cacheside-response/);
    }
  });

  describe('HTTP revalidation, with a real client over HTTP', () => {
    let server: Server;
    let origin: string;
    beforeAll(async () => {
      server = createServer(a.app.yoga);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    const get = (id: number, headers: Record<string, string> = {}) => {
      const url = new URL('/graphql', origin);
      url.searchParams.set('query', QUERY);
      url.searchParams.set('variables', JSON.stringify({ id: String(id) }));
      return fetch(url, { headers: { accept: 'application/graphql-response+json', ...headers } });
    };

    test('a strong ETag; 304 with no body while nothing changed; 200 and a new ETag once a write returned', async () => {
      const first = await get(10);
      expect(first.status).toBe(200);
      const etag = first.headers.get('etag');
      expect(etag).toMatch(/^"[A-Za-z0-9_-]+"$/);
      expect(first.headers.get('cache-control')).toBe('private, no-cache');
      await first.text();

      const revalidated = await get(10, { 'if-none-match': etag! });
      expect(revalidated.status).toBe(304);
      expect(await revalidated.text()).toBe('');
      expect(revalidated.headers.get('etag')).toBe(etag);
      expect(revalidated.headers.get('x-cache')).toBe('HIT');

      await updated(b, 10, { bio: 'after the etag' });
      const changed = await get(10, { 'if-none-match': etag! });
      expect(changed.status).toBe(200);
      expect(changed.headers.get('etag')).not.toBe(etag);
      const body = (await changed.json()) as { data: { user: { profile: { bio: string } } } };
      expect(body.data.user.profile.bio).toBe('after the etag');
    });

    test('a POST is never answered 304, and an answer the tier does not vouch for carries no ETag', async () => {
      const url = new URL('/graphql', origin);
      const post = () =>
        fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'if-none-match': '*' },
          body: JSON.stringify({ query: QUERY, variables: { id: '11' } }),
        });
      await (await post()).text();
      expect((await post()).status).toBe(200);
      url.searchParams.set('query', '{ a: user(id: "1") { name } b: user(id: "nope") { name } }');
      const failed = await fetch(url, { headers: { accept: 'application/graphql-response+json' } });
      expect(((await failed.json()) as { errors?: unknown[] }).errors).toHaveLength(1);
      expect(failed.headers.get('etag')).toBeNull();
      expect(failed.headers.get('cache-control')).toBe('no-store');
    });
  });
});

// With RESPONSE_CACHE_L1_MAX_BYTES=0 no answer is kept in process: every hit is checked in Redis, even
// with L1 on. (Kept answers, served on L1's word within its window: response-memo-coherence.test.ts.)
describe('the response tier with L1 on both instances and no answers kept in process', () => {
  const { a, b } = openForSuite(() =>
    twoInstances({
      label: 'response_tier_l1',
      relays: 'live',
      seed: { users: 4, postsPerUser: 1 },
      env: {
        ...env,
        CACHE_L1_MAX_ENTRIES: '1000',
        CACHE_L1_TTL_MS: '60000',
        RESPONSE_CACHE_L1_MAX_BYTES: '0',
      },
    }),
  );

  test('answers are validated against Redis, not L1: a stored answer never outlives a write that has returned', async () => {
    const readOnB = () =>
      b.gql<{ user: { profile: { version: number } } }>(QUERY, { variables: { id: '1' }, headers: DEBUG });
    await readOnB();
    expect((await readOnB()).headers.get('cache-status')).toMatch(/^cacheside-response; hit/);
    const written = await updated(a, 1, { bio: 'through A, B holds the old one in L1' });

    // B's L1 may still answer the old version for its documented window (until A's event arrives);
    // the stored answer may not: its check reads the profile's version in Redis, which A's write
    // has changed.
    const seen: { version: number; fromTier: boolean }[] = [];
    await until('B to serve the write', async () => {
      const response = await readOnB();
      const version = response.body.data!.user.profile.version;
      seen.push({
        version,
        fromTier: /^cacheside-response; hit/.test(response.headers.get('cache-status') ?? ''),
      });
      return version === written.version;
    });
    expect(seen[0]!.fromTier).toBe(false);
    expect(seen.filter((s) => s.fromTier && s.version < written.version)).toEqual([]);
  });
});

describe('one lookup per request, before parsing when it can be', () => {
  let lookups = 0;
  let parses = 0;
  let t: TestApp;
  beforeAll(async () => {
    const inner = createMemoryStore();
    const counting = forwardStore(inner, {
      getDependent: (key, at) => {
        // A request's lookups only: the consistency monitor samples stored answers too.
        if (currentRequestStats() !== undefined) lookups += 1;
        return inner.getDependent(key, at);
      },
    });
    t = await createTestApp({
      label: 'response_lookups',
      store: counting,
      seed: { users: 3, postsPerUser: 1 },
      env,
      // Counts the documents parsed (yoga's parser cache or not: the hook runs either way).
      plugins: [{ onParse: () => void (parses += 1) }],
    });
  });
  afterAll(() => t?.close());
  /** The response-tier lookups one request made (no page of users here: the only dependent reads). */
  const lookupsOf = async (send: () => Promise<unknown>) => {
    const before = lookups;
    await send();
    return lookups - before;
  };
  const ANON = `{ user(id: "1") { name } }`;

  test('an anonymous query: one lookup when it misses (made before parsing, reused when it executes) and one when it hits', async () => {
    expect(await lookupsOf(() => t.gql(ANON))).toBe(1);
    const hit = await t.gql(ANON);
    expect(hit.headers.get('cache-status')).toMatch(/^cacheside-response; hit/);
    expect(hit.headers.get('x-cache')).toBe('HIT');
    expect(hit.body).toEqual({ data: { user: { name: expect.any(String) } } });
    expect(await lookupsOf(() => t.gql(ANON))).toBe(1);
    // Served before parsing: no document parsed, nor validated, nor executed.
    const before = parses;
    await t.gql(ANON);
    expect(parses - before).toBe(0);
  });

  test('parameters yoga refuses, a bad token, a text that does not parse: refused as without the tier, and no hit reported', async () => {
    await t.gql(ANON);
    const post = (body: Record<string, unknown>, headers: Record<string, string> = {}) =>
      t.fetch('/graphql', {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify(body),
      });
    for (const body of [
      { query: ANON, unexpected: 1 },
      { query: ANON, operationName: '' },
      { query: ANON, operationName: ['Q'] },
      { query: ANON, variables: 'x' },
    ]) {
      const refused = await post(body);
      expect(refused.status, JSON.stringify(body)).toBe(400);
      expect(refused.headers.get('cache-status') ?? '', JSON.stringify(body)).not.toMatch(
        /cacheside-response/,
      );
    }
    const badToken = await post({ query: ANON }, { authorization: 'Bearer not-a-token' });
    expect(badToken.status).toBe(401);
    const garbage = await post({ query: `{ user(id: "1") { name ` });
    expect(garbage.status).toBe(400);
    expect(garbage.headers.get('cache-status') ?? '').not.toMatch(/cacheside-response/);
  });

  test('answers are keyed by what they were validated against: another schema or other limits, another key', () => {
    const request = { query: ANON, operationName: undefined, variables: {}, viewerId: null };
    const tier = t.app.cache.response!;
    expect(tier.keyOf({ ...request, validation: validationDigest() })).not.toBe(
      tier.keyOf({ ...request, validation: validationDigest('type Query { other: Int }') }),
    );
  });

  test('a signed-in viewer: one lookup, after authentication, under their own key', async () => {
    const token = await t.token(2);
    const query = `{ me { email } }`;
    expect(await lookupsOf(() => t.gql(query, { token }))).toBe(1);
    expect(await lookupsOf(() => t.gql(query, { token }))).toBe(1);
    expect((await t.gql(query, { token })).headers.get('cache-status')).toMatch(/^cacheside-response; hit/);
    // The same text with no viewer is another answer, looked up (early) and executed.
    const anonymous = await t.gql<{ me: null }>(query);
    expect(anonymous.body.data).toEqual({ me: null });
  });

  test('a mutation, introspection and a batch: no lookup at all', async () => {
    const token = await t.token(3);
    expect(
      await lookupsOf(() => t.gql(`mutation { updateProfile(input: { bio: "x" }) { version } }`, { token })),
    ).toBe(0);
    expect(await lookupsOf(() => t.gql(`{ __schema { queryType { name } } }`))).toBe(0);
    const batch = JSON.stringify([{ query: ANON }, { query: `{ user(id: "2") { name } }` }]);
    const send = () =>
      t.fetch('/graphql', { method: 'POST', headers: { 'content-type': 'application/json' }, body: batch });
    expect(await lookupsOf(send)).toBe(0);
  });
});
