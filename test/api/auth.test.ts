/**
 * Bearer-token authentication (docs/contract.md, "Auth"): no token is anonymous and may read; a token that is
 * present but not a valid HS256 JWT with `exp` naming an existing user fails the whole operation
 * with UNAUTHENTICATED — query or mutation — and a 4xx status, never a 5xx and never anonymous data.
 */
import { eq } from 'drizzle-orm';
import { SignJWT, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { outbox, profiles } from '../../src/db/schema.js';
import { TEST_AUTH_SECRET, createTestApp, type GraphQLResponse, type TestApp } from '../support/app.js';

const USERS = 20;

let t: TestApp;

beforeAll(async () => {
  t = await createTestApp({ label: 'api_auth', seed: { users: USERS, postsPerUser: 2 } });
});

afterAll(async () => {
  await t?.close();
});

// Token builders

const now = () => Math.floor(Date.now() / 1000);
const HOUR = 3600;

function base64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

/** Signs `claims` as a compact JWS with `alg` and `secret`. */
async function sign(claims: Record<string, unknown>, { alg = 'HS256', secret = TEST_AUTH_SECRET } = {}): Promise<string> {
  return new SignJWT(claims as JWTPayload).setProtectedHeader({ alg, typ: 'JWT' }).sign(new TextEncoder().encode(secret));
}

const validClaims = (sub: unknown = '1') => ({ sub, iat: now(), exp: now() + HOUR });

/** Flips one character in the middle of the signature (the last character may only carry padding bits). */
function tamperSignature(token: string): string {
  const [header, payload, signature] = token.split('.') as [string, string, string];
  const i = Math.floor(signature.length / 2);
  const flipped = signature[i] === 'A' ? 'B' : 'A';
  return `${header}.${payload}.${signature.slice(0, i)}${flipped}${signature.slice(i + 1)}`;
}

/** Swaps the payload for another while keeping the original signature. */
function swapPayload(token: string, claims: Record<string, unknown>): string {
  const [header, , signature] = token.split('.') as [string, string, string];
  return `${header}.${base64url(claims)}.${signature}`;
}

/** Every Authorization header value that must be refused, built fresh per test (timestamps). */
const BAD_AUTHORIZATION: [string, () => Promise<string>][] = [
  ['a tampered signature', async () => `Bearer ${tamperSignature(await t.token(1))}`],
  ['a payload swapped under a valid signature', async () => `Bearer ${swapPayload(await t.token(1), validClaims('2'))}`],
  [
    'an alg "none" token with an empty signature',
    async () => `Bearer ${base64url({ alg: 'none', typ: 'JWT' })}.${base64url(validClaims('1'))}.`,
  ],
  [
    'an alg "none" token with a junk signature',
    async () => `Bearer ${base64url({ alg: 'none', typ: 'JWT' })}.${base64url(validClaims('1'))}.AAAA`,
  ],
  ['an HS512 token signed with the same secret', async () => `Bearer ${await sign(validClaims('1'), { alg: 'HS512' })}`],
  ['an HS384 token signed with the same secret', async () => `Bearer ${await sign(validClaims('1'), { alg: 'HS384' })}`],
  [
    'a token signed with another secret',
    async () => `Bearer ${await sign(validClaims('1'), { secret: 'another-secret-0123456789abcdef0123456789' })}`,
  ],
  ['an expired token', async () => `Bearer ${await sign({ sub: '1', iat: now() - 2 * HOUR, exp: now() - HOUR })}`],
  ['a token without exp', async () => `Bearer ${await sign({ sub: '1', iat: now() })}`],
  ['a token that is not valid yet (nbf)', async () => `Bearer ${await sign({ ...validClaims('1'), nbf: now() + HOUR })}`],
  ['a token without sub', async () => `Bearer ${await sign({ iat: now(), exp: now() + HOUR })}`],
  ['a token whose sub is "007"', async () => `Bearer ${await sign(validClaims('007'))}`],
  ['a token whose sub is "0"', async () => `Bearer ${await sign(validClaims('0'))}`],
  ['a token whose sub is "-1"', async () => `Bearer ${await sign(validClaims('-1'))}`],
  ['a token whose sub is "1.5"', async () => `Bearer ${await sign(validClaims('1.5'))}`],
  ['a token whose sub is "abc"', async () => `Bearer ${await sign(validClaims('abc'))}`],
  ['a token whose sub is "2147483648"', async () => `Bearer ${await sign(validClaims('2147483648'))}`],
  ['a token whose sub is ""', async () => `Bearer ${await sign(validClaims(''))}`],
  ['a token whose sub is " 1"', async () => `Bearer ${await sign(validClaims(' 1'))}`],
  ['a token whose sub is the number 1', async () => `Bearer ${await sign(validClaims(1))}`],
  ['a token naming an unknown user', async () => `Bearer ${await t.token(USERS + 1)}`],
  ['a token naming the largest id, unknown', async () => `Bearer ${await t.token(2_147_483_647)}`],
  ['a Basic scheme', async () => `Basic ${Buffer.from('user:password').toString('base64')}`],
  ['a valid token under a "Token" scheme', async () => `Token ${await t.token(1)}`],
  ['a valid token without a scheme', async () => t.token(1)],
  ['"Bearer" with no token', async () => 'Bearer'],
  ['a valid token followed by junk', async () => `Bearer ${await t.token(1)} junk`],
  ['a token that is not a JWT', async () => 'Bearer not-a-jwt'],
  ['a token of three empty parts', async () => 'Bearer ..'],
  ['a token whose parts are not base64url JSON', async () => 'Bearer e30.e30.e30'],
  ['an oversized header (10 000 characters)', async () => `Bearer ${'a'.repeat(10_000 - 7)}`],
  [
    'an oversized header holding a correctly signed token (a 10 000-character claim)',
    async () => `Bearer ${await sign({ ...validClaims('1'), padding: 'p'.repeat(10_000) })}`,
  ],
];

const OPERATIONS: [string, string, Record<string, unknown>][] = [
  ['a public query', '{ user(id: "1") { id name } }', {}],
  ['me', '{ me { id } }', {}],
  ['a mutation', 'mutation ($input: UpdateProfileInput!) { updateProfile(input: $input) { version } }', { input: { bio: 'hijacked' } }],
];

function expectUnauthenticated(response: GraphQLResponse): void {
  expect(response.status, JSON.stringify(response.body)).toBeGreaterThanOrEqual(400);
  expect(response.status).toBeLessThan(500);
  expect(response.body.errors?.[0]?.extensions?.code, JSON.stringify(response.body)).toBe('UNAUTHENTICATED');
  // Never fall back to anonymous answers: the client believes it is signed in.
  expect(response.body.data ?? null).toBeNull();
}

async function dbState() {
  const db = t.testDb.database.db;
  const [profile] = await db.select().from(profiles).where(eq(profiles.userId, 1));
  const events = await db.select({ id: outbox.id }).from(outbox);
  return { profile, events: events.length };
}

// Tests

describe('without a token', () => {
  it('reads anonymously', async () => {
    const res = await t.gql<{ user: { id: string; email: string | null }; me: null }>('{ user(id: "1") { id email } me { id } }');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ data: { user: { id: '1', email: null }, me: null } });
  });

  it('cannot mutate', async () => {
    const before = await dbState();
    const res = await t.gql(OPERATIONS[2]![1], { variables: OPERATIONS[2]![2] });
    expect(res.status).toBeLessThan(500);
    expect(res.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    expect(await dbState()).toEqual(before);
  });
});

