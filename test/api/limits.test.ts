/**
 * The limits of docs/security.md, each at its boundary — the largest request accepted, the smallest
 * refused — with the status, code and message a client gets, and proof that a refused request cost
 * nothing: no SQL statement, no cache lookup. Then the token cases api-auth.test.ts does not cover
 * (asymmetric algorithms, "none" in other spellings, odd JOSE shapes, the header length at its
 * boundary), introspection by configuration, and `email` through a warm cache: the entity is
 * cached whole, the field is authorized per request.
 */
import { createHmac } from 'node:crypto';
import { generateKeyPair, SignJWT, type JWTPayload } from 'jose';
import { getIntrospectionQuery } from 'graphql';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { eq } from 'drizzle-orm';
import { MAX_AUTHORIZATION_LENGTH } from '../../src/graphql/context.js';
import { MAX_BATCHED_OPERATIONS, MAX_BODY_BYTES } from '../../src/graphql/create-yoga.js';
import { DEFAULT_QUERY_LIMITS } from '../../src/graphql/plugins/use-query-limits.js';
import { posts, users } from '../../src/db/schema.js';
import type { RepositoryQuery } from '../../src/db/repositories.js';
import { REDIS_URL, TEST_AUTH_SECRET, createTestApp, type TestApp } from '../support/app.js';
import { scanKeys } from '../support/redis.js';

/** Users the limit tests touch (aliases, id lists); the email tests use the ten after them, cold. */
const USERS = 30;
const POSTS_PER_USER = 5;

let t: TestApp;
/** SQL reads made since the last reset, and a gate that holds them when set (see the email tests). */
let loads: { query: RepositoryQuery; ids: readonly number[] }[] = [];
let holdLoads: Promise<void> | undefined;

beforeAll(async () => {
  t = await createTestApp({
    label: 'limits',
    seed: { users: USERS + 10, postsPerUser: POSTS_PER_USER },
    repositoryOptions: {
      beforeQuery: async (query, ids) => {
        loads.push({ query, ids });
        if (holdLoads) await holdLoads;
      },
    },
  });
});

afterAll(async () => {
  await t?.close();
});

beforeEach(() => {
  loads = [];
});

// Helpers

interface ErrorBody {
  data?: unknown;
  errors?: { message: string; extensions?: { code?: string } }[];
}

/** POSTs a raw body in-process. */
async function postRaw(body: BodyInit, headers: Record<string, string> = {}) {
  const response = await t.fetch('/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
    ...(body instanceof ReadableStream ? { duplex: 'half' } : {}),
  } as RequestInit);
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    text,
    body: JSON.parse(text) as ErrorBody | ErrorBody[],
  };
}

/** Asserts a request-level refusal: this status, this code, a message containing `message`, no data. */
function expectRefused(
  res: { status: number; body: unknown },
  status: number,
  code: string,
  message: string | RegExp,
) {
  const body = res.body as ErrorBody;
  expect(res.status, JSON.stringify(body)).toBe(status);
  expect(body.errors?.[0]?.extensions?.code, JSON.stringify(body)).toBe(code);
  expect(body.errors?.[0]?.message).toMatch(message);
  expect(body.data ?? null).toBeNull();
}

/** The cache keys under this file's prefix right now. */
async function cacheKeys(): Promise<string[]> {
  return (await scanKeys(`${t.prefix}:`)).map((k) => k.key);
}

/** Runs `request` and asserts it reached neither PostgreSQL nor the cache. */
async function expectFree<T>(request: () => Promise<T>): Promise<T> {
  const before = await cacheKeys();
  loads = [];
  const result = await request();
  expect(loads, 'SQL reads').toEqual([]);
  expect(await cacheKeys()).toEqual(before);
  return result;
}

/** A body of exactly `bytes` bytes: a small query padded by an unused variable. */
function paddedBody(bytes: number): string {
  const base = JSON.stringify({ query: '{ user(id: "1") { id } }', variables: { padding: '' } });
  const body = base.replace('"padding":""', `"padding":"${'x'.repeat(bytes - base.length)}"`);
  expect(body.length).toBe(bytes);
  return body;
}

