/**
 * The read side of the GraphQL contract (docs/contract.md, "Schema rules"), checked against what PostgreSQL holds: every
 * query, the id rules, pagination, post ordering, field visibility and the DateTime format.
 *
 * Seed: users 1..60, each with a profile and 5 posts; user i's posts are ids 5(i-1)+1 .. 5i, each
 * newer than the one before (src/db/seed.ts).
 */
import { asc, desc, eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { posts, profiles, users, type PostRow, type ProfileRow, type UserRow } from '../../src/db/schema.js';
import { createTestApp, type GraphQLResponse, type TestApp } from '../support/app.js';

const USERS = 60;
const POSTS_PER_USER = 5;

/** RFC 3339, UTC, milliseconds (docs/contract.md, "Schema rules"). */
const DATE_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/** Every id form the id rule refuses (docs/contract.md, "Ids"), with a word on why. */
const BAD_IDS: readonly [string, string][] = [
  ['007', 'leading zeros'],
  ['0', 'zero'],
  ['-1', 'negative'],
  ['1.5', 'fractional'],
  ['abc', 'not a number'],
  ['2147483648', 'above 2147483647'],
  ['', 'empty'],
  [' 1', 'leading space'],
  ['1 ', 'trailing space'],
  ['+1', 'plus sign'],
  ['1e3', 'exponent'],
  ['0x10', 'hexadecimal'],
  ['99999999999', 'eleven digits'],
];

let t: TestApp;

beforeAll(async () => {
  t = await createTestApp({ label: 'api_queries', seed: { users: USERS, postsPerUser: POSTS_PER_USER } });
});

afterAll(async () => {
  await t?.close();
});

// Helpers

async function userRow(id: number): Promise<UserRow> {
  const [row] = await t.testDb.database.db.select().from(users).where(eq(users.id, id));
  if (row === undefined) throw new Error(`seed has no user ${id}`);
  return row;
}

async function profileRow(userId: number): Promise<ProfileRow> {
  const [row] = await t.testDb.database.db.select().from(profiles).where(eq(profiles.userId, userId));
  if (row === undefined) throw new Error(`seed has no profile ${userId}`);
  return row;
}

async function postRow(id: number): Promise<PostRow> {
  const [row] = await t.testDb.database.db.select().from(posts).where(eq(posts.id, id));
  if (row === undefined) throw new Error(`seed has no post ${id}`);
  return row;
}

/** The author's post ids as the contract orders them: created_at desc, id desc. */
async function newestPostIds(authorId: number): Promise<number[]> {
  const rows = await t.testDb.database.db
    .select({ id: posts.id })
    .from(posts)
    .where(eq(posts.authorId, authorId))
    .orderBy(desc(posts.createdAt), desc(posts.id));
  return rows.map((r) => r.id);
}

/** Asserts one error with `code` and HTTP 200 (a field error), and returns it. */
function expectFieldError(response: GraphQLResponse, code: string) {
  expect(response.status).toBe(200);
  expect(response.body.errors, JSON.stringify(response.body)).toHaveLength(1);
  const error = response.body.errors![0]!;
  expect(error.extensions?.code).toBe(code);
  return error;
}

const ids = (list: readonly number[]) => list.map(String);

// Tests

describe('user(id)', () => {
  it('returns a known user with the fields PostgreSQL holds', async () => {
    const row = await userRow(7);
    const res = await t.gql<{ user: { id: string; name: string; email: string | null; createdAt: string } }>(
      'query ($id: ID!) { user(id: $id) { id name email createdAt } }',
      { variables: { id: '7' } },
    );
    expect(res.status).toBe(200);
    expect(res.body.errors).toBeUndefined();
    expect(res.body.data).toEqual({
      user: { id: '7', name: row.name, email: null, createdAt: row.createdAt.toISOString() },
    });
  });

  it('accepts an integer literal for an ID argument', async () => {
    const res = await t.gql<{ user: { id: string } }>('{ user(id: 12) { id } }');
    expect(res.body).toEqual({ data: { user: { id: '12' } } });
  });

  it('returns null for an unknown id, again when the negative entry answers', async () => {
    for (const id of ['61', '2147483647', '61']) {
      const res = await t.gql('query ($id: ID!) { user(id: $id) { id name } }', { variables: { id } });
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ data: { user: null } });
    }
  });

  it.each(BAD_IDS)('refuses id %j (%s) with BAD_USER_INPUT, HTTP 200 and the value in the message', async (bad) => {
    const res = await t.gql('query ($id: ID!) { user(id: $id) { id } }', { variables: { id: bad } });
    const error = expectFieldError(res, 'BAD_USER_INPUT');
    expect(error.message).toContain(JSON.stringify(bad));
    expect(error.path).toEqual(['user']);
    expect(res.body.data).toEqual({ user: null });
  });

  it('refuses a bad id given as a literal in the document', async () => {
    const res = await t.gql('{ user(id: "007") { id } }');
    const error = expectFieldError(res, 'BAD_USER_INPUT');
    expect(error.message).toContain('"007"');
  });
});

