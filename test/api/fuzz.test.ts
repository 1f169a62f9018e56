/**
 * Hostile input, generated: fast-check sends 2 400 requests to /graphql (in-process, through
 * `yoga.fetch`) drawn from the shapes attackers and broken clients send — malformed JSON, wrong
 * types everywhere, ids that are huge, negative, non-canonical or not numbers at all, 10 000 ids,
 * deep queries, up to 1 000 aliases, batches, multi-megabyte bodies, U+0000 and lone surrogates in
 * documents, variables and mutation inputs, with and without a valid token — and checks that
 *
 * - every answer is a 4xx, or a 200 whose every GraphQL error carries an `extensions.code` (and
 *   none is a masked INTERNAL_SERVER_ERROR): nothing a client sends yields a 5xx or a bug;
 * - the server still answers normally afterwards;
 * - Redis holds no key derived from an invalid id: every key under the prefix names an entity by a
 *   canonical id in 1..2147483647 (docs/contract.md, "Keys": only validated ids enter a key).
 *
 * Run with a fixed seed printed on failure (fast-check's report); the counts per kind are printed at
 * the end.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../support/app.js';
import { scanKeys } from '../support/redis.js';

const USERS = 12;
const RUNS = 2400;
const MAX_ID = 2_147_483_647;

let t: TestApp;
/** Valid bearer tokens of users 1..USERS. */
let tokens: string[] = [];
const counts = new Map<string, number>();

beforeAll(async () => {
  t = await createTestApp({ label: 'fuzz', seed: { users: USERS, postsPerUser: 3 } });
  tokens = await Promise.all(Array.from({ length: USERS }, (_, i) => t.token(i + 1)));
});

afterAll(async () => {
  await t?.close();
});

// What one generated request is

interface FuzzRequest {
  readonly kind: string;
  readonly method: string;
  /** Path and query string. */
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body?: string;
}

// Building blocks

/** Any UTF-16 code unit, lone surrogates and U+0000 included, plus a few notorious characters. */
const oddChar = fc.oneof(
  fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
  fc.constantFrom(
    '\u0000',
    '\ud800',
    '\udbff',
    '\udc00',
    '\udfff',
    '\ufeff',
    '\u202e',
    '\uffff',
    '\ufffe',
    '\u{1F600}',
    'e\u0301',
    '\u2028',
    '"',
    '\\',
    '{',
    '}',
    '$',
    '#',
  ),
);
const oddString = fc.string({ unit: oddChar, maxLength: 40 });
const printable = fc.string({ maxLength: 40 });

/** Id-shaped text that is not a canonical id in 1..2147483647. */
const badIdText = fc.oneof(
  fc.constantFrom(
    '0',
    '-0',
    '-1',
    '007',
    '01',
    '+1',
    ' 1',
    '1 ',
    '1.0',
    '1.5',
    '1e3',
    '0x1F',
    '0b1',
    '1_000',
    '2147483648',
    '4294967296',
    '9007199254740993',
    '',
    'abc',
    'NaN',
    'Infinity',
    'null',
    'undefined',
    '١٢٣',
    '１',
    '1\u0000',
    '\u0000',
    '\ud800',
    '1\udfff',
    '\ufeff1',
    '1\n',
    '{1}',
    '1}:x',
    '*',
    '?',
  ),
  fc.bigInt({ min: 2_147_483_648n, max: 10n ** 40n }).map(String),
  fc.bigInt({ min: -(10n ** 40n), max: -1n }).map(String),
  fc
    .tuple(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: MAX_ID }))
    .map(([zeros, n]) => '0'.repeat(zeros) + n),
  fc.integer({ min: 1, max: 100_000 }).map((n) => '9'.repeat((n % 200) + 11)),
  oddString,
);
const goodId = fc
  .oneof(fc.integer({ min: 1, max: USERS + 3 }), fc.integer({ min: 1, max: MAX_ID }))
  .map(String);
/** Anything a client could put where an ID goes, as a JSON value. */
const idValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: badIdText },
  { weight: 2, arbitrary: goodId },
  { weight: 1, arbitrary: fc.integer() },
  { weight: 1, arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }) },
  { weight: 1, arbitrary: fc.constantFrom(null, true, false, [], {}, ['1'], { id: '1' }) },
);
const intValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.integer({ min: -5, max: 120 }),
  fc.integer(),
  fc.constantFrom(2 ** 31, -(2 ** 31) - 1, 1e300, 0.5, null, '10', true, [], {}),
);

