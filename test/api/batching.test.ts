/**
 * No N+1: a page of users with their profiles, newest posts and the posts' authors costs a fixed
 * number of SQL statements on a cold cache — one per entity level and DataLoader batch, whatever the
 * page size — counted by `x-cache-debug: 1` (`extensions.cache.sqlStatements`). And the HTTP edge:
 * parse and validation errors are 400 with yoga's codes, malformed bodies are 4xx, nothing a client
 * sends is ever a 5xx.
 */
import { asc, desc } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { posts, profiles, users } from '../../src/db/schema.js';
import { MAX_BATCH_SIZE } from '../../src/loaders/create-loaders.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { startHttpServer, type HttpTestServer } from '../support/http-server.js';

const USERS = 60;
const POSTS_PER_USER = 5;

const pageQuery = (first: number) =>
  `{ userPage(first: ${first}) { nodes { profile { bio } posts(first: 3) { title author { name profile { displayName } } } } } }`;

interface PageOut {
  userPage: {
    nodes: {
      profile: { bio: string };
      posts: { title: string; author: { name: string; profile: { displayName: string } } }[];
    }[];
  };
}

interface DebugExtension {
  cache: { lookups: unknown[]; sqlStatements: number; storeRoundTrips: number };
}

/**
 * The statements a cold page costs: the user directory's version and the page of ids (the page is
 * cached under that version: src/cache/read/page-reader.ts), then one statement per DataLoader batch of
 * users, profiles, post-id lists (one each per ≤100 users) and posts (one per ≤100 posts). The
 * authors are the page's users again: DataLoader answers them from its memo. docs/contract.md ("Stack") fixes
 * maxBatchSize at 100 and §5 sends one query per batch, so 150 posts are two statements.
 */
function coldStatementBound(first: number, postsPerUser: number): number {
  const perUser = Math.ceil(first / MAX_BATCH_SIZE);
  return 2 + 3 * perUser + Math.ceil((first * postsPerUser) / MAX_BATCH_SIZE);
}

describe.each(['memory', 'redis'] as const)('no N+1 with the %s store', (store) => {
  let expected: PageOut['userPage']['nodes'];

  /** A fresh app (fresh database, fresh key prefix, empty store): the cache is cold. */
  async function withColdApp<T>(run: (t: TestApp) => Promise<T>): Promise<T> {
    const t = await createTestApp({
      label: `batching_${store}`,
      seed: { users: USERS, postsPerUser: POSTS_PER_USER },
      store,
    });
    try {
      expected ??= await expectedNodes(t);
      return await run(t);
    } finally {
      await t.close();
    }
  }

  it.each([
    [20, 6],
    [50, coldStatementBound(50, 3)],
  ])(
    'answers userPage(first: %d) with nested posts and authors in at most %d SQL statements, cold',
    async (first, bound) => {
      await withColdApp(async (t) => {
        const res = await t.gql<PageOut>(pageQuery(first), { headers: { 'x-cache-debug': '1' } });
        expect(res.status).toBe(200);
        expect(res.body.errors).toBeUndefined();
        expect(res.body.data!.userPage.nodes).toEqual(expected.slice(0, first));
        expect(res.headers.get('x-cache')).toBe('MISS');

        const { cache } = (res.body as { extensions: DebugExtension }).extensions;
        expect(cache.sqlStatements).toBeGreaterThan(0);
        expect(cache.sqlStatements).toBeLessThanOrEqual(bound);
      });
    },
  );

  it('costs the same number of statements for 1, 20 and 33 users, as long as the batches are the same', async () => {
    const counts: number[] = [];
    for (const first of [1, 20, 33]) {
      counts.push(
        await withColdApp(async (t) => {
          const res = await t.gql(pageQuery(first), { headers: { 'x-cache-debug': '1' } });
          expect(res.body.errors).toBeUndefined();
          return (res.body as unknown as { extensions: DebugExtension }).extensions.cache.sqlStatements;
        }),
      );
    }
    expect(new Set(counts).size, `statements per page size: ${counts.join(', ')}`).toBe(1);
    expect(counts[0]).toBeLessThanOrEqual(6);
  });

  it('answers the same page warm from the cache, its page of ids too: no SQL at all', async () => {
    await withColdApp(async (t) => {
      await t.gql(pageQuery(20));
      const res = await t.gql<PageOut>(pageQuery(20), { headers: { 'x-cache-debug': '1' } });
      expect(res.body.errors).toBeUndefined();
      expect(res.body.data!.userPage.nodes).toEqual(expected.slice(0, 20));
      expect(res.headers.get('x-cache')).toBe('HIT');
      expect((res.body as { extensions: DebugExtension }).extensions.cache.sqlStatements).toBe(0);
    });
  });
});