describe('users(ids)', () => {
  it('answers in the order of ids, with null for unknown ids', async () => {
    const res = await t.gql<{ users: ({ id: string; name: string } | null)[] }>(
      'query ($ids: [ID!]!) { users(ids: $ids) { id name } }',
      { variables: { ids: ['42', '999', '3', '61', '1', '2147483647', '60'] } },
    );
    expect(res.status).toBe(200);
    expect(res.body.errors).toBeUndefined();
    const expected = await Promise.all(
      [42, null, 3, null, 1, null, 60].map(async (id) => (id === null ? null : { id: String(id), name: (await userRow(id)).name })),
    );
    expect(res.body.data?.users).toEqual(expected);
  });

  it('repeats a user for every duplicate id, in place', async () => {
    const res = await t.gql<{ users: ({ id: string } | null)[] }>('query ($ids: [ID!]!) { users(ids: $ids) { id } }', {
      variables: { ids: ['5', '9', '5', '404', '5', '404'] },
    });
    expect(res.body.errors).toBeUndefined();
    expect(res.body.data?.users).toEqual([{ id: '5' }, { id: '9' }, { id: '5' }, null, { id: '5' }, null]);
  });

  it('accepts a single id and exactly 100 ids', async () => {
    const one = await t.gql<{ users: { id: string }[] }>('{ users(ids: ["17"]) { id } }');
    expect(one.body).toEqual({ data: { users: [{ id: '17' }] } });

    const hundred = Array.from({ length: 100 }, (_, i) => String(i + 1));
    const res = await t.gql<{ users: ({ id: string } | null)[] }>('query ($ids: [ID!]!) { users(ids: $ids) { id } }', {
      variables: { ids: hundred },
    });
    expect(res.body.errors).toBeUndefined();
    const got = res.body.data!.users;
    expect(got).toHaveLength(100);
    expect(got.slice(0, USERS)).toEqual(hundred.slice(0, USERS).map((id) => ({ id })));
    expect(got.slice(USERS).every((u) => u === null)).toBe(true);
  });

  it.each([
    ['0 ids', 0],
    ['101 ids', 101],
  ])('refuses %s with BAD_USER_INPUT', async (_, count) => {
    const res = await t.gql('query ($ids: [ID!]!) { users(ids: $ids) { id } }', {
      variables: { ids: Array.from({ length: count }, (_, i) => String((i % USERS) + 1)) },
    });
    const error = expectFieldError(res, 'BAD_USER_INPUT');
    expect(error.message).toContain(String(count));
    expect(res.body.data).toBeNull();
  });

  it.each(BAD_IDS)('fails the whole field when one element is %j (%s)', async (bad) => {
    const res = await t.gql('query ($ids: [ID!]!) { users(ids: $ids) { id } }', {
      variables: { ids: ['1', '2', bad, '4'] },
    });
    const error = expectFieldError(res, 'BAD_USER_INPUT');
    expect(error.message).toContain(JSON.stringify(bad));
    expect(error.path).toEqual(['users']);
    // users is non-null, so the failed field nulls the whole data: no partial list leaks out.
    expect(res.body.data).toBeNull();
  });
});

