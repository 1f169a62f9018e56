/**
 * The write side of the GraphQL contract (docs/contract.md, "Schema rules"): updateProfile's partial updates, validation,
 * versions and optimistic concurrency; createPost; and that a refused mutation changes nothing —
 * not the row, not the outbox — as PostgreSQL itself shows.
 *
 * Seed: users 1..60, each with a version-1 profile and 5 posts. Each test works on its own users.
 */
import { and, count, desc, eq, max } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { outbox, posts, profiles, type ProfileRow } from '../../src/db/schema.js';
import { createTestApp, type GraphQLResponse, type TestApp } from '../support/app.js';

const USERS = 60;
const POSTS_PER_USER = 5;
const DATE_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

const UPDATE = `mutation ($input: UpdateProfileInput!) {
  updateProfile(input: $input) { userId displayName bio location avatarUrl version updatedAt }
}`;
const CREATE = `mutation ($input: CreatePostInput!) {
  createPost(input: $input) { id title body createdAt author { id } }
}`;

interface ProfileOut {
  userId: string;
  displayName: string;
  bio: string;
  location: string | null;
  avatarUrl: string | null;
  version: number;
  updatedAt: string;
}
interface PostOut {
  id: string;
  title: string;
  body: string;
  createdAt: string;
  author: { id: string };
}

let t: TestApp;

beforeAll(async () => {
  t = await createTestApp({ label: 'api_mutations', seed: { users: USERS, postsPerUser: POSTS_PER_USER } });
});

afterAll(async () => {
  await t?.close();
});

// Helpers

const db = () => t.testDb.database.db;

async function profileRow(userId: number): Promise<ProfileRow> {
  const [row] = await db().select().from(profiles).where(eq(profiles.userId, userId));
  if (row === undefined) throw new Error(`no profile for user ${userId}`);
  return row;
}

/** The profile as the API shows it, built from a row. */
function asApi(row: ProfileRow): ProfileOut {
  return {
    userId: String(row.userId),
    displayName: row.displayName,
    bio: row.bio,
    location: row.location,
    avatarUrl: row.avatarUrl,
    version: row.version,
    updatedAt: row.updatedAt.toISOString(),
  };
}

/** What a refused mutation must leave alone: the caller's profile, their posts, the whole outbox. */
async function snapshot(userId: number) {
  const [box] = await db().select({ n: count(), last: max(outbox.id) }).from(outbox);
  const [postCount] = await db().select({ n: count() }).from(posts).where(eq(posts.authorId, userId));
  return { profile: await profileRow(userId), outbox: box, posts: postCount };
}

async function updateAs(userId: number, input: Record<string, unknown>): Promise<GraphQLResponse<{ updateProfile: ProfileOut }>> {
  return t.gql<{ updateProfile: ProfileOut }>(UPDATE, { variables: { input }, token: await t.token(userId) });
}

async function createAs(userId: number, input: Record<string, unknown>): Promise<GraphQLResponse<{ createPost: PostOut }>> {
  return t.gql<{ createPost: PostOut }>(CREATE, { variables: { input }, token: await t.token(userId) });
}

function accepted<T>(response: GraphQLResponse<T>): T {
  expect(response.body.errors, JSON.stringify(response.body.errors)).toBeUndefined();
  expect(response.status).toBe(200);
  return response.body.data!;
}

/** Runs a mutation that must be refused with `code`, and proves nothing changed in PostgreSQL. */
async function expectRefused(
  userId: number,
  run: () => Promise<GraphQLResponse>,
  code: string | readonly string[],
): Promise<{ message: string; extensions?: Record<string, unknown> }> {
  const before = await snapshot(userId);
  const response = await run();
  expect(response.status).toBeGreaterThanOrEqual(200);
  expect(response.status).toBeLessThan(500);
  expect(response.body.errors, `accepted: ${JSON.stringify(response.body).slice(0, 300)}`).toHaveLength(1);
  const error = response.body.errors![0]!;
  if (typeof code === 'string') expect(error.extensions?.code).toBe(code);
  else expect(code).toContain(error.extensions?.code);
  expect(response.body.data ?? null).toBeNull();
  expect(await snapshot(userId)).toEqual(before);
  return error;
}

