/**
 * The built artefact, as `npm start` runs it: `node dist/server.js` with a real PostgreSQL database
 * and Redis, spoken to over HTTP. It starts, logs where it listens and what it uses, serves queries
 * through the cache (MISS, then HIT), answers /health, and on SIGTERM shuts down with exit code 0.
 *
 * dist/ is built by CI before the tests; when it is missing or older than src/, it is built here.
 */
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signToken } from '../../src/auth/tokens.js';
import { profiles, users } from '../../src/db/schema.js';
import { seedDatabase } from '../../src/db/seed.js';
import { TEST_AUTH_SECRET } from '../support/app.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import {
  builtServerEnv,
  ensureBuilt,
  freePort,
  ROOT,
  SERVER_ENTRY,
  spawnNode,
  type ChildServer,
} from '../support/http-server.js';
import { purgeKeys, scanKeys, uniquePrefix } from '../support/redis.js';

let testDb: TestDatabase;
let server: ChildServer | undefined;
let origin: string;
let listeningLine: string;
const prefix = uniquePrefix('built_server');

interface Body {
  data?: Record<string, unknown> | null;
  errors?: { message: string; extensions?: { code?: string } }[];
}

async function gql(query: string, token?: string): Promise<{ status: number; headers: Headers; body: Body }> {
  const response = await fetch(`${origin}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query }),
  });
  return { status: response.status, headers: response.headers, body: (await response.json()) as Body };
}

beforeAll(async () => {
  await ensureBuilt();
  testDb = await createTestDatabase('built_server');
  await seedDatabase(testDb.database.db, { users: 20, postsPerUser: 2, announce: false });

  const port = await freePort();
  origin = `http://127.0.0.1:${port}`;
  server = spawnNode([SERVER_ENTRY], builtServerEnv(port, { databaseUrl: testDb.url, prefix }), ROOT);
  listeningLine = await server.waitForLine(/listening/, 30_000);
}, 240_000);

afterAll(async () => {
  await server?.kill();
  await testDb?.drop();
  await purgeKeys(`${prefix}:`);
});

describe('node dist/server.js', () => {
  it('logs one line naming where it listens, the database and the cache store', () => {
    expect(listeningLine).toContain(`127.0.0.1:${new URL(origin).port}`);
    expect(listeningLine).toMatch(/PostgreSQL/);
    expect(listeningLine).toMatch(/Redis/);
  });

  it('answers /health with 200 and a small JSON body; only that path', async () => {
    const response = await fetch(`${origin}/health`);
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    expect(await response.json()).toEqual({ status: 'ok' });
    // yoga's own check answered any path that ended in /health.
    expect((await fetch(`${origin}/not/health`)).status).toBe(404);
  });

  it('serves a query from PostgreSQL first (MISS), then from Redis (HIT): the stored answer, by default', async () => {
    const query = '{ user(id: "3") { id name profile { displayName } } }';
    const [user] = await testDb.database.db.select().from(users).where(eq(users.id, 3));
    const [profile] = await testDb.database.db.select().from(profiles).where(eq(profiles.userId, 3));
    const expected = {
      data: { user: { id: '3', name: user!.name, profile: { displayName: profile!.displayName } } },
    };

    const first = await gql(query);
    expect(first.status).toBe(200);
    expect(first.body).toEqual(expected);
    expect(first.headers.get('x-cache')).toBe('MISS');
    // The response tier is on by default: it stored the answer, and vouches for it with an ETag.
    expect(first.headers.get('cache-status')).toMatch(
      /^cacheside-redis; fwd=miss; stored; .*, cacheside-response; fwd=miss; stored$/,
    );
    expect(first.headers.get('cache-control')).toBe('private, no-cache');
    expect(first.headers.get('etag')).toMatch(/^"[A-Za-z0-9_-]+"$/);

    const second = await gql(query);
    expect(second.body).toEqual(expected);
    expect(second.headers.get('x-cache')).toBe('HIT');
    expect(second.headers.get('cache-status')).toBe('cacheside-response; hit; detail="dependencies=2"');
    expect(second.headers.get('etag')).toBe(first.headers.get('etag'));

    // The fill landed under this server's prefix, in the key form of docs/contract.md, "Keys".
    const keys = (await scanKeys(`${prefix}:`)).map((k) => k.key);
    expect(keys).toContain(`${prefix}:v1:user:{3}`);
    expect(keys).toContain(`${prefix}:v1:profile:{3}`);
  });

  it("accepts a token signed with AUTH_SECRET and serves the mutation's result to the next read", async () => {
    const token = await signToken(TEST_AUTH_SECRET, 4);
    const update = await gql(
      'mutation { updateProfile(input: { bio: "over real HTTP" }) { bio version } }',
      token,
    );
    expect(update.status).toBe(200);
    expect(update.body).toEqual({ data: { updateProfile: { bio: 'over real HTTP', version: 2 } } });

    const read = await gql('{ user(id: "4") { profile { bio version } } }');
    expect(read.body).toEqual({ data: { user: { profile: { bio: 'over real HTTP', version: 2 } } } });
  });

  it('refuses a bad id with BAD_USER_INPUT and a bad token with UNAUTHENTICATED, never a 5xx', async () => {
    const badId = await gql('{ user(id: "007") { id } }');
    expect(badId.status).toBe(200);
    expect(badId.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');

    const badToken = await gql('{ me { id } }', 'not-a-token');
    expect(badToken.status).toBeGreaterThanOrEqual(400);
    expect(badToken.status).toBeLessThan(500);
    expect(badToken.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });

  it('exits with code 0 on SIGTERM', async () => {
    // A keep-alive connection from the requests above is still open: shutdown must not hang on it.
    server!.child.kill('SIGTERM');
    const exit = await server!.exited;
    expect(exit, server!.output()).toEqual({ code: 0, signal: null });
  });
});
