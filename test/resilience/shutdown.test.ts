/**
 * Graceful shutdown of the built server (src/shutdown.ts), as an orchestrator sees it: SIGTERM while
 * 50 requests are in flight → /ready answers 503 while the instance still listens → the listener
 * closes → all 50 requests finish with correct answers → the outbox relay finishes the batch it is
 * in → exit code 0, with no stampede lock left in Redis. And the same exit code 0 when the server was
 * started through `npm start`.
 *
 * How the 50 requests are made slow, for real and without a test hook in the server: the test takes
 * an ACCESS EXCLUSIVE lock on `profiles` from its own connection. Row locks would not do (PostgreSQL
 * readers never wait on row locks), but a table lock in that mode blocks even a plain SELECT. Each
 * request asks for a different, cold user with their profile: it loads the user, takes the profile
 * key's stampede lock in Redis, and its SQL load then waits on the table lock (or, beyond
 * DB_MAX_CONCURRENT_LOADS, in the server's load queue). So "50 `:lock` keys under the prefix" proves
 * that all 50 are inside the server holding a lock, and releasing the table lock lets them finish.
 * The lock TTL is raised to a minute so that a lock key can only disappear by being released.
 * The relay is caught mid-batch the same way: an EXCLUSIVE lock on `outbox` blocks its
 * `SELECT … FOR UPDATE SKIP LOCKED` claim inside its transaction.
 *
 * Each wait is kept well under the server's 5 s statement timeout.
 */
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { asc, lte } from 'drizzle-orm';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { profiles, users } from '../../src/db/schema.js';
import { seedDatabase } from '../../src/db/seed.js';
import { createLogger } from '../../src/observability/logger.js';
import { createApp } from '../../src/app/create-app.js';
import { shutDown } from '../../src/app/shutdown.js';
import { TEST_AUTH_SECRET } from '../support/app.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import {
  builtServerEnv,
  ensureBuilt,
  freePort,
  ROOT,
  SERVER_ENTRY,
  spawnCommand,
  spawnNode,
  type ChildServer,
} from '../support/http-server.js';
import { REDIS_URL, purgeKeys, scanKeys, uniquePrefix } from '../support/redis.js';

const IN_FLIGHT = 50;
/** How long the server keeps serving after SIGTERM, /ready at 503, before it closes its listener. */
const DELAY_MS = 400;

const QUERY = 'query ($id: ID!) { user(id: $id) { id name profile { displayName bio } } }';

let testDb: TestDatabase;
let control: postgres.Sql;
const prefix = uniquePrefix('shutdown');
const started: ChildServer[] = [];

/**
 * Takes `lock table <table> in <mode> mode` in a transaction of its own and holds it until
 * `release()`. Resolves once the lock is held.
 */
async function holdTableLock(
  table: 'profiles' | 'outbox',
  mode: string,
): Promise<{ release(): Promise<void> }> {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let held!: () => void;
  const holding = new Promise<void>((resolve) => (held = resolve));
  const transaction = control.begin(async (tx) => {
    await tx.unsafe(`lock table ${table} in ${mode} mode`);
    held();
    await released;
  });
  await Promise.race([holding, transaction]);
  return {
    async release() {
      release();
      await transaction;
    },
  };
}

/** Statements of the server waiting for a lock on `table` (the test's own connections never wait). */
async function waitersOn(table: 'profiles' | 'outbox'): Promise<number> {
  const [row] = await control<{ n: number }[]>`
    select count(*)::int as n from pg_locks where relation = ${table}::regclass and not granted`;
  return row!.n;
}

/** Polls `probe` every 20 ms until it returns true; fails after `timeoutMs`. */
async function until(what: string, probe: () => Promise<boolean> | boolean, timeoutMs = 4000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** Whether a TCP connection to 127.0.0.1:port is accepted. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** An HTTP/1.1 keep-alive connection that has made one request and now sits idle. */
async function idleKeepAliveConnection(port: number): Promise<{ closed: Promise<void> }> {
  const socket = connect({ port, host: '127.0.0.1' });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.on('error', () => {});
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  const answered = new Promise<string>((resolve) => {
    let text = '';
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      if (text.includes('\r\n\r\n')) resolve(text);
    });
  });
  socket.write('GET /health HTTP/1.1\r\nHost: cacheside\r\n\r\n');
  expect(await answered).toMatch(/^HTTP\/1\.1 200/);
  return { closed };
}