const emoji = (n: number) => '😀'.repeat(n); // one code point, two UTF-16 units each
const url = (length: number) => {
  const base = 'https://example.com/';
  return base + 'a'.repeat(length - base.length);
};

// Tests

describe('updateProfile: accepted updates', () => {
  it('changes only the fields given, adds 1 to version, moves updatedAt and writes one outbox event', async () => {
    const before = await profileRow(1);
    const started = Date.now();
    const { updateProfile } = accepted(await updateAs(1, { bio: 'Writes about partial updates.' }));
    const finished = Date.now();

    const after = await profileRow(1);
    expect(after).toEqual({ ...before, bio: 'Writes about partial updates.', version: before.version + 1, updatedAt: after.updatedAt });
    expect(updateProfile).toEqual(asApi(after));
    expect(updateProfile.updatedAt).toMatch(DATE_TIME);
    expect(after.updatedAt.getTime()).toBeGreaterThan(before.updatedAt.getTime());
    // PostgreSQL's now() of the transaction; both clocks are this machine's, allow a little slack.
    expect(after.updatedAt.getTime()).toBeGreaterThanOrEqual(started - 2000);
    expect(after.updatedAt.getTime()).toBeLessThanOrEqual(finished + 2000);

    const events = await db()
      .select({ version: outbox.version })
      .from(outbox)
      .where(and(eq(outbox.entity, 'profile'), eq(outbox.entityId, 1)));
    expect(events).toEqual([{ version: after.version }]);
  });

  it('changes one field at a time, leaving the others as they were', async () => {
    const userId = 2;
    const steps: Record<string, string | null>[] = [
      { location: 'Oslo' },
      { displayName: 'Only The Name' },
      { avatarUrl: 'http://img.example.org/me.jpg' },
      { bio: '' },
      { location: null },
      { avatarUrl: null },
    ];
    let expected = await profileRow(userId);
    for (const step of steps) {
      const { updateProfile } = accepted(await updateAs(userId, step));
      const row = await profileRow(userId);
      expected = { ...expected, ...step, version: expected.version + 1, updatedAt: row.updatedAt };
      expect(row).toEqual(expected);
      expect(updateProfile).toEqual(asApi(row));
    }
  });

  it('is read back by the next request, anonymous or not (read your writes)', async () => {
    const userId = 3;
    // Warm the cache with the old profile first.
    await t.gql('{ user(id: "3") { profile { displayName version } } }');
    const { updateProfile } = accepted(await updateAs(userId, { displayName: 'Fresh Name', location: 'Lima' }));
    for (const token of [undefined, await t.token(userId), await t.token(4)]) {
      const res = await t.gql<{ user: { profile: ProfileOut } }>(
        '{ user(id: "3") { profile { userId displayName bio location avatarUrl version updatedAt } } }',
        token === undefined ? {} : { token },
      );
      expect(res.body.data?.user.profile).toEqual(updateProfile);
    }
  });

  it('adds exactly 1 to version on every accepted call, even one that changes nothing, and updatedAt never goes back', async () => {
    const userId = 5;
    const first = await profileRow(userId);
    let previous = first;
    const inputs = [
      { displayName: first.displayName }, // the same value: still an accepted call
      { displayName: first.displayName },
      { bio: 'one' },
      { bio: 'one', location: 'Quito' },
      { location: null },
    ];
    for (const [i, input] of inputs.entries()) {
      const { updateProfile } = accepted(await updateAs(userId, input));
      const row = await profileRow(userId);
      expect(row.version).toBe(first.version + i + 1);
      expect(updateProfile.version).toBe(row.version);
      expect(row.updatedAt.getTime()).toBeGreaterThan(first.updatedAt.getTime());
      expect(row.updatedAt.getTime()).toBeGreaterThanOrEqual(previous.updatedAt.getTime());
      previous = row;
    }
    const [{ n }] = (await db()
      .select({ n: count() })
      .from(outbox)
      .where(and(eq(outbox.entity, 'profile'), eq(outbox.entityId, userId)))) as [{ n: number }];
    expect(n).toBe(inputs.length);
  });

  it('updates the caller\'s own profile and no other', async () => {
    const neighbours = await Promise.all([profileRow(6), profileRow(8)]);
    accepted(await updateAs(7, { displayName: 'Seven', bio: 'mine' }));
    expect((await profileRow(7)).displayName).toBe('Seven');
    expect(await Promise.all([profileRow(6), profileRow(8)])).toEqual(neighbours);
  });
});