/** `{ user(id: "1") { posts(first: 1) { author { … id } } } }` nested to exactly `depth` fields. */
function queryOfDepth(depth: number): string {
  const levels = ['user(id: "1")'];
  while (levels.length < depth - 1) levels.push(levels.length % 2 === 1 ? 'posts(first: 1)' : 'author');
  return `{ ${levels.map((l) => `${l} {`).join(' ')} id ${'} '.repeat(levels.length)}}`;
}

function aliases(count: number): string {
  return Array.from({ length: count }, (_, i) => `a${i}: user(id: "${(i % USERS) + 1}") { id }`).join(' ');
}

// Body size

describe(`body size: at most ${MAX_BODY_BYTES} bytes (256 KiB), else 413`, () => {
  it.each([
    ['declared by Content-Length', true],
    ['sent without a length (chunked)', false],
  ])('accepts exactly the limit and refuses one byte more, %s', async (_, declared) => {
    const send = (bytes: number) => {
      const body = paddedBody(bytes);
      if (declared) return postRaw(body, { 'content-length': String(bytes) });
      return postRaw(streamOf(body));
    };
    const atLimit = await send(MAX_BODY_BYTES);
    expect(atLimit.status).toBe(200);
    expect(atLimit.body).toEqual({ data: { user: { id: '1' } } });

    const over = await expectFree(() => send(MAX_BODY_BYTES + 1));
    expectRefused(over, 413, 'PAYLOAD_TOO_LARGE', `request body exceeds ${MAX_BODY_BYTES} bytes`);
    expect(over.headers.get('connection')).toBe('close');
  });

  it('refuses a 5 MB chunked body after reading no more than the limit', async () => {
    let pulled = 0;
    const chunk = new TextEncoder().encode(
      `{"query":"{ me { id } }","variables":{"p":"${'x'.repeat(64 * 1024)}`,
    );
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled += chunk.byteLength;
        controller.enqueue(chunk);
        if (pulled >= 5 * 1024 * 1024) controller.close();
      },
    });
    const res = await expectFree(() => postRaw(stream));
    expectRefused(res, 413, 'PAYLOAD_TOO_LARGE', /exceeds/);
    expect(pulled).toBeLessThan(MAX_BODY_BYTES + 3 * chunk.byteLength);
  });

  it('fits the largest legitimate request: a createPost of 200 + 20 000 astral characters, JSON-escaped', async () => {
    const emoji = '\u{1F600}';
    const input = { title: emoji.repeat(200), body: emoji.repeat(20_000) };
    // Escaped the way a careful client may send it: 12 bytes (\ud83d\ude00) per character.
    const body = JSON.stringify({
      query: 'mutation ($input: CreatePostInput!) { createPost(input: $input) { id title } }',
      variables: { input },
    }).replace(/\u{1F600}/gu, '\\ud83d\\ude00');
    expect(body.length).toBeGreaterThan(240_000);
    expect(body.length).toBeLessThanOrEqual(MAX_BODY_BYTES);
    const res = await postRaw(body, { authorization: `Bearer ${await t.token(2)}` });
    expect(res.status).toBe(200);
    expect((res.body as { data: { createPost: { title: string } } }).data.createPost.title).toBe(input.title);
  });
});

// Batches

