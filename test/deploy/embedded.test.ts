/**
 * The embedded default: no DATABASE_URL, no REDIS_URL. PGlite in a data directory, created, migrated
 * and seeded on the first start, reopened (not re-seeded) on the next; the same API as on
 * PostgreSQL. And the token CLI, whose tokens the API accepts.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { EMBEDDED_POSTGRES_MAJOR } from '../../src/db/client.js';
import { DEMO_USERS } from '../../src/db/demo-data.js';
import { createApp, type App } from '../../src/app/create-app.js';
import { createTestApp, errorCodes, postQuery, TEST_AUTH_SECRET, type TestApp } from '../support/app.js';

const run = promisify(execFile);
const dataDir = mkdtempSync(join(tmpdir(), 'cs-embedded-'));
const env = { DATA_DIR: dataDir, AUTH_SECRET: TEST_AUTH_SECRET, LOG_LEVEL: 'silent' };

const gql = (app: App, query: string, token?: string) => postQuery(app, query, token);

/** The token CLI as a user runs it, against the given environment. */
async function tokenCli(userId: string, extraEnv: Record<string, string>) {
  const { DATABASE_URL: _unused, REDIS_URL: _alsoUnused, ...base } = process.env;
  return run('npx', ['tsx', 'src/cli/token.ts', userId], { env: { ...base, ...extraEnv } });
}

afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe('embedded PGlite and the in-memory store', () => {
  let app: App;
  beforeAll(async () => {
    app = await createApp(loadConfig(env));
  }, 120_000);
  afterAll(() => app?.close());

  test('the data directory is of the PostgreSQL major version the start checks for', () => {
    // src/db/client.ts refuses another version's directory by this number: a PGlite upgrade that
    // changes it must change the constant too.
    expect(readFileSync(join(dataDir, 'PG_VERSION'), 'utf8').trim()).toBe(EMBEDDED_POSTGRES_MAJOR);
  });

  test('the first start seeds demo data and serves the newcomer query', async () => {
    expect(app.database.kind).toBe('pglite');
    expect(app.store.tier).toBe('cacheside-memory');
    const r = await gql(app, `{ userPage(first: 3) { nodes { name profile { displayName } } nextCursor } }`);
    expect(r.body.errors).toBeUndefined();
    expect(r.body.data).toEqual({
      userPage: {
        nodes: Array.from({ length: 3 }, () => ({
          name: expect.any(String),
          profile: { displayName: expect.any(String) },
        })),
        nextCursor: '3',
      },
    });
    expect(
      (await gql(app, `{ users(ids: ["${DEMO_USERS}", "${DEMO_USERS + 1}", "2"]) { id } }`)).body.data,
    ).toEqual({
      users: [{ id: String(DEMO_USERS) }, null, { id: '2' }],
    });
  });

  test('the cache works on the memory store: MISS, then HIT', async () => {
    expect((await gql(app, `{ user(id: "9") { name profile { bio } } }`)).headers.get('x-cache')).toBe(
      'MISS',
    );
    expect((await gql(app, `{ user(id: "9") { name profile { bio } } }`)).headers.get('x-cache')).toBe('HIT');
  });

  test('mutations, validation and CONFLICT behave as on PostgreSQL', async () => {
    const token = (await import('../../src/auth/tokens.js')).signToken(TEST_AUTH_SECRET, 4);
    const updated = await gql(
      app,
      `mutation { updateProfile(input: { bio: "embedded", expectedVersion: 1 }) { version bio } }`,
      await token,
    );
    expect(updated.body).toEqual({ data: { updateProfile: { version: 2, bio: 'embedded' } } });
    const conflict = await gql(
      app,
      `mutation { updateProfile(input: { bio: "again", expectedVersion: 1 }) { version } }`,
      await token,
    );
    expect(errorCodes(conflict)).toEqual(['CONFLICT']);
    const post = await gql(
      app,
      `mutation { createPost(input: { title: "Embedded", body: "Hello" }) { id author { id } } }`,
      await token,
    );
    expect(post.body.errors).toBeUndefined();
    const newest = await gql(app, `{ user(id: "4") { profile { bio version } posts(first: 1) { title } } }`);
    expect(newest.body.data).toEqual({
      user: { profile: { bio: 'embedded', version: 2 }, posts: [{ title: 'Embedded' }] },
    });
    const bad = await gql(app, `{ user(id: "007") { id } }`);
    expect(errorCodes(bad)).toEqual(['BAD_USER_INPUT']);
  });

  test('a second start reopens the data: not re-seeded, the changes still there', async () => {
    await app.close();
    app = await createApp(loadConfig(env));
    const r = await gql(
      app,
      `{ user(id: "4") { profile { bio version } } userPage(first: 1, after: "${DEMO_USERS - 1}") { nextCursor } }`,
    );
    expect(r.body.data).toEqual({
      user: { profile: { bio: 'embedded', version: 2 } },
      userPage: { nextCursor: null },
    });
  }, 60_000);

  test('the token CLI refuses to open the data directory while the server holds it', async () => {
    const busy = await tokenCli('5', env).catch((error: { code: number; stderr: string }) => error);
    expect(busy).toMatchObject({ code: 1 });
    expect((busy as { stderr: string }).stderr).toMatch(/in use by process/);
  }, 60_000);
});

describe('the token CLI against PostgreSQL', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ label: 'token_cli', store: 'memory', seed: { users: 5, postsPerUser: 1 } });
  });
  afterAll(() => t?.close());

  test('prints a token the API accepts for that user, and refuses an unknown user', async () => {
    const cliEnv = { DATABASE_URL: t.testDb.url, AUTH_SECRET: TEST_AUTH_SECRET, LOG_LEVEL: 'silent' };
    const { stdout } = await tokenCli('3', cliEnv);
    const token = stdout.trim();
    expect(token.split('.')).toHaveLength(3);
    const me = await t.gql(`{ me { id email } }`, { token });
    expect(me.body.data).toEqual({ me: { id: '3', email: expect.stringContaining('@') } });

    const unknown = await tokenCli('99', cliEnv).catch((error: { code: number; stderr: string }) => error);
    expect(unknown).toMatchObject({ code: 1 });
    expect((unknown as { stderr: string }).stderr).toMatch(/99/);
  }, 60_000);
});