describe('updateProfile: expectedVersion', () => {
  it('accepts the current version and moves it on', async () => {
    const userId = 10;
    const { version } = await profileRow(userId);
    const { updateProfile } = accepted(await updateAs(userId, { bio: 'checked', expectedVersion: version }));
    expect(updateProfile.version).toBe(version + 1);
    expect((await profileRow(userId)).bio).toBe('checked');
    const again = accepted(await updateAs(userId, { bio: 'checked again', expectedVersion: version + 1 }));
    expect(again.updateProfile.version).toBe(version + 2);
  });

  it('refuses a stale version with CONFLICT and changes nothing', async () => {
    const userId = 11;
    const { version } = await profileRow(userId);
    accepted(await updateAs(userId, { location: 'Turku' })); // someone else's write: now version + 1
    const error = await expectRefused(
      userId,
      () => updateAs(userId, { displayName: 'Lost Update', expectedVersion: version }),
      'CONFLICT',
    );
    expect(error.message).toContain(String(version));
    const res = await t.gql<{ user: { profile: { displayName: string; version: number } } }>(
      '{ user(id: "11") { profile { displayName version } } }',
    );
    expect(res.body.data?.user.profile).toEqual({ displayName: (await profileRow(userId)).displayName, version: version + 1 });
  });

  it('refuses a version from the future with CONFLICT', async () => {
    const userId = 12;
    const { version } = await profileRow(userId);
    await expectRefused(userId, () => updateAs(userId, { bio: 'x', expectedVersion: version + 5 }), 'CONFLICT');
  });

  it('lets exactly one of several concurrent writers with the same expectedVersion win', async () => {
    const userId = 14;
    const { version } = await profileRow(userId);
    const writers = 6;
    const responses = await Promise.all(
      Array.from({ length: writers }, (_, i) => updateAs(userId, { bio: `writer ${i}`, expectedVersion: version })),
    );
    const codes = responses.map((r) => (r.body.errors === undefined ? 'OK' : r.body.errors[0]!.extensions?.code));
    expect(codes.filter((c) => c === 'OK')).toHaveLength(1);
    expect(codes.filter((c) => c === 'CONFLICT')).toHaveLength(writers - 1);
    const winner = responses.find((r) => r.body.errors === undefined)!.body.data!.updateProfile;
    const row = await profileRow(userId);
    expect(row.version).toBe(version + 1);
    expect(row.bio).toBe(winner.bio);
    const [{ n }] = (await db()
      .select({ n: count() })
      .from(outbox)
      .where(and(eq(outbox.entity, 'profile'), eq(outbox.entityId, userId)))) as [{ n: number }];
    expect(n).toBe(1);
  });

  it.each([0, -1])('refuses expectedVersion %d, which no profile ever has, and changes nothing', async (expectedVersion) => {
    // The contract says "CONFLICT unless equal"; refusing a version below 1 as bad input is as good.
    await expectRefused(13, () => updateAs(13, { bio: 'x', expectedVersion }), ['CONFLICT', 'BAD_USER_INPUT']);
  });
});