describe('userPage(first, after)', () => {
  type Page = { userPage: { nodes: { id: string; name: string }[]; nextCursor: string | null } };
  const PAGE = 'query ($first: Int, $after: ID) { userPage(first: $first, after: $after) { nodes { id name } nextCursor } }';
  const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => String(from + i));

  it('defaults to the first 20 users in id order, with the last id as the cursor', async () => {
    const res = await t.gql<Page>('{ userPage { nodes { id name } nextCursor } }');
    expect(res.body.errors).toBeUndefined();
    const page = res.body.data!.userPage;
    expect(page.nodes.map((n) => n.id)).toEqual(range(1, 20));
    expect(page.nextCursor).toBe('20');
    expect(page.nodes[4]!.name).toBe((await userRow(5)).name);
  });

  it('treats after as exclusive and walks every user exactly once', async () => {
    const seen: string[] = [];
    let after: string | null = null;
    for (let pages = 0; pages < 10; pages += 1) {
      const res: GraphQLResponse<Page> = await t.gql<Page>(PAGE, { variables: { first: 25, after } });
      expect(res.body.errors).toBeUndefined();
      const page = res.body.data!.userPage;
      seen.push(...page.nodes.map((n) => n.id));
      if (page.nextCursor === null) break;
      expect(page.nextCursor).toBe(page.nodes.at(-1)!.id);
      after = page.nextCursor;
    }
    expect(seen).toEqual(range(1, USERS));
  });

  it('starts right after the cursor', async () => {
    const res = await t.gql<Page>(PAGE, { variables: { first: 3, after: '20' } });
    expect(res.body.data!.userPage).toEqual({
      nodes: await Promise.all([21, 22, 23].map(async (id) => ({ id: String(id), name: (await userRow(id)).name }))),
      nextCursor: '23',
    });
  });

  it('answers nextCursor null when the page ends exactly at the last user', async () => {
    const res = await t.gql<Page>(PAGE, { variables: { first: 20, after: '40' } });
    const page = res.body.data!.userPage;
    expect(page.nodes.map((n) => n.id)).toEqual(range(41, 60));
    expect(page.nextCursor).toBeNull();
  });

  it('answers a short last page with nextCursor null', async () => {
    const res = await t.gql<Page>(PAGE, { variables: { first: 20, after: '55' } });
    expect(res.body.data!.userPage.nodes.map((n) => n.id)).toEqual(range(56, 60));
    expect(res.body.data!.userPage.nextCursor).toBeNull();
  });

  it('answers an empty page for a cursor past every user (the cursor need not exist)', async () => {
    for (const after of ['60', '61', '2147483647']) {
      const res = await t.gql<Page>(PAGE, { variables: { first: 5, after } });
      expect(res.body).toEqual({ data: { userPage: { nodes: [], nextCursor: null } } });
    }
  });

  it('accepts first: 1 and first: 100', async () => {
    const one = await t.gql<Page>(PAGE, { variables: { first: 1 } });
    expect(one.body.data!.userPage).toEqual({ nodes: [{ id: '1', name: (await userRow(1)).name }], nextCursor: '1' });
    const hundred = await t.gql<Page>(PAGE, { variables: { first: 100 } });
    expect(hundred.body.data!.userPage.nodes.map((n) => n.id)).toEqual(range(1, USERS));
    expect(hundred.body.data!.userPage.nextCursor).toBeNull();
  });

  it.each([0, 101, -1])('refuses first: %d with BAD_USER_INPUT', async (first) => {
    const res = await t.gql(PAGE, { variables: { first } });
    const error = expectFieldError(res, 'BAD_USER_INPUT');
    expect(error.message).toContain(String(first));
    expect(res.body.data).toBeNull();
  });

  it('refuses an explicit first: null (null is not in 1..100) with BAD_USER_INPUT', async () => {
    const res = await t.gql(PAGE, { variables: { first: null } });
    expectFieldError(res, 'BAD_USER_INPUT');
  });

  it('treats an explicit after: null as the start', async () => {
    const res = await t.gql<Page>(PAGE, { variables: { first: 2, after: null } });
    expect(res.body.data!.userPage.nodes.map((n) => n.id)).toEqual(['1', '2']);
  });

  it.each(BAD_IDS)('refuses after: %j (%s) with BAD_USER_INPUT', async (bad) => {
    const res = await t.gql(PAGE, { variables: { first: 5, after: bad } });
    const error = expectFieldError(res, 'BAD_USER_INPUT');
    expect(error.message).toContain(JSON.stringify(bad));
  });
});