describe('with a valid token', () => {
  it('reads as the user it names', async () => {
    const res = await t.gql('{ me { id } user(id: "2") { id } }', { token: await t.token(2) });
    expect(res.body).toEqual({ data: { me: { id: '2' }, user: { id: '2' } } });
  });

  it('mutates the profile of the user it names', async () => {
    const res = await t.gql<{ updateProfile: { userId: string; bio: string } }>(
      'mutation { updateProfile(input: { bio: "signed in" }) { userId bio } }',
      { token: await t.token(3) },
    );
    expect(res.body).toEqual({ data: { updateProfile: { userId: '3', bio: 'signed in' } } });
  });

  it('is accepted with a 24 h lifetime, as `npm run token` issues it', async () => {
    const token = await sign({ sub: '4', iat: now(), exp: now() + 24 * HOUR });
    const res = await t.gql('{ me { id } }', { headers: { authorization: `Bearer ${token}` } });
    expect(res.body).toEqual({ data: { me: { id: '4' } } });
  });
});

describe.each(BAD_AUTHORIZATION)('with %s', (_, authorization) => {
  it.each(OPERATIONS)('refuses %s with UNAUTHENTICATED and a 4xx status, changing nothing', async (_, query, variables) => {
    const before = await dbState();
    const res = await t.gql(query, { variables, headers: { authorization: await authorization() } });
    expectUnauthenticated(res);
    expect(await dbState()).toEqual(before);
  });
});

describe('a refused token', () => {
  it('is refused the same way over GET', async () => {
    const header = `Bearer ${tamperSignature(await t.token(1))}`;
    const response = await t.fetch(`/graphql?query=${encodeURIComponent('{ user(id: "1") { id } }')}`, {
      headers: { authorization: header, accept: 'application/graphql-response+json, application/json' },
    });
    expect(response.status).toBeGreaterThanOrEqual(400);
    expect(response.status).toBeLessThan(500);
    const body = (await response.json()) as { errors?: { extensions?: { code?: string } }[] };
    expect(body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });

  it('does not echo the token in the error message', async () => {
    const token = await sign(validClaims('abc'));
    const res = await t.gql('{ me { id } }', { headers: { authorization: `Bearer ${token}` } });
    expectUnauthenticated(res);
    expect(JSON.stringify(res.body)).not.toContain(token);
  });
});