function post(origin: string, body: unknown, signal?: AbortSignal): Promise<Response> {
  return fetch(`${origin}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    ...(signal ? { signal } : {}),
  });
}

async function expectedUsers(count: number) {
  const { db } = testDb.database;
  const rows = await db.select().from(users).where(lte(users.id, count)).orderBy(asc(users.id));
  const profileRows = new Map((await db.select().from(profiles)).map((p) => [p.userId, p]));
  return rows.map((u) => ({
    id: String(u.id),
    name: u.name,
    profile: { displayName: profileRows.get(u.id)!.displayName, bio: profileRows.get(u.id)!.bio },
  }));
}

beforeAll(async () => {
  await ensureBuilt();
  testDb = await createTestDatabase('shutdown');
  await seedDatabase(testDb.database.db, { users: IN_FLIGHT + 10, postsPerUser: 1, announce: false });
  control = postgres(testDb.url, { max: 4, onnotice: () => {} });
}, 240_000);

afterAll(async () => {
  for (const server of started) await server.kill();
  await control?.end({ timeout: 5 });
  await testDb?.drop();
  await purgeKeys(`${prefix}:`);
});

describe('SIGTERM on node dist/server.js with 50 requests in flight', () => {
  it('answers /ready 503 first, finishes every request and the relay batch, releases every lock, exits 0', async () => {
    const port = await freePort();
    const origin = `http://127.0.0.1:${port}`;
    const server = spawnNode(
      [SERVER_ENTRY],
      builtServerEnv(port, {
        databaseUrl: testDb.url,
        prefix,
        env: {
          SHUTDOWN_DELAY_MS: String(DELAY_MS),
          CACHE_LOCK_TTL_MS: '60000',
          OUTBOX_POLL_INTERVAL_MS: '20',
          // On a machine busy with the other test files, a Redis reply can take longer than the default
          // 200 ms; three such time-outs open the circuit breaker, which also refuses lock releases
          // (src/cache/circuit-breaker.ts guards releaseLocks), leaving locks to expire by their TTL.
          // This test is about shutdown, not about Redis time-outs.
          REDIS_COMMAND_TIMEOUT_MS: '5000',
        },
      }),
      ROOT,
    );
    started.push(server);
    await server.waitForLine(/listening/, 30_000);
    let exitedAt: number | undefined;
    void server.exited.then(() => (exitedAt = Date.now()));

    const ready = await fetch(`${origin}/ready`);
    expect(ready.status).toBe(200);
    // Warm: asked again while draining, it is answered from Redis, past the blocked loads.
    const warm = { query: '{ user(id: "55") { id } }' };
    expect(await (await post(origin, warm)).json()).toEqual({ data: { user: { id: '55' } } });
    const keepAlive = await idleKeepAliveConnection(port);
    const expected = await expectedUsers(IN_FLIGHT);

    // 50 cold requests, each stuck in PostgreSQL (or in the load queue) behind the table lock.
    const profilesLock = await holdTableLock('profiles', 'access exclusive');
    let settled = 0;
    const requests = expected.map(async ({ id }) => {
      try {
        const response = await post(origin, { query: QUERY, variables: { id } });
        return {
          status: response.status,
          connection: response.headers.get('connection'),
          body: await response.json(),
        };
      } finally {
        settled += 1;
      }
    });
    // Each request holds one stampede lock while it waits: its profile's, or — when its user load
    // queued behind the four blocked loads (DB_MAX_CONCURRENT_LOADS) — its user's.
    const lockedUsers = async () => {
      const ids = new Set<string>();
      for (const { key } of await scanKeys(`${prefix}:`)) {
        const match = /:(?:user|profile):\{(\d+)\}:lock$/.exec(key);
        if (match) ids.add(match[1]!);
      }
      return ids.size;
    };
    await until('every request to hold a lock', async () => (await lockedUsers()) === IN_FLIGHT);
    // Waited for, not expected at once: every request holds its user's lock as soon as its user load
    // queues, which can be before the first profile load has reached the locked table.
    await until('profile loads to wait on the table lock', async () => (await waitersOn('profiles')) > 0);

    // The relay, mid-batch: its claim waits inside its transaction.
    const outboxLock = await holdTableLock('outbox', 'exclusive');
    await until('the relay to wait on its claim', async () => (await waitersOn('outbox')) > 0);

    const sigtermAt = Date.now();
    server.child.kill('SIGTERM');

    // 1. Still listening, no longer ready: a new request is still served, and told to close.
    const draining = await fetch(`${origin}/ready`);
    expect(draining.status).toBe(503);
    expect(((await draining.json()) as { status: string }).status).toBe('draining');
    const late = await post(origin, warm);
    expect(late.status).toBe(200);
    expect(await late.json()).toEqual({ data: { user: { id: '55' } } });
    expect(late.headers.get('connection')).toBe('close');
    expect(exitedAt).toBeUndefined();

    // 2. The listener closes after the delay; the idle keep-alive connection is closed with it. The
    //    50 requests are still held, so the process lives on.
    await until('the listener to close', async () => !(await accepts(port)));
    expect(Date.now() - sigtermAt).toBeGreaterThanOrEqual(DELAY_MS - 50);
    await keepAlive.closed;
    expect(settled).toBe(0);
    expect(exitedAt).toBeUndefined();
    expect(await lockedUsers()).toBe(IN_FLIGHT);

    // 3. The requests finish, with the right data; their connections are closed after them.
    await profilesLock.release();
    const answers = await Promise.all(requests);
    expect(answers.map((a) => a.status)).toEqual(expected.map(() => 200));
    expect(answers.map((a) => a.body)).toEqual(expected.map((user) => ({ data: { user } })));
    expect(answers.every((a) => a.connection === 'close')).toBe(true);

    // 4. The relay's batch is still in progress, and the process waits for it.
    expect(await waitersOn('outbox')).toBeGreaterThan(0);
    expect(exitedAt).toBeUndefined();
    const outboxReleasedAt = Date.now();
    await outboxLock.release();

    const exit = await server.exited;
    expect(exit, server.output()).toEqual({ code: 0, signal: null });
    expect(exitedAt!).toBeGreaterThanOrEqual(outboxReleasedAt);
    expect(server.output()).toContain('shut down cleanly');
    expect(server.output()).not.toMatch(/relay run failed|"level":(50|60)/);

    // Every lock was released (none could have expired: their TTL is a minute); every fill landed.
    const keys = (await scanKeys(`${prefix}:`)).map((k) => k.key);
    expect(keys.filter((key) => key.endsWith(':lock'))).toEqual([]);
    for (const { id } of expected) {
      expect(keys).toContain(`${prefix}:v1:user:{${id}}`);
      expect(keys).toContain(`${prefix}:v1:profile:{${id}}`);
    }
  }, 60_000);
});