describe('me', () => {
  it('is null for an anonymous request', async () => {
    const res = await t.gql('{ me { id name } }');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ data: { me: null } });
  });

  it('is the caller for a valid token, email included', async () => {
    const row = await userRow(23);
    const res = await t.gql('{ me { id name email } }', { token: await t.token(23) });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ data: { me: { id: '23', name: row.name, email: row.email } } });
  });
});

describe('post(id)', () => {
  it('returns a known post with its author', async () => {
    const row = await postRow(33); // user 7's third post
    expect(row.authorId).toBe(7);
    const res = await t.gql('query ($id: ID!) { post(id: $id) { id title body createdAt author { id name } } }', {
      variables: { id: '33' },
    });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      data: {
        post: {
          id: '33',
          title: row.title,
          body: row.body,
          createdAt: row.createdAt.toISOString(),
          author: { id: '7', name: (await userRow(7)).name },
        },
      },
    });
  });

  it('returns null for an unknown post', async () => {
    for (const id of [String(USERS * POSTS_PER_USER + 1), '2147483647']) {
      const res = await t.gql('query ($id: ID!) { post(id: $id) { id } }', { variables: { id } });
      expect(res.body).toEqual({ data: { post: null } });
    }
  });

  it.each(BAD_IDS)('refuses id %j (%s) with BAD_USER_INPUT', async (bad) => {
    const res = await t.gql('query ($id: ID!) { post(id: $id) { id } }', { variables: { id: bad } });
    const error = expectFieldError(res, 'BAD_USER_INPUT');
    expect(error.message).toContain(JSON.stringify(bad));
    expect(res.body.data).toEqual({ post: null });
  });
});

describe('User.posts(first)', () => {
  type Posts = { user: { posts: { id: string; createdAt: string; author: { id: string } }[] } };
  const POSTS = 'query ($id: ID!, $first: Int) { user(id: $id) { posts(first: $first) { id createdAt author { id } } } }';

  it('lists the newest posts first (created_at desc, id desc), all 5 when fewer than the default 10', async () => {
    const res = await t.gql<Posts>('{ user(id: "11") { posts { id createdAt } } }');
    expect(res.body.errors).toBeUndefined();
    const list = res.body.data!.user.posts;
    const expected = await newestPostIds(11);
    expect(expected).toEqual([55, 54, 53, 52, 51]);
    expect(list.map((p) => p.id)).toEqual(ids(expected));
    const times = list.map((p) => Date.parse(p.createdAt));
    expect([...times].sort((a, b) => b - a)).toEqual(times);
  });

  it('returns exactly first posts, for 1..50', async () => {
    for (const first of [1, 2, 4, 5, 50]) {
      const res = await t.gql<Posts>(POSTS, { variables: { id: '12', first } });
      expect(res.body.errors).toBeUndefined();
      expect(res.body.data!.user.posts.map((p) => p.id)).toEqual(ids((await newestPostIds(12)).slice(0, first)));
    }
  });

  it('names the user as author of each of its posts', async () => {
    const res = await t.gql<Posts>(POSTS, { variables: { id: '13', first: 5 } });
    expect(res.body.data!.user.posts.map((p) => p.author.id)).toEqual(['13', '13', '13', '13', '13']);
  });

  it('refuses an explicit first: null with BAD_USER_INPUT on the posts field', async () => {
    const res = await t.gql(POSTS, { variables: { id: '14', first: null } });
    expect(expectFieldError(res, 'BAD_USER_INPUT').path).toEqual(['user', 'posts']);
  });

  it.each([0, 51, -3])('refuses first: %d with BAD_USER_INPUT on the posts field', async (first) => {
    const res = await t.gql(POSTS, { variables: { id: '14', first } });
    const error = expectFieldError(res, 'BAD_USER_INPUT');
    expect(error.message).toContain(String(first));
    expect(error.path).toEqual(['user', 'posts']);
    // posts is non-null, so the error nulls the (nullable) user.
    expect(res.body.data).toEqual({ user: null });
  });
});

