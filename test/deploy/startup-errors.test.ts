/**
 * Bad configuration is a clear, immediate error: the built server (`node dist/server.js`, as
 * `npm start` runs it) exits with the documented code (docs/contract.md, "Exit codes of the server")
 * and one stderr line that names the variable and its value, passwords masked — never a hang, a
 * stack or a start that claims to be up.
 */
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { EXIT_CODES } from '../../src/app/startup-failure.js';
import { EMBEDDED_POSTGRES_MAJOR } from '../../src/db/client.js';
import { TEST_AUTH_SECRET } from '../support/app.js';
import { ensureBuilt, freePort, ROOT, SERVER_ENTRY, spawnNode } from '../support/http-server.js';

const scratch = mkdtempSync(join(tmpdir(), 'cs-startup-'));
beforeAll(ensureBuilt, 240_000);
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** Runs the built server with exactly `env` until it exits; its code and what it wrote. */
async function start(env: Record<string, string>) {
  const server = spawnNode(
    [SERVER_ENTRY],
    {
      HOST: '127.0.0.1',
      PORT: String(await freePort()),
      AUTH_SECRET: TEST_AUTH_SECRET,
      LOG_LEVEL: 'warn',
      DATA_DIR: join(scratch, 'unused'),
      ...env,
    },
    ROOT,
  );
  const { code, signal } = await server.exited;
  const output = server.output();
  const failure = output.split('\n').find((line) => line.startsWith('cacheside failed to start: '));
  // A failed expectation on the code shows how the process ended and everything it wrote.
  return { code: code ?? `signal ${signal}:\n${output}`, output, failure };
}

describe('malformed or wrong-scheme URLs: exit 2, naming the variable and the value', () => {
  test.each([
    [
      'DATABASE_URL',
      'not-a-url',
      /DATABASE_URL="not-a-url": is not a URL: must be a postgres:\/\/ or postgresql:\/\/ URL/,
    ],
    [
      'DATABASE_URL',
      'mysql://app:s3cret@db.example:3306/app',
      /DATABASE_URL="mysql:\/\/app:\*\*\*@db\.example:3306\/app": has the scheme mysql:/,
    ],
    [
      'REDIS_URL',
      'not-a-url',
      /REDIS_URL="not-a-url": is not a URL: must be a redis:\/\/ or rediss:\/\/ URL/,
    ],
    ['REDIS_URL', 'http://127.0.0.1:6379', /REDIS_URL="http:\/\/127\.0\.0\.1:6379": has the scheme http:/],
  ])('%s=%s', async (name, value, message) => {
    const { code, failure, output } = await start({ [name]: value });
    expect(code).toBe(EXIT_CODES.badConfiguration);
    expect(failure).toMatch(message);
    expect(output).not.toContain('s3cret');
    expect(output).not.toContain('listening');
  });

  test('a value out of range names the variable too', async () => {
    const { code, failure } = await start({ DATABASE_STARTUP_TIMEOUT_SECONDS: '0' });
    expect(code).toBe(EXIT_CODES.badConfiguration);
    expect(failure).toMatch(/DATABASE_STARTUP_TIMEOUT_SECONDS="0"/);
  });
});

describe('PostgreSQL unreachable at startup: each retry logged, exit 3 after the bound, naming host and port', () => {
  let blackHole: Server;
  const held: Socket[] = [];
  beforeAll(async () => {
    // Accepts connections and never answers: a server that drops packets, as seen from the client.
    blackHole = createServer((socket) => void held.push(socket));
    await new Promise<void>((resolve) => blackHole.listen(0, '127.0.0.1', resolve));
  });
  afterAll(async () => {
    for (const socket of held) socket.destroy();
    await new Promise<void>((resolve) => blackHole.close(() => resolve()));
  });

  test('a server that never answers', async () => {
    const port = (blackHole.address() as { port: number }).port;
    const { code, failure, output } = await start({
      DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/postgres`,
      // Attempts of 2 s each, a second apart: one retry (logged) fits in 5 s.
      DATABASE_STARTUP_TIMEOUT_SECONDS: '5',
    });
    expect(code).toBe(EXIT_CODES.databaseUnreachable);
    expect(failure).toMatch(
      new RegExp(`PostgreSQL at 127\\.0\\.0\\.1:${port}/postgres did not answer within 5 s`),
    );
    expect(failure).toMatch(/DATABASE_STARTUP_TIMEOUT_SECONDS/);
    expect(output).toMatch(/is not answering \(no answer in \d+ ms\); retrying/);
  });

  test('nothing listening (connection refused)', async () => {
    const port = await freePort();
    const { code, failure, output } = await start({
      DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/postgres`,
      DATABASE_STARTUP_TIMEOUT_SECONDS: '2',
    });
    expect(code).toBe(EXIT_CODES.databaseUnreachable);
    expect(failure).toMatch(
      new RegExp(`PostgreSQL at 127\\.0\\.0\\.1:${port}/postgres did not answer within 2 s .*ECONNREFUSED`),
    );
    const retries = output.split('\n').filter((line) => line.includes('retrying'));
    expect(retries.length).toBeGreaterThanOrEqual(1);
  });
});

describe('the port in use: exit 4, saying which variable to set', () => {
  test('PORT taken by another process', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as { port: number }).port;
    try {
      const { code, failure } = await start({ PORT: String(port), DATA_DIR: join(scratch, 'port') });
      expect(code).toBe(EXIT_CODES.cannotListen);
      expect(failure).toBe(
        `cacheside failed to start: cannot listen on 127.0.0.1:${port} (EADDRINUSE): port ${port} is already in use on 127.0.0.1: stop what listens there, or set PORT to a free port`,
      );
    } finally {
      await new Promise<void>((resolve) => taken.close(() => resolve()));
    }
  }, 120_000);
});

describe('an embedded data directory from another PostgreSQL major version: exit 5, with path, versions and remedy', () => {
  test('a new DATA_DIR held by another live process (its lock file)', async () => {
    const dataDir = join(scratch, 'held');
    writeFileSync(`${dataDir}.lock`, String(process.pid)); // this test process: alive
    try {
      const { code, failure } = await start({ DATA_DIR: dataDir });
      expect(code).toBe(EXIT_CODES.dataDirUnusable);
      expect(failure).toBe(
        `cacheside failed to start: ${dataDir} is in use by process ${process.pid} (stop it first, or set DATA_DIR to another directory)`,
      );
    } finally {
      rmSync(`${dataDir}.lock`, { force: true });
    }
  });

  test('PG_VERSION 16 in DATA_DIR', async () => {
    const dataDir = join(scratch, 'old-pglite');
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(join(dataDir, 'PG_VERSION'), '16\n');
    const { code, failure } = await start({ DATA_DIR: dataDir });
    expect(code).toBe(EXIT_CODES.dataDirUnusable);
    expect(failure).toContain(`the embedded database in ${dataDir} was made by PostgreSQL 16`);
    expect(failure).toContain(`runs PostgreSQL ${EMBEDDED_POSTGRES_MAJOR}`);
    expect(failure).toMatch(/Move the directory away .* or set DATA_DIR/);
  });
});
