/**
 * Real HTTP for the few tests that must not go through `yoga.fetch`: an in-process app behind a
 * node:http server on a free port, or the built server (`node dist/server.js`) as a child process.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { App } from '../../src/app/create-app.js';
import { TEST_AUTH_SECRET } from './app.js';
import { freePort } from './ports.js';
import { REDIS_URL } from './redis.js';

export { freePort };

/** The repository's root (with a trailing slash): the working directory of the built server. */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The built server's entry point, relative to ROOT, as `npm start` runs it. */
export const SERVER_ENTRY = 'dist/server.js';

/** The one rebuild of this process, shared by every test file that asks while it runs or after. */
const REBUILD = Symbol.for('cacheside.test.ensureBuilt');
type WithRebuild = typeof globalThis & { [REBUILD]?: Promise<void> };

/**
 * Brings dist/ up to date as `npm start` does (`tsc -b tsconfig.build.json`: incremental, about a
 * second when nothing changed, since install built it). Runs at most once per process, however many
 * test files ask; two processes may each build at the same time, which is harmless: tsc writes the
 * same output.
 */
export async function ensureBuilt(): Promise<void> {
  await ((globalThis as WithRebuild)[REBUILD] ??= rebuild());
}

async function rebuild(): Promise<void> {
  try {
    // maxBuffer: past it execFile would kill tsc halfway through its output.
    await promisify(execFile)('npx', ['tsc', '-b', 'tsconfig.build.json'], {
      cwd: ROOT,
      timeout: 170_000,
      maxBuffer: 64 * 1024 * 1024,
    });
  } catch (error) {
    // tsc emits despite type errors elsewhere in src/; only a missing entry point stops us.
    if (!existsSync(join(ROOT, SERVER_ENTRY))) throw error;
  }
}


/**
 * The environment of a built server under test: on `port` of 127.0.0.1, with the given database and
 * cache prefix, the machine's Redis, the tests' AUTH_SECRET (TEST_AUTH_SECRET: sign tokens with it)
 * and info logs (tests wait for the `listening` line); then `env`, which may override any of these.
 */
export function builtServerEnv(
  port: number,
  opts: { databaseUrl: string; prefix: string; env?: Record<string, string> },
): Record<string, string> {
  return {
    PORT: String(port),
    HOST: '127.0.0.1',
    DATABASE_URL: opts.databaseUrl,
    REDIS_URL,
    CACHE_PREFIX: opts.prefix,
    AUTH_SECRET: TEST_AUTH_SECRET,
    LOG_LEVEL: 'info',
    ...opts.env,
  };
}

export interface HttpTestServer {
  /** http://127.0.0.1:<port> */
  readonly origin: string;
  readonly port: number;
  /** Drops open connections and stops listening. Idempotent. */
  close(): Promise<void>;
}

/** Serves an app built by `createTestApp` on 127.0.0.1 and a port the OS picks. */
export async function startHttpServer(app: App): Promise<HttpTestServer> {
  const server: Server = createServer(app.yoga);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  let closing: Promise<void> | undefined;
  return {
    origin: `http://127.0.0.1:${port}`,
    port,
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      })),
  };
}

export interface ChildServer {
  readonly child: ChildProcess;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** Resolves with the first output line matching `pattern`; rejects if the process exits first or after `timeoutMs`. */
  waitForLine(pattern: RegExp, timeoutMs: number): Promise<string>;
  /** Resolves with the exit code (null when killed by a signal) once the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILLs the process if it still runs, and waits for it. Idempotent. */
  kill(): Promise<void>;
}

/** Spawns `node <args>` with exactly `env` (plus PATH), capturing its output. */
export function spawnNode(
  args: readonly string[],
  env: Readonly<Record<string, string>>,
  cwd: string,
): ChildServer {
  return spawnCommand(process.execPath, args, env, cwd);
}

/** Spawns `command <args>` (e.g. `npm start`) with exactly `env` (plus PATH), capturing its output. */
export function spawnCommand(
  command: string,
  args: readonly string[],
  env: Readonly<Record<string, string>>,
  cwd: string,
): ChildServer {
  const child = spawn(command, [...args], {
    cwd,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const listeners = new Set<() => void>();
  const onData = (chunk: Buffer) => {
    output += chunk.toString();
    for (const listener of listeners) listener();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  let running = true;
  void exited.then(() => {
    running = false;
    for (const listener of listeners) listener();
  });
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);

  return {
    child,
    output: () => output,
    exited,
    waitForLine(pattern, timeoutMs) {
      return new Promise<string>((resolve, reject) => {
        const check = () => {
          const line = output.split('\n').find((l) => pattern.test(l));
          if (line !== undefined) return finish(() => resolve(line));
          if (!running)
            return finish(() => reject(new Error(`process exited before printing ${pattern}:\n${output}`)));
        };
        const timer = setTimeout(
          () =>
            finish(() => reject(new Error(`no line matching ${pattern} within ${timeoutMs} ms:\n${output}`))),
          timeoutMs,
        );
        const finish = (settle: () => void) => {
          clearTimeout(timer);
          listeners.delete(check);
          settle();
        };
        listeners.add(check);
        check();
      });
    },
    async kill() {
      if (running) child.kill('SIGKILL');
      await exited;
      process.off('exit', killOnExit);
    },
  };
}