describe('updateProfile: validation', () => {
  const userId = 20;

  it('accepts displayName of 1 and 80 code points, 80 astral emoji included', async () => {
    for (const displayName of ['x', 'n'.repeat(80), emoji(80), `${emoji(40)}${'é'.repeat(40)}`]) {
      const { updateProfile } = accepted(await updateAs(userId, { displayName }));
      expect(updateProfile.displayName).toBe(displayName);
      expect((await profileRow(userId)).displayName).toBe(displayName);
    }
  });

  it('accepts bio of 0 and 1000 code points', async () => {
    for (const bio of ['', 'b'.repeat(1000), emoji(1000)]) {
      const { updateProfile } = accepted(await updateAs(userId, { bio }));
      expect(updateProfile.bio).toBe(bio);
      expect((await profileRow(userId)).bio).toBe(bio);
    }
  });

  it('accepts location of 0 and 120 code points, and null clears it', async () => {
    for (const location of ['', 'l'.repeat(120), emoji(120), 'Reykjavík', null]) {
      const { updateProfile } = accepted(await updateAs(userId, { location }));
      expect(updateProfile.location).toBe(location);
      expect((await profileRow(userId)).location).toBe(location);
    }
  });

  it('accepts absolute http and https avatar URLs up to 2048 characters, and null clears it', async () => {
    for (const avatarUrl of ['http://example.com/a.png', 'https://cdn.example.com/u/20.png?size=64', url(2048), null]) {
      const { updateProfile } = accepted(await updateAs(userId, { avatarUrl }));
      expect(updateProfile.avatarUrl).toBe(avatarUrl);
      expect((await profileRow(userId)).avatarUrl).toBe(avatarUrl);
    }
  });

  const refusals: [string, Record<string, unknown>, string][] = [
    ['an empty input', {}, ''],
    ['an input with only expectedVersion', { expectedVersion: 1 }, ''],
    ['an empty displayName', { displayName: '' }, 'displayName'],
    ['81 ASCII code points of displayName', { displayName: 'n'.repeat(81) }, 'displayName'],
    ['81 astral emoji of displayName', { displayName: emoji(81) }, 'displayName'],
    ['a null displayName', { displayName: null }, 'displayName'],
    ['U+0000 in displayName', { displayName: 'nul\u0000byte' }, 'displayName'],
    ['a null bio', { bio: null }, 'bio'],
    ['1001 code points of bio', { bio: 'b'.repeat(1001) }, 'bio'],
    ['1001 astral emoji of bio', { bio: emoji(1001) }, 'bio'],
    ['U+0000 in bio', { bio: '\u0000' }, 'bio'],
    ['121 code points of location', { location: 'l'.repeat(121) }, 'location'],
    ['U+0000 in location', { location: 'Ber\u0000lin' }, 'location'],
    ['an ftp avatarUrl', { avatarUrl: 'ftp://example.com/a.png' }, 'avatarUrl'],
    ['a relative avatarUrl', { avatarUrl: '/avatars/20.png' }, 'avatarUrl'],
    ['a scheme-relative avatarUrl', { avatarUrl: '//example.com/a.png' }, 'avatarUrl'],
    ['a javascript: avatarUrl', { avatarUrl: 'javascript:alert(1)' }, 'avatarUrl'],
    ['a data: avatarUrl', { avatarUrl: 'data:image/png;base64,AAAA' }, 'avatarUrl'],
    ['an empty avatarUrl', { avatarUrl: '' }, 'avatarUrl'],
    ['a 2049-character avatarUrl', { avatarUrl: url(2049) }, 'avatarUrl'],
    ['U+0000 in avatarUrl', { avatarUrl: 'https://example.com/\u0000.png' }, 'avatarUrl'],
    // A URL parser silently strips these before parsing, so checking `new URL(value)` accepts them;
    // but the string stored and served is the one sent, and it is not an absolute URL.
    ['an avatarUrl with a leading space', { avatarUrl: ' https://example.com/a.png' }, 'avatarUrl'],
    ['an avatarUrl with a trailing space', { avatarUrl: 'https://example.com/a.png ' }, 'avatarUrl'],
    ['an avatarUrl with a newline inside', { avatarUrl: 'https://example.com/\na.png' }, 'avatarUrl'],
    ['an avatarUrl with a tab inside the host', { avatarUrl: 'https://exa\tmple.com/a.png' }, 'avatarUrl'],
    ['an avatarUrl led by a control character', { avatarUrl: '\u0001https://example.com/a.png' }, 'avatarUrl'],
    ['one bad field among good ones', { bio: 'fine', location: 'Fine', displayName: '' }, 'displayName'],
  ];

  it.each(refusals)('refuses %s with BAD_USER_INPUT and changes nothing', async (_, input, field) => {
    const refusedUser = 21;
    const error = await expectRefused(refusedUser, () => updateAs(refusedUser, input), 'BAD_USER_INPUT');
    if (field !== '') expect(error.message).toContain(field);
  });
});