describe('Post.author and Profile', () => {
  it('resolves each post author to its user', async () => {
    const res = await t.gql<{ users: { posts: { id: string; author: { id: string; name: string } }[] }[] }>(
      '{ users(ids: ["20", "21"]) { posts(first: 2) { id author { id name } } } }',
    );
    expect(res.body.errors).toBeUndefined();
    const [a, b] = res.body.data!.users;
    const name20 = (await userRow(20)).name;
    const name21 = (await userRow(21)).name;
    expect(a!.posts).toEqual([
      { id: '100', author: { id: '20', name: name20 } },
      { id: '99', author: { id: '20', name: name20 } },
    ]);
    expect(b!.posts).toEqual([
      { id: '105', author: { id: '21', name: name21 } },
      { id: '104', author: { id: '21', name: name21 } },
    ]);
  });

  it('returns every profile field as PostgreSQL holds it', async () => {
    const query = '{ users(ids: [%IDS%]) { id profile { userId displayName bio location avatarUrl version updatedAt } } }';
    const list = Array.from({ length: 20 }, (_, i) => i + 30);
    const res = await t.gql<{ users: { id: string; profile: Record<string, unknown> }[] }>(
      query.replace('%IDS%', list.map((id) => `"${id}"`).join(', ')),
    );
    expect(res.body.errors).toBeUndefined();
    for (const [i, id] of list.entries()) {
      const row = await profileRow(id);
      expect(res.body.data!.users[i]).toEqual({
        id: String(id),
        profile: {
          userId: String(id),
          displayName: row.displayName,
          bio: row.bio,
          location: row.location,
          avatarUrl: row.avatarUrl,
          version: row.version,
          updatedAt: row.updatedAt.toISOString(),
        },
      });
    }
    // The seed has users without a location or avatar: null must come through as null.
    const rows = await t.testDb.database.db.select().from(profiles).orderBy(asc(profiles.userId));
    expect(rows.some((r) => r.location === null) && rows.some((r) => r.avatarUrl === null)).toBe(true);
  });
});

describe('DateTime', () => {
  it('is RFC 3339 in UTC with milliseconds on every DateTime field', async () => {
    const res = await t.gql<{
      userPage: { nodes: { createdAt: string; profile: { updatedAt: string }; posts: { createdAt: string }[] }[] };
    }>('{ userPage(first: 30) { nodes { createdAt profile { updatedAt } posts(first: 5) { createdAt } } } }');
    expect(res.body.errors).toBeUndefined();
    const values = res.body.data!.userPage.nodes.flatMap((n) => [
      n.createdAt,
      n.profile.updatedAt,
      ...n.posts.map((p) => p.createdAt),
    ]);
    expect(values).toHaveLength(30 * 7);
    for (const value of values) {
      expect(value).toMatch(DATE_TIME);
      expect(new Date(value).toISOString()).toBe(value);
    }
  });
});

describe('User.email', () => {
  const EMAIL = 'query ($ids: [ID!]!) { users(ids: $ids) { id email } }';

  it('is null for an anonymous caller', async () => {
    const res = await t.gql<{ users: { id: string; email: string | null }[] }>(EMAIL, { variables: { ids: ['8', '9'] } });
    expect(res.body.data?.users).toEqual([
      { id: '8', email: null },
      { id: '9', email: null },
    ]);
  });

  it('is shown to the user themself and to no one else', async () => {
    const res = await t.gql<{ users: { id: string; email: string | null }[] }>(EMAIL, {
      variables: { ids: ['8', '9', '10'] },
      token: await t.token(9),
    });
    expect(res.body.errors).toBeUndefined();
    expect(res.body.data?.users).toEqual([
      { id: '8', email: null },
      { id: '9', email: (await userRow(9)).email },
      { id: '10', email: null },
    ]);
  });

  it('stays private when the user is reached through a post author or a page', async () => {
    const token = await t.token(15);
    const res = await t.gql<{
      post: { author: { id: string; email: string | null } };
      userPage: { nodes: { id: string; email: string | null }[] };
    }>('{ post(id: "80") { author { id email } } userPage(first: 16) { nodes { id email } } }', { token });
    expect(res.body.errors).toBeUndefined();
    // Post 80 is user 16's: not the caller.
    expect(res.body.data!.post.author).toEqual({ id: '16', email: null });
    const emails = res.body.data!.userPage.nodes.filter((n) => n.email !== null);
    expect(emails).toEqual([{ id: '15', email: (await userRow(15)).email }]);
  });

  it('does not leak from a cached copy: the owner reads first, then a stranger', async () => {
    const owner = await t.gql('{ user(id: "19") { email } }', { token: await t.token(19) });
    expect(owner.body).toEqual({ data: { user: { email: (await userRow(19)).email } } });
    const stranger = await t.gql('{ user(id: "19") { email } }', { token: await t.token(18) });
    expect(stranger.body).toEqual({ data: { user: { email: null } } });
    const anonymous = await t.gql('{ user(id: "19") { email } }');
    expect(anonymous.body).toEqual({ data: { user: { email: null } } });
  });
});