/** A GraphQL literal for a JSON value, as a careless client would splice it into the document. */
function literal(value: unknown): string {
  if (typeof value === 'number' && !Number.isInteger(value)) return String(value);
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(literal).join(', ')}]`;
  if (value !== null && typeof value === 'object') {
    return `{ ${Object.entries(value)
      .map(([k, v]) => `${/^[_A-Za-z]\w*$/.test(k) ? k : 'x'}: ${literal(v)}`)
      .join(', ')} }`;
  }
  return String(value);
}

const tokenHeader: fc.Arbitrary<Record<string, string>> = fc.oneof(
  { weight: 4, arbitrary: fc.constant({}) },
  {
    weight: 3,
    arbitrary: fc.integer({ min: 0, max: USERS - 1 }).map((i) => ({ authorization: `Bearer ${tokens[i]!}` })),
  },
  {
    weight: 1,
    arbitrary: fc
      .oneof(
        printable,
        fc.constantFrom('Bearer', 'Bearer ', 'Bearer a.b.c', `Bearer ${'x'.repeat(5000)}`, 'Basic dTpw'),
      )
      .map((a) => ({
        authorization: a.replace(/[\r\n\0]/g, ''),
      })),
  },
);

/** A request body of JSON `value`, POSTed with these headers. */
const post = (kind: string, value: unknown, headers: Record<string, string> = {}): FuzzRequest => ({
  kind,
  method: 'POST',
  path: '/graphql',
  headers: { 'content-type': 'application/json', ...headers },
  body: JSON.stringify(value),
});

// Kinds of request

const SELECTIONS = [
  'id',
  'name',
  'email',
  'createdAt',
  'profile { displayName bio version }',
  'posts(first: 2) { id title }',
];
const selection = fc.subarray(SELECTIONS, { minLength: 1 }).map((s) => s.join(' '));

const malformedJson = fc
  .oneof(
    printable,
    oddString,
    fc.constantFrom(
      '{',
      '{"query":',
      '{"query": "{ me { id } }",}',
      'null',
      '42',
      '"x"',
      'true',
      '[',
      '[1,',
      '{"query": "\\ud800"}',
      '\ufeff{"query":"{ me { id } }"}',
      '{"query":"{ me { id } }"}garbage',
      '{"__proto__": {"query": 1}}',
    ),
    fc.json().map((json) => json.slice(0, Math.max(0, json.length - 1))),
    fc.integer({ min: 1, max: 60_000 }).map((n) => '['.repeat(n)),
    fc
      .integer({ min: 1, max: 60_000 })
      .map((n) => `{"query":"{ me { id } }","variables":{"x":${'['.repeat(n)}${']'.repeat(n)}}}`),
  )
  .map((body): FuzzRequest => ({
    kind: 'malformed JSON',
    method: 'POST',
    path: '/graphql',
    headers: { 'content-type': 'application/json' },
    body,
  }));

const wrongTypes = fc
  .record(
    {
      query: fc.oneof(fc.jsonValue(), fc.constant('{ user(id: "1") { id } }'), printable),
      variables: fc.oneof(fc.jsonValue(), fc.dictionary(printable, fc.jsonValue())),
      operationName: fc.oneof(fc.jsonValue(), printable),
      extensions: fc.jsonValue(),
    },
    { requiredKeys: [] },
  )
  .map((body) => post('wrong types', body));

const idQueries = fc.oneof(
  fc.tuple(idValue, selection).map(([id, sel]) =>
    post('ids: user(id) variable', {
      query: `query ($id: ID!) { user(id: $id) { ${sel} } }`,
      variables: { id },
    }),
  ),
  fc.tuple(idValue).map(([id]) =>
    post('ids: post(id) variable', {
      query: 'query ($id: ID!) { post(id: $id) { id title author { id } } }',
      variables: { id },
    }),
  ),
  fc.tuple(idValue, selection).map(([id, sel]) =>
    post('ids: literal', {
      query: `{ user(id: ${literal(id)}) { ${sel} } post(id: ${literal(id)}) { id } }`,
    }),
  ),
  fc.array(idValue, { maxLength: 120 }).map((ids) =>
    post('ids: users(ids)', {
      query: 'query ($ids: [ID!]!) { users(ids: $ids) { id name } }',
      variables: { ids },
    }),
  ),
  fc.tuple(idValue, intValue).map(([after, first]) =>
    post('ids: userPage(after, first)', {
      query: 'query ($a: ID, $f: Int) { userPage(first: $f, after: $a) { nodes { id } nextCursor } }',
      variables: { a: after, f: first },
    }),
  ),
  fc.tuple(goodId, intValue).map(([id, first]) =>
    post('ids: posts(first)', {
      query: `query ($f: Int) { user(id: "${id}") { posts(first: $f) { id } } }`,
      variables: { f: first },
    }),
  ),
);

const tenThousandIds = fc.oneof(fc.constant('1'), badIdText, goodId).map((sample) =>
  post('10 000 ids', {
    query: 'query ($ids: [ID!]!) { users(ids: $ids) { id } }',
    variables: {
      ids: Array.from({ length: 10_000 }, (_, i) => (i % 97 === 0 ? sample : String((i % USERS) + 1))),
    },
  }),
);

const deepQuery = fc
  .tuple(fc.integer({ min: 1, max: 60 }), fc.integer({ min: 1, max: 50 }))
  .map(([depth, first]) => {
    const levels: string[] = ['user(id: "1")'];
    while (levels.length < depth) levels.push(levels.length % 2 === 1 ? `posts(first: ${first})` : 'author');
    return post('deep query', { query: `{ ${levels.join(' { ')} { id ${'} '.repeat(levels.length)}}` });
  });

const manyAliases = fc.integer({ min: 1, max: 1000 }).map((n) =>
  post('aliases', {
    query: `{ ${Array.from({ length: n }, (_, i) => `a${i}: user(id: "${(i % USERS) + 1}") { id }`).join(' ')} }`,
  }),
);

const smallOperation: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant({ query: '{ user(id: "1") { id } }' }),
  idValue.map((id) => ({ query: 'query ($id: ID!) { user(id: $id) { id } }', variables: { id } })),
  fc.jsonValue(),
  fc.constant({ query: 'mutation { createPost(input: { title: "t", body: "b" }) { id } }' }),
);
const batch = fc
  .tuple(fc.array(smallOperation, { minLength: 0, maxLength: 14 }), tokenHeader)
  .map(([operations, headers]) => post('batch', operations, headers));

const hugeBody = fc
  .tuple(
    fc.integer({ min: 200 * 1024, max: 4 * 1024 * 1024 }),
    fc.boolean(),
    fc.constantFrom('x', '\u0000', '\ud800', 'é'),
  )
  .map(([size, declared, fill]): FuzzRequest => {
    const body = JSON.stringify({
      query: '{ me { id } }',
      variables: { padding: fill.repeat(Math.ceil(size / 6)) },
    }).slice(0, size);
    return {
      kind: 'multi-megabyte body',
      method: 'POST',
      path: '/graphql',
      headers: {
        'content-type': 'application/json',
        ...(declared ? { 'content-length': String(Buffer.byteLength(body)) } : {}),
      },
      body,
    };
  });

const VALID_DOCUMENTS = [
  '{ user(id: "1") { id name profile { bio } } }',
  'query Q($id: ID!) { user(id: $id) { id posts(first: 2) { title } } }',
  '{ userPage(first: 3) { nodes { id } nextCursor } }',
  'mutation { updateProfile(input: { bio: "hi" }) { version } }',
];
const unicodeInDocument = fc
  .tuple(
    fc.constantFrom(...VALID_DOCUMENTS),
    fc.array(fc.tuple(fc.nat(), oddChar), { minLength: 1, maxLength: 6 }),
    tokenHeader,
  )
  .map(([doc, inserts, headers]) => {
    let query = doc;
    for (const [at, char] of inserts) {
      const i = at % (query.length + 1);
      query = query.slice(0, i) + char + query.slice(i);
    }
    return post('odd unicode in the document', { query, variables: { id: '1' } }, headers);
  });

const stringish: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: oddString },
  { weight: 2, arbitrary: printable },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 25_000 }).map((n) => 'é'.repeat(n)) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      null,
      1,
      true,
      [],
      {},
      'https://example.com/a.png',
      'javascript:alert(1)',
      'http://a b',
      '',
    ),
  },
);
const mutation = fc.oneof(
  fc
    .tuple(
      fc.record(
        {
          displayName: stringish,
          bio: stringish,
          location: stringish,
          avatarUrl: stringish,
          expectedVersion: intValue,
        },
        { requiredKeys: [] },
      ),
      tokenHeader,
    )
    .map(([input, headers]) =>
      post(
        'mutation: updateProfile input',
        {
          query:
            'mutation ($i: UpdateProfileInput!) { updateProfile(input: $i) { version bio displayName location avatarUrl } }',
          variables: { i: input },
        },
        headers,
      ),
    ),
  fc
    .tuple(fc.record({ title: stringish, body: stringish }, { requiredKeys: [] }), tokenHeader)
    .map(([input, headers]) =>
      post(
        'mutation: createPost input',
        {
          query: 'mutation ($i: CreatePostInput!) { createPost(input: $i) { id title author { id } } }',
          variables: { i: input },
        },
        headers,
      ),
    ),
  fc
    .tuple(oddString, tokenHeader)
    .map(([bio, headers]) =>
      post(
        'mutation: literal input',
        { query: `mutation { updateProfile(input: { bio: ${JSON.stringify(bio)} }) { bio } }` },
        headers,
      ),
    ),
);

const oddTransport = fc.oneof(
  fc
    .tuple(fc.constantFrom('PUT', 'DELETE', 'PATCH', 'OPTIONS'), printable)
    .map(([method, body]): FuzzRequest => ({
      kind: 'odd method or content type',
      method,
      path: '/graphql',
      headers: { 'content-type': 'application/json' },
      ...(method === 'OPTIONS' ? {} : { body }),
    })),
  fc
    .tuple(
      fc.constantFrom(
        'text/plain',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
        'application/graphql',
        'application/json; charset=latin1',
        '',
      ),
      printable,
    )
    .map(([type, body]): FuzzRequest => ({
      kind: 'odd method or content type',
      method: 'POST',
      path: '/graphql',
      headers: type ? { 'content-type': type } : {},
      body,
    })),
  fc
    .tuple(
      fc.constantFrom(
        '{ user(id: "1") { id } }',
        'mutation { createPost(input: { title: "t", body: "b" }) { id } }',
        '%00',
        '%ED%A0%80',
        '%FF',
        '{',
      ),
      printable,
    )
    .map(([query, variables]): FuzzRequest => ({
      kind: 'GET',
      method: 'GET',
      path: `/graphql?query=${/^%/.test(query) ? query : encodeURIComponent(query)}&variables=${encodeURIComponent(variables)}`,
      headers: { accept: 'application/graphql-response+json, application/json' },
    })),
);

const multipartPart = (name: string, value: string, filename?: string) =>
  `--x\r\nContent-Disposition: form-data; name="${name}"${filename ? `; filename="${filename}"` : ''}\r\n\r\n${value}\r\n`;
const formBodies = fc.oneof(
  fc
    .tuple(
      fc.constantFrom('{ user(id: "1") { id } }', '{', ''),
      fc.oneof(printable, fc.constantFrom('{"id":"1"}', '[', 'null')),
    )
    .map(([query, variables]): FuzzRequest => ({
      kind: 'form and multipart bodies',
      method: 'POST',
      path: '/graphql',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `query=${encodeURIComponent(query)}&variables=${encodeURIComponent(variables)}`,
    })),
  fc
    .tuple(
      fc.oneof(
        fc.constant('{"query":"query ($x: ID) { user(id: $x) { id } }","variables":{"x":null}}'),
        printable,
      ),
      fc.option(
        fc.oneof(
          fc.constantFrom(
            '{"0": 5}',
            '{"0": ["variables.x"]}',
            '{"0": [1]}',
            '{"0": ["__proto__.x"]}',
            '[]',
            '{"1": ["a.b.c.d"]}',
          ),
          printable,
        ),
      ),
      fc.boolean(),
    )
    .map(([operations, map, file]): FuzzRequest => ({
      kind: 'form and multipart bodies',
      method: 'POST',
      path: '/graphql',
      headers: { 'content-type': 'multipart/form-data; boundary=x' },
      body: `${multipartPart('operations', operations)}${map === null ? '' : multipartPart('map', map)}${file ? multipartPart('0', 'file contents', 'a.txt') : ''}--x--\r\n`,
    })),
);

const anyRequest: fc.Arbitrary<FuzzRequest> = fc.oneof(
  { weight: 3, arbitrary: malformedJson },
  { weight: 3, arbitrary: wrongTypes },
  { weight: 8, arbitrary: idQueries },
  { weight: 1, arbitrary: tenThousandIds },
  { weight: 2, arbitrary: deepQuery },
  { weight: 2, arbitrary: manyAliases },
  { weight: 3, arbitrary: batch },
  { weight: 1, arbitrary: hugeBody },
  { weight: 3, arbitrary: unicodeInDocument },
  { weight: 5, arbitrary: mutation },
  { weight: 2, arbitrary: oddTransport },
  { weight: 1, arbitrary: formBodies },
);

// The property

interface Answer {
  status: number;
  text: string;
}

async function send(request: FuzzRequest): Promise<Answer> {
  const response = await t.fetch(request.path, {
    method: request.method,
    headers: request.headers,
    ...(request.body !== undefined ? { body: request.body } : {}),
  });
  return { status: response.status, text: await response.text() };
}

/** Why `answer` breaks the contract, or undefined if it keeps it. */
function violation(request: FuzzRequest, answer: Answer): string | undefined {
  if (answer.status >= 500) return `status ${answer.status}`;
  // A CORS preflight is answered, not refused.
  if (request.method === 'OPTIONS' && answer.status === 204) return undefined;
  if (answer.status !== 200 && (answer.status < 400 || answer.status > 499)) return `status ${answer.status}`;
  let body: unknown;
  try {
    body = answer.text === '' ? undefined : JSON.parse(answer.text);
  } catch {
    return answer.status === 200 ? 'a 200 whose body is not JSON' : undefined;
  }
  if (answer.status === 200 && body === undefined) return 'an empty 200';
  for (const result of Array.isArray(body) ? body : [body]) {
    const errors = (result as { errors?: { extensions?: { code?: unknown } }[] } | undefined)?.errors;
    if (
      answer.status === 200 &&
      errors === undefined &&
      (result as { data?: unknown } | undefined)?.data === undefined
    ) {
      return 'a 200 result with neither data nor errors';
    }
    for (const error of errors ?? []) {
      const code = error.extensions?.code;
      if (typeof code !== 'string') return 'an error without extensions.code';
      if (code === 'INTERNAL_SERVER_ERROR') return 'a masked internal error';
    }
  }
  return undefined;
}

describe('fuzzing /graphql', () => {
  it(`answers ${RUNS} generated hostile requests with a 4xx or coded errors, never a 5xx`, async () => {
    await fc.assert(
      fc.asyncProperty(anyRequest, async (request) => {
        counts.set(request.kind, (counts.get(request.kind) ?? 0) + 1);
        const answer = await send(request);
        const problem = violation(request, answer);
        if (problem !== undefined) {
          throw new Error(
            `${problem}: ${request.kind} ${request.method} ${request.path.slice(0, 200)} ${request.body?.slice(0, 300) ?? ''}\n→ ${answer.status} ${answer.text.slice(0, 300)}`,
          );
        }
      }),
      { numRuns: RUNS },
    );
    const total = [...counts.values()].reduce((a, b) => a + b, 0);
    console.info(
      `fuzz: ${total} requests — ${[...counts.entries()]
        .sort((a, b) => b[1] - a[1])
        .map(([k, n]) => `${k} ${n}`)
        .join(', ')}`,
    );
    expect(total).toBeGreaterThanOrEqual(2000);
    // Every kind was exercised, the rarest included.
    expect(counts.size).toBe(20);
  }, 120_000);

  it('still answers normally afterwards', async () => {
    const health = await t.fetch('/health');
    expect(health.status).toBe(200);
    const res = await t.gql<{ user: { id: string } }>('{ user(id: "2") { id } }');
    expect(res.body).toEqual({ data: { user: { id: '2' } } });
  });

  it('left no key derived from an invalid id in Redis', async () => {
    // The write stamp and the answer generation name no id: the namespace's keys that are no entity's.
    const keys = (await scanKeys(`${t.prefix}:`))
      .map((k) => k.key)
      .filter((k) => k !== `${t.prefix}:v1:write-stamp` && k !== `${t.prefix}:v1:answer-generation`);
    expect(keys.length).toBeGreaterThan(0);
    const shape = new RegExp(
      `^${t.prefix}:v1:(user|profile|post):\\{([1-9]\\d{0,9})\\}(:posts|:lock|:filled)?$`,
    );
    // The user directory and its pages, keyed by a validated cursor (0: the first page) and size.
    const page = new RegExp(
      `^${t.prefix}:v1:userDirectory:\\{1\\}(:lock|:filled|:page:(0|[1-9]\\d{0,9}):([1-9]\\d{0,9}))?$`,
    );
    const bad = keys.filter((key) => {
      const pageMatch = page.exec(key);
      if (pageMatch !== null) return Number(pageMatch[2] ?? 0) > MAX_ID || Number(pageMatch[3] ?? 0) > MAX_ID;
      const match = shape.exec(key);
      return match === null || Number(match[2]) > MAX_ID;
    });
    expect(bad).toEqual([]);
  });
});