describe('shutDown() in-process: the requests it waits for, and the one it gives up on', () => {
  /** The app of main(), in this process, with a hook that holds profile loads while `hold` is set. */
  async function serve(prefixLabel: string) {
    let hold: Promise<void> | undefined;
    let held = 0;
    const appPrefix = uniquePrefix(prefixLabel);
    const app = await createApp(
      loadConfig({
        DATABASE_URL: testDb.url,
        REDIS_URL,
        CACHE_PREFIX: appPrefix,
        AUTH_SECRET: TEST_AUTH_SECRET,
        LOG_LEVEL: 'silent',
        CACHE_LOCK_TTL_MS: '60000',
      }),
      {
        repositoryOptions: {
          beforeQuery: async (query) => {
            if (query !== 'profiles' || hold === undefined) return;
            held += 1;
            await hold;
          },
        },
      },
    );
    const server: Server = createServer(app.yoga);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    let release!: () => void;
    hold = new Promise<void>((resolve) => (release = resolve));
    return {
      app,
      server,
      tracker: app.requests,
      port,
      prefix: appPrefix,
      held: () => held,
      release: () => release(),
    };
  }

  it('waits for a request whose client has gone, so its locks are released before the store closes', async () => {
    const s = await serve('shutdown_gone');
    try {
      const client = new AbortController();
      const request = post(
        `http://127.0.0.1:${s.port}`,
        { query: QUERY, variables: { id: '5' } },
        client.signal,
      ).catch(() => 'aborted');
      await until('the profile load to be held', () => s.held() === 1);
      client.abort(); // the client gives up: its socket closes, the request's resolvers run on
      expect(await request).toBe('aborted');
      expect(s.tracker.inFlight).toBe(1);

      let finished = false;
      const done = shutDown({ ...s, logger: createLogger('silent'), delayMs: 0, timeoutMs: 10_000 }).then(
        (clean) => {
          finished = true;
          return clean;
        },
      );
      await until('the listener to close', async () => !(await accepts(s.port)));
      // The resolver still holds the profile's stampede lock, and shutdown waits for it.
      expect((await scanKeys(`${s.prefix}:`)).map((k) => k.key)).toContain(`${s.prefix}:v1:profile:{5}:lock`);
      expect(finished).toBe(false);

      s.release();
      expect(await done).toBe(true);
      expect((await scanKeys(`${s.prefix}:`)).filter((k) => k.key.endsWith(':lock'))).toEqual([]);
    } finally {
      s.release();
      await s.app.close();
      await purgeKeys(`${s.prefix}:`);
    }
  });

  it('any app built by createApp (tests, the benchmark) closes connections once draining', async () => {
    const s = await serve('shutdown_close');
    try {
      const before = await post(`http://127.0.0.1:${s.port}`, { query: '{ user(id: "1") { id } }' });
      expect(before.headers.get('connection')).not.toBe('close');
      s.app.beginDraining();
      expect(s.app.draining).toBe(true);
      const after = await post(`http://127.0.0.1:${s.port}`, { query: '{ user(id: "1") { id } }' });
      expect(await after.json()).toEqual({ data: { user: { id: '1' } } });
      expect(after.headers.get('connection')).toBe('close');
      expect((await fetch(`http://127.0.0.1:${s.port}/ready`)).status).toBe(503);
    } finally {
      s.release();
      s.server.closeAllConnections();
      await new Promise<void>((resolve) => s.server.close(() => resolve()));
      await s.app.close();
      await purgeKeys(`${s.prefix}:`);
    }
  });

  it('cuts a request still running after the timeout and reports the shutdown as not clean', async () => {
    const s = await serve('shutdown_stuck');
    try {
      const request = post(`http://127.0.0.1:${s.port}`, { query: QUERY, variables: { id: '6' } }).then(
        (response) => response.status,
        () => 'cut',
      );
      await until('the profile load to be held', () => s.held() === 1);
      const clean = await shutDown({ ...s, logger: createLogger('silent'), delayMs: 0, timeoutMs: 300 });
      expect(clean).toBe(false);
      expect(await request).toBe('cut');
    } finally {
      s.release();
      await s.app.close();
      await purgeKeys(`${s.prefix}:`);
    }
  });
});