describe('createPost', () => {
  it('creates a post authored by the caller that comes first in their posts afterwards', async () => {
    const userId = 30;
    // Warm the author's post list, so the new post must displace a cached answer.
    const warm = await t.gql<{ user: { posts: { id: string }[] } }>('{ user(id: "30") { posts(first: 1) { id } } }');
    expect(warm.body.data?.user.posts).toEqual([{ id: String(userId * POSTS_PER_USER) }]);

    const started = Date.now();
    const { createPost } = accepted(await createAs(userId, { title: 'Hello', body: 'First words.' }));
    expect(createPost.id).toMatch(/^[1-9][0-9]{0,9}$/);
    expect(Number(createPost.id)).toBeGreaterThan(USERS * POSTS_PER_USER);
    expect(createPost).toMatchObject({ title: 'Hello', body: 'First words.', author: { id: '30' } });
    expect(createPost.createdAt).toMatch(DATE_TIME);
    expect(Date.parse(createPost.createdAt)).toBeGreaterThanOrEqual(started - 2000);

    const [row] = await db().select().from(posts).where(eq(posts.id, Number(createPost.id)));
    expect(row).toMatchObject({ authorId: userId, title: 'Hello', body: 'First words.' });
    expect(row!.createdAt.toISOString()).toBe(createPost.createdAt);

    const after = await t.gql<{ user: { posts: { id: string; title: string }[] } }>(
      '{ user(id: "30") { posts(first: 1) { id title } } }',
    );
    expect(after.body.data?.user.posts).toEqual([{ id: createPost.id, title: 'Hello' }]);
    const byId = await t.gql('query ($id: ID!) { post(id: $id) { title author { id } } }', { variables: { id: createPost.id } });
    expect(byId.body).toEqual({ data: { post: { title: 'Hello', author: { id: '30' } } } });
  });

  it('puts each new post in front of the previous ones', async () => {
    const userId = 31;
    const created: string[] = [];
    for (const n of [1, 2, 3]) created.push(accepted(await createAs(userId, { title: `Post ${n}`, body: 'b' })).createPost.id);
    const res = await t.gql<{ user: { posts: { id: string }[] } }>('{ user(id: "31") { posts(first: 4) { id } } }');
    expect(res.body.data?.user.posts.map((p) => p.id)).toEqual([...created.reverse(), String(userId * POSTS_PER_USER)]);
    const newest = await db()
      .select({ id: posts.id })
      .from(posts)
      .where(eq(posts.authorId, userId))
      .orderBy(desc(posts.createdAt), desc(posts.id))
      .limit(3);
    expect(newest.map((r) => String(r.id))).toEqual(created);
  });

  it('accepts titles of 1 and 200 code points and bodies of 1 and 20000', async () => {
    const inputs = [
      { title: 't', body: 'b' },
      { title: 't'.repeat(200), body: 'b'.repeat(20_000) },
      { title: emoji(200), body: emoji(20_000) },
    ];
    for (const input of inputs) {
      const { createPost } = accepted(await createAs(32, input));
      expect(createPost).toMatchObject({ ...input, author: { id: '32' } });
      const [row] = await db().select().from(posts).where(eq(posts.id, Number(createPost.id)));
      expect(row).toMatchObject({ ...input, authorId: 32 });
    }
  });

  const refusals: [string, { title: string; body: string }, string][] = [
    ['an empty title', { title: '', body: 'b' }, 'title'],
    ['a 201-code-point title', { title: 't'.repeat(201), body: 'b' }, 'title'],
    ['201 astral emoji of title', { title: emoji(201), body: 'b' }, 'title'],
    ['U+0000 in title', { title: 'a\u0000b', body: 'b' }, 'title'],
    ['an empty body', { title: 't', body: '' }, 'body'],
    ['a 20001-code-point body', { title: 't', body: 'b'.repeat(20_001) }, 'body'],
    ['U+0000 in body', { title: 't', body: 'a\u0000b' }, 'body'],
  ];

  it.each(refusals)('refuses %s with BAD_USER_INPUT and changes nothing', async (_, input, field) => {
    const error = await expectRefused(33, () => createAs(33, input), 'BAD_USER_INPUT');
    expect(error.message).toContain(field);
  });
});