describe('on rows edited behind the API', () => {
  // Its own database, edited before its first query: users 4 and 5 deleted, user 1's posts given a
  // tie in created_at, user 2 a whole-second created_at. Doing this to the shared one would change
  // every other answer.
  let edited: TestApp;
  type Page = { userPage: { nodes: { id: string }[]; nextCursor: string | null } };
  type Posts = { user: { posts: { id: string }[] } };

  beforeAll(async () => {
    edited = await createTestApp({ label: 'api_queries_edit', seed: { users: 10, postsPerUser: 12 }, store: 'memory' });
    const { db } = edited.testDb.database;
    await db.delete(users).where(sql`${users.id} in (4, 5)`);
    // Posts 1..12 are user 1's. 1, 2 and 4 share an instant; 3 is a millisecond later.
    await db.execute(sql`update posts set created_at = '2030-01-01T00:00:00.000Z' where id in (1, 2, 4)`);
    await db.execute(sql`update posts set created_at = '2030-01-01T00:00:00.001Z' where id = 3`);
    await db.execute(sql`update users set created_at = '2031-05-06T07:08:09+02:00' where id = 2`);
  });

  afterAll(async () => {
    await edited?.close();
  });

  it('continues after a cursor naming a deleted user', async () => {
    const res = await edited.gql<Page>('{ userPage(first: 3, after: "4") { nodes { id } nextCursor } }');
    expect(res.body).toEqual({ data: { userPage: { nodes: [{ id: '6' }, { id: '7' }, { id: '8' }], nextCursor: '8' } } });
  });

  it('skips the gap inside a page', async () => {
    const res = await edited.gql<Page>('{ userPage(first: 4) { nodes { id } nextCursor } }');
    expect(res.body).toEqual({
      data: { userPage: { nodes: [{ id: '1' }, { id: '2' }, { id: '3' }, { id: '6' }], nextCursor: '6' } },
    });
    const rest = await edited.gql<Page>('{ userPage(first: 4, after: "6") { nodes { id } nextCursor } }');
    expect(rest.body).toEqual({
      data: { userPage: { nodes: [{ id: '7' }, { id: '8' }, { id: '9' }, { id: '10' }], nextCursor: null } },
    });
  });

  it('answers null for a deleted user and for a post of a deleted user', async () => {
    const res = await edited.gql('{ user(id: "4") { id } post(id: "40") { id } }');
    expect(res.body).toEqual({ data: { user: null, post: null } });
  });

  it('lists 10 posts by default, newest first, equal created_at ordered by id desc', async () => {
    const res = await edited.gql<Posts>('{ user(id: "1") { posts { id } } }');
    expect(res.body.errors).toBeUndefined();
    expect(res.body.data!.user.posts.map((p) => p.id)).toEqual(['3', '4', '2', '1', '12', '11', '10', '9', '8', '7']);
    const all = await edited.gql<Posts>('{ user(id: "1") { posts(first: 50) { id } } }');
    expect(all.body.data!.user.posts.map((p) => p.id)).toEqual(
      ['3', '4', '2', '1', '12', '11', '10', '9', '8', '7', '6', '5'],
    );
  });

  it('keeps whole-second timestamps at millisecond precision (.000) in UTC', async () => {
    const res = await edited.gql('{ user(id: "2") { createdAt } }');
    expect(res.body).toEqual({ data: { user: { createdAt: '2031-05-06T05:08:09.000Z' } } });
  });
});