describe('SIGTERM through npm start', () => {
  it('reaches the server, which shuts down cleanly, and npm exits 0', async () => {
    // `--ignore-scripts` skips only `prestart` (the build, done above or by CI), which would rewrite
    // dist/ under the other test files that run it; `start` itself runs as `npm start` runs it.
    const port = await freePort();
    const npm = spawnCommand(
      'npm',
      ['start', '--ignore-scripts'],
      builtServerEnv(port, { databaseUrl: testDb.url, prefix, env: { HOME: process.env.HOME ?? '/tmp' } }),
      ROOT,
    );
    started.push(npm);
    let serverPids: number[] = [];
    let exitedCleanly = false;
    try {
      await npm.waitForLine(/listening/, 30_000);
      serverPids = await childrenOf(npm.child.pid!);
      const response = await post(`http://127.0.0.1:${port}`, { query: '{ user(id: "1") { id } }' });
      expect(await response.json()).toEqual({ data: { user: { id: '1' } } });

      npm.child.kill('SIGTERM');
      const exit = await npm.exited;
      expect(exit, npm.output()).toEqual({ code: 0, signal: null });
      // The server itself got the signal (not just npm): it logged its clean shutdown and left no
      // process listening behind.
      expect(npm.output()).toContain('shut down cleanly');
      expect(await accepts(port)).toBe(false);
      exitedCleanly = true;
    } finally {
      // Had npm died without passing the signal on, its child would live on, orphaned: end it. Only
      // then: once they have exited their pids are free, and another file's process may get one.
      for (const pid of exitedCleanly ? [] : serverPids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone, as it should be
        }
      }
    }
  }, 60_000);
});

/** Pids of every process below `pid` (npm → sh → node when the shell does not exec). */
async function childrenOf(pid: number): Promise<number[]> {
  const { stdout } = await promisify(execFile)('ps', ['-o', 'pid=', '--ppid', String(pid)]).catch(() => ({
    stdout: '',
  }));
  const children = stdout
    .split('\n')
    .map((line) => Number(line.trim()))
    .filter((n) => n > 0);
  const below = await Promise.all(children.map(childrenOf));
  return [...children, ...below.flat()];
}