/** The page's nodes as PostgreSQL holds them, users in id order. */
async function expectedNodes(t: TestApp): Promise<PageOut['userPage']['nodes']> {
  const { db } = t.testDb.database;
  const userRows = await db.select().from(users).orderBy(asc(users.id));
  const profileRows = new Map((await db.select().from(profiles)).map((p) => [p.userId, p]));
  const postRows = await db.select().from(posts).orderBy(desc(posts.createdAt), desc(posts.id));
  return userRows.map((u) => ({
    profile: { bio: profileRows.get(u.id)!.bio },
    posts: postRows
      .filter((p) => p.authorId === u.id)
      .slice(0, 3)
      .map((p) => ({
        title: p.title,
        author: { name: u.name, profile: { displayName: profileRows.get(u.id)!.displayName } },
      })),
  }));
}

describe('request errors', () => {
  let t: TestApp;
  let http: HttpTestServer;

  beforeAll(async () => {
    t = await createTestApp({ label: 'batching_errors', seed: { users: 5, postsPerUser: 2 } });
    http = await startHttpServer(t.app);
  });

  afterAll(async () => {
    await http?.close();
    await t?.close();
  });

  const post = (body: string, headers: Record<string, string> = {}) =>
    t.fetch('/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body,
    });

  async function errorsOf(
    response: Response,
  ): Promise<{ message: string; extensions?: { code?: string } }[]> {
    const body = (await response.json()) as {
      errors?: { message: string; extensions?: { code?: string } }[];
    };
    expect(body.errors, JSON.stringify(body)).toBeDefined();
    return body.errors!;
  }

  it.each([
    '{ user(id: "1") { id ',
    'query {',
    '}}}',
    '{ user(id: "1") { id } } garbage',
    'query ($id: ID!) { user(id: $id) { id } ',
  ])('refuses the unparsable document %j with 400 GRAPHQL_PARSE_FAILED', async (query) => {
    const response = await post(JSON.stringify({ query }));
    expect(response.status).toBe(400);
    const [error] = await errorsOf(response);
    expect(error!.extensions?.code).toBe('GRAPHQL_PARSE_FAILED');
  });

  it.each([
    ['an unknown field', '{ user(id: "1") { nope } }'],
    ['an unknown root field', '{ everything { id } }'],
    ['an unknown argument', '{ user(id: "1", verbose: true) { id } }'],
    ['a missing required argument', '{ user { id } }'],
    ['a string where an Int goes', '{ userPage(first: "ten") { nextCursor } }'],
    ['an Int beyond 32 bits', '{ userPage(first: 99999999999) { nextCursor } }'],
    ['a selection on a scalar', '{ user(id: "1") { id { x } } }'],
    ['a missing selection on an object', '{ user(id: "1") }'],
    ['an undefined variable', '{ user(id: $id) { id } }'],
    ['an undefined fragment', '{ user(id: "1") { ...Nope } }'],
  ])('refuses %s with 400 GRAPHQL_VALIDATION_FAILED', async (_, query) => {
    const response = await post(JSON.stringify({ query }));
    expect(response.status).toBe(400);
    const errors = await errorsOf(response);
    expect(errors.map((e) => e.extensions?.code)).toContain('GRAPHQL_VALIDATION_FAILED');
  });

  it.each([
    ['a truncated JSON body', '{"query": '],
    ['an empty body', ''],
    ['a body that is not JSON', 'query { me { id } }'],
    ['JSON with a trailing comma', '{"query": "{ me { id } }",}'],
    ['JSON null', 'null'],
    ['a JSON number', '42'],
    ['a non-string query', '{"query": 42}'],
    ['a string for variables', '{"query": "{ me { id } }", "variables": "x"}'],
    ['no query at all', '{}'],
  ])('refuses %s with a 4xx and an error', async (_, body) => {
    const response = await post(body);
    expect(response.status).toBeGreaterThanOrEqual(400);
    expect(response.status).toBeLessThan(500);
    expect((await errorsOf(response)).length).toBeGreaterThan(0);
  });

  it.each([
    [
      'a variable of the wrong type',
      { query: 'query ($id: ID!) { user(id: $id) { id } }', variables: { id: { a: 1 } } },
    ],
    ['a missing required variable', { query: 'query ($id: ID!) { user(id: $id) { id } }' }],
    ['an unknown operationName', { query: '{ me { id } }', operationName: 'Nope' }],
    ['two operations and no operationName', { query: 'query A { me { id } } query B { me { id } }' }],
    ['a subscription the schema does not have', { query: 'subscription { me { id } }' }],
    [
      'a 100 000-digit id',
      { query: 'query ($id: ID!) { user(id: $id) { id } }', variables: { id: '9'.repeat(100_000) } },
    ],
  ])('answers %s without a 5xx', async (_, body) => {
    const response = await post(JSON.stringify(body));
    expect(response.status).toBeLessThan(500);
    expect((await errorsOf(response)).length).toBeGreaterThan(0);
  });

  it.each([
    ['PUT', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{}' }],
    ['DELETE', { method: 'DELETE' }],
    ['a text/plain body', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hello' }],
    [
      'a broken multipart body',
      { method: 'POST', headers: { 'content-type': 'multipart/form-data; boundary=x' }, body: '--x\r\n' },
    ],
    ['a GET without a query', { method: 'GET', headers: { accept: 'application/json' } }],
  ] as [string, RequestInit][])('answers %s with a 4xx', async (_, init) => {
    const response = await t.fetch('/graphql', init);
    expect(response.status).toBeGreaterThanOrEqual(400);
    expect(response.status).toBeLessThan(500);
  });

  it('refuses a mutation over GET with a 4xx and changes nothing', async () => {
    const query = encodeURIComponent('mutation { createPost(input: { title: "t", body: "b" }) { id } }');
    const token = await t.token(1);
    const response = await t.fetch(`/graphql?query=${query}`, {
      headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
    });
    expect(response.status).toBeGreaterThanOrEqual(400);
    expect(response.status).toBeLessThan(500);
    expect(await t.testDb.database.db.$count(posts)).toBe(5 * 2);
  });

  it('refuses, with 400 and before running it, a query whose every argument is legal but whose size explodes', async () => {
    // 100 users × 50 posts × their author's 50 posts × … : legal ranges, multiplied. docs/contract.md, "Schema rules":
    // "limit errors 400". The seed here is tiny, so even an unlimited server answers quickly.
    const query =
      '{ userPage(first: 100) { nodes { posts(first: 50) { author { posts(first: 50) { author { posts(first: 50) { id } } } } } } } }';
    const response = await post(JSON.stringify({ query }), { 'x-cache-debug': '1' });
    expect(response.status).toBe(400);
    const body = (await response.json()) as { data?: unknown; errors?: unknown[] };
    expect(body.errors?.length).toBeGreaterThan(0);
    expect(body.data ?? null).toBeNull();
  });

  describe('over a real HTTP port', () => {
    const send = (body: string, contentType = 'application/json') =>
      fetch(`${http.origin}/graphql`, {
        method: 'POST',
        headers: { 'content-type': contentType, accept: 'application/graphql-response+json' },
        body,
      });

    it('answers parse, validation and JSON errors as in-process', async () => {
      const parse = await send(JSON.stringify({ query: '{ user(id: "1") { id ' }));
      expect(parse.status).toBe(400);
      expect((await errorsOf(parse))[0]!.extensions?.code).toBe('GRAPHQL_PARSE_FAILED');

      const validation = await send(JSON.stringify({ query: '{ user(id: "1") { nope } }' }));
      expect(validation.status).toBe(400);
      expect((await errorsOf(validation))[0]!.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');

      const json = await send('{"query": ');
      expect(json.status).toBeGreaterThanOrEqual(400);
      expect(json.status).toBeLessThan(500);
    });

    it('refuses an oversized body (10 MB) with 413', async () => {
      // docs/contract.md, "Errors": "oversized bodies 413". The limit is the implementation's; no GraphQL request of
      // this API needs anywhere near 10 MB (the largest legal input is a 20 000-character post body).
      const body = JSON.stringify({
        query: '{ me { id } }',
        variables: { padding: 'x'.repeat(10 * 1024 * 1024) },
      });
      const response = await send(body);
      expect(response.status).toBe(413);
    });

    it('refuses a query nested 40 levels deep with 400 before running it', async () => {
      // docs/contract.md, "Errors": "limit errors 400". Each level asks for one post, so even without a limit this
      // stays small; the same shape with posts(first: 5) grows as 5^depth and exhausts the heap.
      const depth = 40;
      const query = `{ user(id: "1") { ${'posts(first: 1) { author { '.repeat(depth)}id${' } }'.repeat(depth)} } }`;
      const response = await send(JSON.stringify({ query }));
      expect(response.status).toBe(400);
      expect((await errorsOf(response)).length).toBeGreaterThan(0);
    });
  });
});