describe(`batched requests: 1 to ${MAX_BATCHED_OPERATIONS} operations`, () => {
  const operation = { query: '{ user(id: "1") { id } }' };

  it(`answers ${MAX_BATCHED_OPERATIONS} operations in order`, async () => {
    const res = await postRaw(
      JSON.stringify(Array.from({ length: MAX_BATCHED_OPERATIONS }, () => operation)),
    );
    expect(res.status).toBe(200);
    expect(res.body).toEqual(
      Array.from({ length: MAX_BATCHED_OPERATIONS }, () => ({ data: { user: { id: '1' } } })),
    );
  });

  it(`refuses ${MAX_BATCHED_OPERATIONS + 1} operations with 413 BAD_REQUEST, running none`, async () => {
    const body = JSON.stringify(Array.from({ length: MAX_BATCHED_OPERATIONS + 1 }, () => operation));
    const res = await expectFree(() => postRaw(body));
    expectRefused(
      res,
      413,
      'BAD_REQUEST',
      `Batching is limited to ${MAX_BATCHED_OPERATIONS} operations per request.`,
    );
  });

  it('refuses an empty batch with 400 BAD_REQUEST', async () => {
    expectRefused(await postRaw('[]'), 400, 'BAD_REQUEST', 'at least one operation');
  });

  it('answers a batch entry that is not an operation with BAD_REQUEST and runs the others (it was a 500)', async () => {
    const res = await postRaw(JSON.stringify([null, operation]));
    expect(res.status, res.text).toBe(200);
    const [first, second] = res.body as ErrorBody[];
    expect(first!.errors?.[0]?.extensions?.code).toBe('BAD_REQUEST');
    expect(second).toEqual({ data: { user: { id: '1' } } });
  });

  it('limits each operation of a batch on its own', async () => {
    const res = await postRaw(JSON.stringify([operation, { query: queryOfDepth(11) }]));
    const [first, second] = res.body as ErrorBody[];
    expect(first).toEqual({ data: { user: { id: '1' } } });
    expect(second!.errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
    expect(second!.errors?.[0]?.message).toMatch(/depth limit of 10/);
  });
});

// Malformed parameters that yoga's parsers mishandled (use-request-shape.ts)

describe('malformed request parameters: 400 BAD_REQUEST, never a 500', () => {
  const multipart = (parts: [string, string][]) =>
    `${parts.map(([name, value]) => `--x\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`).join('')}--x--\r\n`;

  it.each([
    ['GET variables that are not JSON', 'variables=%7Bnope'],
    ['GET extensions that are not JSON', 'extensions=nope'],
  ])('refuses %s', async (_, params) => {
    const response = await expectFree(() =>
      t.fetch(`/graphql?query=${encodeURIComponent('{ user(id: "1") { id } }')}&${params}`, {
        headers: { accept: 'application/graphql-response+json' },
      }),
    );
    expectRefused(
      { status: response.status, body: await response.json() },
      400,
      'BAD_REQUEST',
      /^the request could not be parsed/,
    );
  });

  it.each<[string, string, string]>([
    [
      'form-encoded variables that are not JSON',
      'application/x-www-form-urlencoded',
      `query=${encodeURIComponent('{ user(id: "1") { id } }')}&variables=%7B`,
    ],
    ['a multipart body without operations', 'multipart/form-data; boundary=x', multipart([['map', '{}']])],
    [
      'a multipart map whose entry is not a list',
      'multipart/form-data; boundary=x',
      multipart([
        ['operations', '{"query":"{ me { id } }"}'],
        ['map', '{"0": 5}'],
      ]),
    ],
    [
      'a multipart map that is not JSON',
      'multipart/form-data; boundary=x',
      multipart([
        ['operations', '{"query":"{ me { id } }"}'],
        ['map', '{'],
      ]),
    ],
  ])('refuses %s', async (_, type, body) => {
    const res = await expectFree(() => postRaw(body, { 'content-type': type }));
    expect(res.status, res.text).toBe(400);
    expect((res.body as ErrorBody).errors?.[0]?.extensions?.code).toBe('BAD_REQUEST');
  });
});

// Depth, aliases, tokens: checked before anything runs

describe(`query depth: at most ${DEFAULT_QUERY_LIMITS.maxDepth}`, () => {
  it('accepts depth 10', async () => {
    const res = await t.gql(queryOfDepth(10));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.errors).toBeUndefined();
  });

  it('refuses depth 11 with 400 GRAPHQL_VALIDATION_FAILED, before any load', async () => {
    const res = await expectFree(() => t.gql(queryOfDepth(11)));
    expectRefused(res, 400, 'GRAPHQL_VALIDATION_FAILED', 'Query depth limit of 10 exceeded, found 11.');
  });

  it('counts the depth through fragments', async () => {
    const query = `{ user(id: "1") { ...A } }
      fragment A on User { posts(first: 1) { author { ...B } } }
      fragment B on User { posts(first: 1) { author { ...C } } }
      fragment C on User { posts(first: 1) { author { posts(first: 1) { author { posts(first: 1) { id } } } } } }`;
    expectRefused(
      await expectFree(() => t.gql(query)),
      400,
      'GRAPHQL_VALIDATION_FAILED',
      /Query depth limit of 10 exceeded/,
    );
  });
});

describe(`aliases: at most ${DEFAULT_QUERY_LIMITS.maxAliases} per operation`, () => {
  it('accepts 30 aliases', async () => {
    const res = await t.gql(`{ ${aliases(30)} }`);
    expect(res.status).toBe(200);
    expect(Object.keys(res.body.data ?? {})).toHaveLength(30);
  });

  it('refuses 31 with 400 GRAPHQL_VALIDATION_FAILED, before any load', async () => {
    const res = await expectFree(() => t.gql(`{ ${aliases(31)} }`));
    expectRefused(res, 400, 'GRAPHQL_VALIDATION_FAILED', 'Aliases limit of 30 exceeded, found 31.');
  });

  it('counts the aliases of a fragment every time it is spread', async () => {
    const res = await expectFree(() => t.gql(`{ ...F ...F } fragment F on Query { ${aliases(16)} }`));
    expectRefused(res, 400, 'GRAPHQL_VALIDATION_FAILED', 'Aliases limit of 30 exceeded, found 32.');
  });

  it('counts aliases of __typename too: 30 pass, 31 are refused', async () => {
    const typenames = (n: number) => Array.from({ length: n }, (_, i) => `t${i}: __typename`).join(' ');
    const res = await t.gql(`{ ${typenames(30)} }`);
    expect(res.status).toBe(200);
    expect(Object.keys(res.body.data ?? {})).toHaveLength(30);
    const over = await expectFree(() => t.gql(`{ ${typenames(31)} }`));
    expectRefused(over, 400, 'GRAPHQL_VALIDATION_FAILED', 'Aliases limit of 30 exceeded, found 31.');
  });

  it('refuses 1 000 aliases with 400 (the token limit stops it while parsing)', async () => {
    const res = await expectFree(() => t.gql(`{ ${aliases(1000)} }`));
    expectRefused(res, 400, 'GRAPHQL_PARSE_FAILED', 'Token limit of 2000 exceeded');
  });
});