describe('concurrent mutations', () => {
  it('serves, once every createPost has returned, all the new posts in PostgreSQL\'s order', async () => {
    const userId = 35;
    await t.gql('{ user(id: "35") { posts(first: 10) { id } } }'); // a cached list to displace
    const created = await Promise.all(
      Array.from({ length: 8 }, (_, i) => createAs(userId, { title: `concurrent ${i}`, body: 'b' })),
    );
    for (const response of created) accepted(response);
    const newest = await db()
      .select({ id: posts.id })
      .from(posts)
      .where(eq(posts.authorId, userId))
      .orderBy(desc(posts.createdAt), desc(posts.id))
      .limit(10);
    const res = await t.gql<{ user: { posts: { id: string }[] } }>('{ user(id: "35") { posts(first: 10) { id } } }');
    expect(res.body.data?.user.posts.map((p) => p.id)).toEqual(newest.map((r) => String(r.id)));
    expect(new Set(res.body.data?.user.posts.slice(0, 8).map((p) => p.id))).toEqual(
      new Set(created.map((r) => r.body.data!.createPost.id)),
    );
  });

  it('serves, once every updateProfile has returned, the last committed version', async () => {
    const userId = 36;
    const { version } = await profileRow(userId);
    await t.gql('{ user(id: "36") { profile { bio } } }'); // a cached profile to displace
    const updates = await Promise.all(Array.from({ length: 8 }, (_, i) => updateAs(userId, { bio: `writer ${i}` })));
    const versions = updates.map((r) => accepted(r).updateProfile.version).sort((a, b) => a - b);
    expect(versions).toEqual(Array.from({ length: 8 }, (_, i) => version + i + 1));
    const row = await profileRow(userId);
    const res = await t.gql<{ user: { profile: ProfileOut } }>(
      '{ user(id: "36") { profile { userId displayName bio location avatarUrl version updatedAt } } }',
    );
    expect(res.body.data?.user.profile).toEqual(asApi(row));
    expect(row.version).toBe(version + 8);
  });
});

describe('mutations without a token', () => {
  it('refuses updateProfile with UNAUTHENTICATED and changes nothing', async () => {
    await expectRefused(40, () => t.gql(UPDATE, { variables: { input: { bio: 'anonymous' } } }), 'UNAUTHENTICATED');
  });

  it('refuses createPost with UNAUTHENTICATED and changes nothing', async () => {
    const [before] = await db().select({ n: count() }).from(posts);
    await expectRefused(40, () => t.gql(CREATE, { variables: { input: { title: 't', body: 'b' } } }), 'UNAUTHENTICATED');
    expect((await db().select({ n: count() }).from(posts))[0]).toEqual(before);
  });

  it('refuses an anonymous mutation even when its input is also invalid', async () => {
    await expectRefused(40, () => t.gql(UPDATE, { variables: { input: {} } }), 'UNAUTHENTICATED');
  });
});