describe(`lexical tokens: at most ${DEFAULT_QUERY_LIMITS.maxTokens} per document`, () => {
  // `{ users ( ids : [ … ] ) { id } }` is 12 tokens plus one per id; commas are not tokens.
  const withIds = (n: number) =>
    `{ users(ids: [${Array.from({ length: n }, () => '"1"').join(', ')}]) { id } }`;

  it('parses a document of exactly 2000 tokens (its 1988 ids are then refused by the field)', async () => {
    const res = await t.gql(withIds(1988));
    expect(res.status).toBe(200);
    expect(res.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(res.body.errors?.[0]?.message).toBe('ids must hold 1 to 100 ids, got 1988');
  });

  it('refuses 2001 tokens with 400 GRAPHQL_PARSE_FAILED', async () => {
    const res = await expectFree(() => t.gql(withIds(1989)));
    expectRefused(res, 400, 'GRAPHQL_PARSE_FAILED', 'Token limit of 2000 exceeded.');
  });

  it('refuses hundreds of same-named fields (graphql-js validation budget) with 400 and a reason', async () => {
    const res = await expectFree(() => t.gql(`{ ${'__typename '.repeat(1500)}}`));
    expectRefused(
      res,
      400,
      'GRAPHQL_VALIDATION_FAILED',
      /^Validation aborted: the operation is too complex to validate/,
    );
  });
});

// Cost: lists multiply, whether sized by a literal, a variable or a default

describe(`cost: at most ${DEFAULT_QUERY_LIMITS.maxCost}`, () => {
  // users(ids: k ids) { posts(first: m) { id } } costs (2 + 1.5 × 3.5m) × k: 19 625 for k = 100 and
  // m = 37, 20 150 for m = 38.
  const USERS_POSTS = 'query ($ids: [ID!]!, $m: Int) { users(ids: $ids) { posts(first: $m) { id } } }';
  const hundredIds = Array.from({ length: 100 }, (_, i) => String((i % USERS) + 1));

  it('accepts a cost of 19 625 (100 users × 37 posts, sized by variables)', async () => {
    const res = await t.gql<{ users: { posts: unknown[] }[] }>(USERS_POSTS, {
      variables: { ids: hundredIds, m: 37 },
    });
    expect(res.status).toBe(200);
    expect(res.body.errors).toBeUndefined();
    expect(res.body.data!.users).toHaveLength(100);
  });

  it('refuses a cost of 20 150 (100 users × 38 posts) with 400 GRAPHQL_VALIDATION_FAILED, before any load', async () => {
    const res = await expectFree(() => t.gql(USERS_POSTS, { variables: { ids: hundredIds, m: 38 } }));
    expectRefused(res, 400, 'GRAPHQL_VALIDATION_FAILED', 'Query Cost limit of 20000 exceeded, found 20150.');
  });

  // The limit is per request: a batch's operations are costed together, before any of them runs.
  // users(ids: 50 ids) { posts(first: 37) { id } } costs 9 812.5.
  const fiftyIds = hundredIds.slice(0, 50);
  const batchOf = (variables: object[]) =>
    JSON.stringify(variables.map((v) => ({ query: USERS_POSTS, variables: v })));

  it('accepts a batch whose operations cost 19 625 together', async () => {
    const res = await postRaw(
      batchOf([
        { ids: fiftyIds, m: 37 },
        { ids: fiftyIds, m: 37 },
      ]),
    );
    expect(res.status, res.text).toBe(200);
    const results = res.body as { data?: { users: unknown[] }; errors?: unknown }[];
    expect(results.map((r) => [r.errors, r.data?.users.length])).toEqual([
      [undefined, 50],
      [undefined, 50],
    ]);
  });

  it('refuses a batch whose operations cost more together, each under the limit, running none', async () => {
    // Each at 9 812.5 and 9 812.5 + 525: alone, either passes.
    const res = await expectFree(() =>
      postRaw(
        batchOf([
          { ids: fiftyIds, m: 37 },
          { ids: fiftyIds, m: 39 },
        ]),
      ),
    );
    expectRefused(
      res,
      400,
      'GRAPHQL_VALIDATION_FAILED',
      "Query Cost limit of 20000 per request exceeded: the batch's 2 operations cost 20150 together (9812.5 + 10337.5).",
    );
  });

  it(`refuses ${MAX_BATCHED_OPERATIONS} operations at 19 625 each (${MAX_BATCHED_OPERATIONS} × the limit before)`, async () => {
    const batch = Array.from({ length: MAX_BATCHED_OPERATIONS }, () => ({ ids: hundredIds, m: 37 }));
    const res = await expectFree(() => postRaw(batchOf(batch)));
    expectRefused(res, 400, 'GRAPHQL_VALIDATION_FAILED', /the batch's 10 operations cost 196250 together/);
  });

  // The same explosive shape, each way of sizing its lists. graphql-armor's rule, which this one
  // replaced, read only integer literals: the rows sized by variables, variable defaults or schema
  // defaults passed it, and the second made one 130-byte request build 250 000 posts (on 50 posts
  // per user).
  const EXPLOSIVE =
    'userPage(first: 100) { nodes { posts(first: 50) { author { posts(first: 50) { id } } } } }';
  it.each([
    ['integer literals', `{ ${EXPLOSIVE} }`, {}],
    [
      'variables',
      'query ($a: Int, $b: Int) { userPage(first: $a) { nodes { posts(first: $b) { author { posts(first: $b) { id } } } } } }',
      { a: 100, b: 50 },
    ],
    [
      'variable defaults',
      'query ($a: Int = 100, $b: Int = 50) { userPage(first: $a) { nodes { posts(first: $b) { author { posts(first: $b) { id } } } } } }',
      {},
    ],
    [
      'schema defaults (20 users, 10 posts)',
      '{ userPage { nodes { posts { author { posts { author { posts { id } } } } } } } }',
      {},
    ],
    [
      'a literal list of 100 ids',
      `{ users(ids: [${hundredIds.map((id) => `"${id}"`).join(',')}]) { posts(first: 50) { author { posts(first: 50) { id } } } } }`,
      {},
    ],
    [
      'named fragments',
      'query ($n: Int) { userPage(first: $n) { nodes { ...U } } } fragment U on User { posts(first: $n) { author { ...P } } } fragment P on User { posts(first: $n) { id } }',
      { n: 50 },
    ],
    [
      'inline fragments',
      'query ($n: Int) { userPage(first: $n) { nodes { ... on User { posts(first: $n) { author { ... { posts(first: $n) { id } } } } } } } }',
      { n: 50 },
    ],
    ['one of several aliases', `{ small: user(id: "1") { id } big: ${EXPLOSIVE} }`, {}],
  ])('refuses an explosive query sized by %s, before any load', async (_, query, variables) => {
    const res = await expectFree(() => t.gql(query, { variables }));
    expectRefused(res, 400, 'GRAPHQL_VALIDATION_FAILED', /^Query Cost limit of 20000 exceeded, found \d/);
  });

  it("accepts the queries clients send: GraphiQL's first query, the README's, a paged list sized by variables", async () => {
    const queries: [string, Record<string, unknown>][] = [
      [
        '{ user(id: "1") { name createdAt profile { displayName bio location version } posts(first: 3) { id title createdAt } } }',
        {},
      ],
      [
        '{ userPage(first: 3) { nodes { id name profile { displayName bio } posts(first: 2) { title createdAt } } nextCursor } }',
        {},
      ],
      [
        'query ($n: Int, $p: Int) { userPage(first: $n) { nodes { id name profile { displayName } posts(first: $p) { id title author { id name } } } nextCursor } }',
        { n: 20, p: 3 },
      ],
      [
        '{ userPage(first: 100) { nodes { id name profile { bio } posts(first: 3) { title author { name profile { displayName } } } } } }',
        {},
      ],
    ];
    for (const [query, variables] of queries) {
      const res = await t.gql(query, { variables });
      expect(res.status, query).toBe(200);
      expect(res.body.errors, query).toBeUndefined();
    }
  });

  it("leaves a size beyond a field's maximum to the field, whose error names the value", async () => {
    const res = await expectFree(() =>
      t.gql('query ($n: Int) { userPage(first: $n) { nodes { id } } }', { variables: { n: 2147483647 } }),
    );
    expect(res.status).toBe(200);
    expect(res.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(res.body.errors?.[0]?.message).toBe('first must be an integer from 1 to 100, got 2147483647');
  });
});

// List sizes

describe('list sizes: ids 1..100, userPage(first) 1..100, posts(first) 1..50', () => {
  it('refuses 10 000 ids with BAD_USER_INPUT naming the count, before any load', async () => {
    const ids = Array.from({ length: 10_000 }, (_, i) => String(i + 1));
    const res = await expectFree(() =>
      t.gql('query ($ids: [ID!]!) { users(ids: $ids) { id } }', { variables: { ids } }),
    );
    expect(res.status).toBe(200);
    expect(res.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(res.body.errors?.[0]?.message).toBe('ids must hold 1 to 100 ids, got 10000');
    expect(res.body.data).toBeNull();
  });

  it('refuses 100 ids with one bad one before loading any of them', async () => {
    const ids = Array.from({ length: 100 }, (_, i) => (i === 99 ? '0x10' : String(i + 1)));
    const res = await expectFree(() =>
      t.gql('query ($ids: [ID!]!) { users(ids: $ids) { id } }', { variables: { ids } }),
    );
    expect(res.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(res.body.errors?.[0]?.message).toContain('ids[99]');
  });
});

describe('variables that do not fit their type', () => {
  it.each([
    ['a boolean for ID!', 'query ($id: ID!) { user(id: $id) { id } }', { id: true }],
    ['a float for ID!', 'query ($id: ID!) { user(id: $id) { id } }', { id: 1.5 }],
    ['an object for [ID!]!', 'query ($ids: [ID!]!) { users(ids: $ids) { id } }', { ids: { 0: '1' } }],
    ['a null inside [ID!]!', 'query ($ids: [ID!]!) { users(ids: $ids) { id } }', { ids: ['1', null] }],
    ['1e300 for Int', 'query ($n: Int) { userPage(first: $n) { nextCursor } }', { n: 1e300 }],
    ['a missing ID!', 'query ($id: ID!) { user(id: $id) { id } }', {}],
  ])('answer %s with 400 BAD_USER_INPUT', async (_, query, variables) => {
    const res = await expectFree(() => t.gql(query, { variables }));
    expectRefused(res, 400, 'BAD_USER_INPUT', /^Variable "\$\w+"/);
  });
});

// Tokens

/** Signs `claims` with `alg` and a key that fits it. */
async function signWith(alg: string, claims: JWTPayload): Promise<string> {
  const { privateKey } = await generateKeyPair(alg, alg === 'EdDSA' ? { crv: 'Ed25519' } : {});
  return new SignJWT(claims).setProtectedHeader({ alg, typ: 'JWT' }).sign(privateKey);
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
const claims = (sub = '1'): JWTPayload => ({
  sub,
  iat: Math.floor(Date.now() / 1000),
  exp: Math.floor(Date.now() / 1000) + 3600,
});

describe('tokens: HS256 only, exp required, at most 4096 characters', () => {
  it.each(['RS256', 'PS256', 'ES256', 'ES384', 'EdDSA'])(
    'refuses a well-signed %s token with 401 UNAUTHENTICATED, naming the algorithm as the reason',
    async (alg) => {
      const token = await signWith(alg, claims());
      const res = await expectFree(() => t.gql('{ me { id } }', { token }));
      expectRefused(res, 401, 'UNAUTHENTICATED', 'token algorithm is not accepted: only HS256 is');
      expect(res.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
    },
  );

  it.each([
    ['alg "None"', `${b64({ alg: 'None', typ: 'JWT' })}.${b64(claims())}.`],
    ['alg "NONE"', `${b64({ alg: 'NONE', typ: 'JWT' })}.${b64(claims())}.`],
    ['alg "nOnE" with a signature', `${b64({ alg: 'nOnE' })}.${b64(claims())}.c2ln`],
    ['no alg at all', `${b64({ typ: 'JWT' })}.${b64(claims())}.c2ln`],
    ['a JWE (five parts)', `${b64({ alg: 'dir', enc: 'A256GCM' })}..AAAA.AAAA.AAAA`],
    ['a header that is not JSON', `${Buffer.from('{alg:HS256').toString('base64url')}.${b64(claims())}.c2ln`],
  ])('refuses a token with %s with 401 UNAUTHENTICATED', async (_, token) => {
    const res = await expectFree(() => t.gql('{ me { id } }', { token }));
    expectRefused(res, 401, 'UNAUTHENTICATED', /token/);
  });

  it.each<[string, Record<string, unknown>, Record<string, unknown>]>([
    ['exp given as a string', { ...claims(), exp: String(Math.floor(Date.now() / 1000) + 3600) }, {}],
    [
      'an unknown critical header parameter',
      claims(),
      { crit: ['x-must-understand'], 'x-must-understand': 1 },
    ],
    ['a "b64": false header (unencoded payload)', claims(), { b64: false, crit: ['b64'] }],
  ])('refuses an HS256 token with the right secret but %s', async (_, payload, extraHeader) => {
    // Signed by hand: jose itself refuses to sign some of these.
    const signingInput = `${b64({ alg: 'HS256', typ: 'JWT', ...extraHeader })}.${b64(payload)}`;
    const signature = createHmac('sha256', TEST_AUTH_SECRET).update(signingInput).digest('base64url');
    const token = `${signingInput}.${signature}`;
    expectRefused(await t.gql('{ me { id } }', { token }), 401, 'UNAUTHENTICATED', /token/);
  });

  it('accepts the hand-signed token those cases start from (so they fail for the stated reason)', async () => {
    const signingInput = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims('4'))}`;
    const signature = createHmac('sha256', TEST_AUTH_SECRET).update(signingInput).digest('base64url');
    expect((await t.gql('{ me { id } }', { token: `${signingInput}.${signature}` })).body).toEqual({
      data: { me: { id: '4' } },
    });
  });

  it(`accepts an Authorization header of exactly ${MAX_AUTHORIZATION_LENGTH} characters and refuses one more`, async () => {
    // A correctly signed token, padded by a claim, and spaces after "Bearer" (which the header
    // grammar allows) to reach the exact length.
    const token = await new SignJWT({ ...claims('3'), pad: 'p'.repeat(2900) })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .sign(new TextEncoder().encode(TEST_AUTH_SECRET));
    const header = (length: number) => `Bearer${' '.repeat(length - 'Bearer'.length - token.length)}${token}`;
    expect(token.length).toBeLessThan(MAX_AUTHORIZATION_LENGTH - 10);

    const exact = await t.gql('{ me { id } }', {
      headers: { authorization: header(MAX_AUTHORIZATION_LENGTH) },
    });
    expect(exact.body).toEqual({ data: { me: { id: '3' } } });

    const over = await expectFree(() =>
      t.gql('{ me { id } }', { headers: { authorization: header(MAX_AUTHORIZATION_LENGTH + 1) } }),
    );
    expectRefused(
      over,
      401,
      'UNAUTHENTICATED',
      `Authorization header must be at most ${MAX_AUTHORIZATION_LENGTH} characters`,
    );
  });
});

// Introspection

describe('introspection: on by default, off when NODE_ENV=production unless GRAPHQL_INTROSPECTION=on', () => {
  const SCHEMA = '{ __schema { queryType { name } } }';
  const TYPE = '{ __type(name: "User") { fields { name } } }';

  async function withApp(env: Record<string, string>, run: (app: TestApp) => Promise<void>) {
    const app = await createTestApp({ label: 'limits_env', share: t, env });
    try {
      await run(app);
    } finally {
      await app.close();
    }
  }

  it("answers the full introspection query (GraphiQL's) by default: no limit stands in its way", async () => {
    const res = await t.gql<{ __schema: { types: { name: string }[] } }>(getIntrospectionQuery());
    expect(res.status).toBe(200);
    expect(res.body.errors).toBeUndefined();
    expect(res.body.data!.__schema.types.map((type) => type.name)).toContain('User');
  });

  it('refuses __schema and __type in production with 400 GRAPHQL_VALIDATION_FAILED; __typename and queries still work', async () => {
    await withApp({ NODE_ENV: 'production' }, async (app) => {
      for (const query of [SCHEMA, TYPE, getIntrospectionQuery()]) {
        const res = await app.gql(query);
        expectRefused(res, 400, 'GRAPHQL_VALIDATION_FAILED', /introspection/i);
      }
      expect((await app.gql('{ __typename }')).body).toEqual({ data: { __typename: 'Query' } });
      expect((await app.gql('{ user(id: "1") { id } }')).body).toEqual({ data: { user: { id: '1' } } });
    });
  });

  it('allows introspection in production with GRAPHQL_INTROSPECTION=on', async () => {
    await withApp({ NODE_ENV: 'production', GRAPHQL_INTROSPECTION: 'on' }, async (app) => {
      const res = await app.gql(getIntrospectionQuery());
      expect(res.status).toBe(200);
      expect(res.body.errors).toBeUndefined();
    });
  });

  it('refuses introspection outside production with GRAPHQL_INTROSPECTION=off', async () => {
    await withApp({ GRAPHQL_INTROSPECTION: 'off' }, async (app) => {
      expectRefused(await app.gql(SCHEMA), 400, 'GRAPHQL_VALIDATION_FAILED', /introspection/i);
    });
  });

  it('ignores x-cache-debug in production (CACHE_DEBUG defaults to off there)', async () => {
    await withApp({ NODE_ENV: 'production' }, async (app) => {
      const res = await app.gql('{ user(id: "1") { id } }', { headers: { 'x-cache-debug': '1' } });
      expect(res.body).toEqual({ data: { user: { id: '1' } } });
    });
  });
});

// email through a warm cache

describe('User.email through a warm cache: the entity is cached whole, the field is authorized per request', () => {
  const EMAIL = (id: number) => `{ user(id: "${id}") { id email } }`;

  async function emailOf(id: number): Promise<string> {
    const [row] = await t.testDb.database.db
      .select({ email: users.email })
      .from(users)
      .where(eq(users.id, id));
    return row!.email;
  }

  async function withRedis<T>(run: (redis: Redis) => Promise<T>): Promise<T> {
    const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await redis.connect();
      return await run(redis);
    } finally {
      redis.disconnect();
    }
  }
  const cachedBytes = (app: TestApp, id: number) =>
    withRedis((redis) => redis.getBuffer(`${app.prefix}:v1:user:{${id}}`));
  const evict = (app: TestApp, id: number) =>
    withRedis((redis) => redis.del(`${app.prefix}:v1:user:{${id}}`));

  it("serves a stranger the owner's cached entity (HIT) without its email", async () => {
    const owner = await t.gql(EMAIL(31), { token: await t.token(31) });
    expect(owner.body).toEqual({ data: { user: { id: '31', email: await emailOf(31) } } });

    // The cached value holds the email: isolation is the field's doing, not the cache's.
    expect((await cachedBytes(t, 31))?.includes(Buffer.from(await emailOf(31)))).toBe(true);

    const stranger = await t.gql(EMAIL(31), { token: await t.token(32), headers: { 'x-cache-debug': '1' } });
    expect(stranger.headers.get('x-cache')).toBe('HIT');
    expect(stranger.body.data).toEqual({ user: { id: '31', email: null } });
    const anonymous = await t.gql(EMAIL(31));
    expect(anonymous.headers.get('x-cache')).toBe('HIT');
    expect(anonymous.body).toEqual({ data: { user: { id: '31', email: null } } });
    // …and the owner still sees it, from the same entry.
    const again = await t.gql(EMAIL(31), { token: await t.token(31) });
    expect(again.headers.get('x-cache')).toBe('HIT');
    expect(again.body).toEqual({ data: { user: { id: '31', email: await emailOf(31) } } });
  });

  it('keeps it private on every path to a cached user: me, post author, page, users(ids)', async () => {
    await t.gql(EMAIL(33), { token: await t.token(33) }); // warm, with the owner's request
    const postOfOwner = (
      await t.testDb.database.db.select({ id: posts.id }).from(posts).where(eq(posts.authorId, 33)).limit(1)
    )[0]!.id;
    const res = await t.gql<{
      me: { id: string; email: string };
      post: { author: { email: string | null } };
      userPage: { nodes: { id: string; email: string | null }[] };
      users: ({ email: string | null } | null)[];
    }>(
      `{ me { id email } post(id: "${postOfOwner}") { author { email } } userPage(first: 2, after: "32") { nodes { id email } } users(ids: ["33", "34", "33"]) { email } }`,
      { token: await t.token(34) },
    );
    expect(res.body.errors).toBeUndefined();
    expect(res.body.data!.me).toEqual({ id: '34', email: await emailOf(34) });
    expect(res.body.data!.post.author.email).toBeNull();
    expect(res.body.data!.userPage.nodes.filter((n) => n.email !== null)).toEqual([
      { id: '34', email: await emailOf(34) },
    ]);
    expect(res.body.data!.users).toEqual([{ email: null }, { email: await emailOf(34) }, { email: null }]);
  });

  it("keeps it private when a stranger's request shares the owner's in-flight load", async () => {
    await t.gql('{ user(id: "36") { id } }'); // the stranger's own entry, so their token check is a hit
    await evict(t, 35); // the owner's, cold (earlier tests paged through every user)
    let release!: () => void;
    holdLoads = new Promise<void>((resolve) => (release = resolve));
    try {
      // The owner's request starts the load of user 35 (its token check) and is held there…
      const owner = t.gql(EMAIL(35), { token: await t.token(35) });
      await waitFor(() => loads.some((l) => l.query === 'users' && l.ids.includes(35)));
      // …the stranger's request for user 35 joins that load instead of starting its own.
      const stranger = t.gql(EMAIL(35), { token: await t.token(36) });
      // Nothing observable marks the moment it joins (no SQL, no store write): give it time, and
      // check below that it did join (Cache-Status "collapsed"), so a slow run fails loudly.
      await new Promise((resolve) => setTimeout(resolve, 200));
      release();
      const [ownerRes, strangerRes] = await Promise.all([owner, stranger]);
      expect(ownerRes.body).toEqual({ data: { user: { id: '35', email: await emailOf(35) } } });
      expect(strangerRes.body).toEqual({ data: { user: { id: '35', email: null } } });
      expect(strangerRes.headers.get('cache-status')).toContain('collapsed');
      expect(loads.filter((l) => l.query === 'users' && l.ids.includes(35))).toHaveLength(1);
    } finally {
      holdLoads = undefined;
      release?.();
    }
  });

  it('keeps it private with the in-process L1 tier on', async () => {
    const app = await createTestApp({ label: 'limits_l1', share: t, env: { CACHE_L1_MAX_ENTRIES: '1000' } });
    try {
      const owner = await app.gql(EMAIL(37), { token: await app.token(37) });
      expect(owner.body).toEqual({ data: { user: { id: '37', email: await emailOf(37) } } });
      const stranger = await app.gql(EMAIL(37), { token: await app.token(38) });
      expect(stranger.body).toEqual({ data: { user: { id: '37', email: null } } });
      expect(stranger.headers.get('x-cache')).toBe('HIT');
    } finally {
      await app.close();
    }
  });
});

// Private helpers

function streamOf(text: string): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  let offset = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(offset, offset + 16 * 1024));
      offset += 16 * 1024;
    },
  });
}

async function waitFor(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
