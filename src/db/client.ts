/**
 * Opens the database: PostgreSQL through postgres.js when a URL is configured, otherwise an embedded
 * PGlite in a data directory. Both are exposed as the same drizzle `Db`, so repositories and services
 * never know which one they run on.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join, resolve } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import type { Logger as DrizzleLogger } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import type { Config } from '../config.js';
import { currentRequestStats } from '../observability/request-scope.js';
import * as schema from './schema.js';

export type Schema = typeof schema;
export type Db = PgDatabase<PgQueryResultHKT, Schema>;

export interface Database {
  readonly db: Db;
  readonly kind: 'postgres' | 'pglite';
  /** For the startup log line: "PostgreSQL 127.0.0.1:5432/app" or "embedded PGlite in .data". */
  readonly description: string;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  /** Connections in the postgres.js pool. @default 10 */
  readonly poolSize?: number;
  /** Give up connecting after this many seconds: an unreachable database fails requests fast. @default 2 */
  readonly connectTimeoutSeconds?: number;
  /** Server-side statement timeout in ms, so a stuck query cannot hold a request. @default 5000 */
  readonly statementTimeoutMs?: number;
  /**
   * Opens each connection's socket (postgres.js's `socket` option: a tunnel, or a test's tap that
   * closes connections on cue). @default a TCP connection to the URL's host
   */
  readonly socket?: () => Socket;
  /**
   * Seconds a pool connection waits before reconnecting after its `retries`-th failed attempt.
   * postgres.js's own default grows as 3^retries / 100 up to 20 s and counts retries across the
   * pool, so a few seconds of outage left writes failing for 16 s after PostgreSQL was back
   * (test/resilience/postgres-restart.test.ts). Ours doubles from 50 ms and stops at 1 s, with
   * jitter so the instances do not reconnect in lockstep: recovery within about a second, and a
   * stopped server sees at most one attempt per connection per second.
   * @default 0.05 · 2^retries s, at most 1 s, times a random 0.5–1
   */
  readonly backoffSeconds?: (retries: number) => number;
}

const reconnectBackoff = (retries: number): number =>
  Math.min(0.05 * 2 ** Math.min(retries, 10), 1) * (0.5 + Math.random() / 2);

// Counts every statement drizzle sends against the request that caused it (see request-scope.ts).
const countingLogger: DrizzleLogger = {
  logQuery() {
    const stats = currentRequestStats();
    if (stats !== undefined) stats.sqlStatements += 1;
  },
};

export async function createDatabase(
  config: Config['database'],
  options: DatabaseOptions = {},
): Promise<Database> {
  if (config.kind === 'postgres') {
    const client = postgres(config.url, {
      max: options.poolSize ?? 10,
      connect_timeout: options.connectTimeoutSeconds ?? 2,
      idle_timeout: 30,
      backoff: options.backoffSeconds ?? reconnectBackoff,
      onnotice: () => {},
      ...(options.socket && { socket: options.socket }),
      connection: {
        statement_timeout: options.statementTimeoutMs ?? 5_000,
        application_name: 'cacheside',
      },
    });
    const db = drizzlePostgres(client, { schema, logger: countingLogger }) as unknown as Db;
    return {
      db,
      kind: 'postgres',
      description: `PostgreSQL ${describeUrl(config.url)}`,
      close: () => client.end({ timeout: 5 }),
    };
  }

  mkdirSync(config.dataDir, { recursive: true });
  const unlock = lockDataDir(config.dataDir);
  let client: PGlite;
  try {
    checkDataDirVersion(config.dataDir);
    client = await PGlite.create({ dataDir: config.dataDir });
  } catch (error) {
    unlock();
    if (error instanceof DataDirIncompatibleError) throw error;
    // PGlite says only "PGlite failed to initialize properly": add where, what and what to do.
    throw new DataDirIncompatibleError(
      `cannot open the embedded database in ${resolve(config.dataDir)} with this build's PGlite ` +
        `(PostgreSQL ${EMBEDDED_POSTGRES_MAJOR}): ${error instanceof Error ? error.message : String(error)}. ` +
        `If another version made it or it is damaged, move it away (the demo data is seeded again) or set DATA_DIR`,
      { cause: error },
    );
  }
  const db = drizzlePglite(client, { schema, logger: countingLogger }) as unknown as Db;
  return {
    db,
    kind: 'pglite',
    description: `embedded PGlite in ${config.dataDir}`,
    close: async () => {
      if (!client.closed) await client.close();
      unlock();
    },
  };
}

export class DataDirLockedError extends Error {
  static readonly code = 'DATA_DIR_LOCKED';
  readonly code = DataDirLockedError.code;
}

/** The embedded data directory was made by another PostgreSQL major version, or cannot be opened. */
export class DataDirIncompatibleError extends Error {
  static readonly code = 'DATA_DIR_INCOMPATIBLE';
  readonly code = DataDirIncompatibleError.code;
}

/**
 * The PostgreSQL major version PGlite 0.5 runs, as its data directories' PG_VERSION says
 * (test/deploy/embedded.test.ts checks it against a fresh one, so a PGlite upgrade cannot leave it
 * wrong).
 */
export const EMBEDDED_POSTGRES_MAJOR = '18';

/**
 * PostgreSQL opens only data directories of its own major version, and PGlite reports another as a
 * bare "PGlite failed to initialize properly". Refused up front, with the path, both versions and
 * what to do.
 */
function checkDataDirVersion(dataDir: string): void {
  let found: string;
  try {
    found = readFileSync(join(dataDir, 'PG_VERSION'), 'utf8').trim();
  } catch {
    return; // a new (empty) directory
  }
  if (found === EMBEDDED_POSTGRES_MAJOR) return;
  throw new DataDirIncompatibleError(
    `the embedded database in ${resolve(dataDir)} was made by PostgreSQL ${found} (another PGlite version); ` +
      `this build's PGlite runs PostgreSQL ${EMBEDDED_POSTGRES_MAJOR}, which cannot open it. ` +
      `Move the directory away (the demo data is seeded again on the next start) or set DATA_DIR to another directory`,
  );
}

/**
 * PGlite takes no lock of its own, and two processes opening one data directory corrupt it. So the
 * first opener writes `<dataDir>.lock` with its pid (exclusive create); a second opener — `npm run
 * token` while the server runs, say — gets a clear error instead. A lock left by a dead process is
 * taken over. Returns the function that releases the lock (also run on process exit).
 */
function lockDataDir(dataDir: string): () => void {
  const lockFile = `${resolve(dataDir)}.lock`;
  const take = () => writeFileSync(lockFile, String(process.pid), { flag: 'wx' });
  try {
    take();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const holder = Number(readFileSync(lockFile, 'utf8'));
    if (Number.isInteger(holder) && holder !== process.pid && isAlive(holder)) {
      throw new DataDirLockedError(
        `${dataDir} is in use by process ${holder} (stop it first, or set DATA_DIR to another directory)`,
      );
    }
    rmSync(lockFile, { force: true });
    take();
  }
  const unlock = () => {
    process.off('exit', unlock);
    rmSync(lockFile, { force: true });
  };
  process.on('exit', unlock);
  return unlock;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** host:port/database, without credentials, for logs. */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || '5432'}${u.pathname}`;
  } catch {
    return '(unparseable DATABASE_URL)';
  }
}

/** The rows of `db.execute(sql)`: postgres.js returns the rows array itself, PGlite `{ rows }`. */
export function rowsOf<T>(result: unknown): T[] {
  if (Array.isArray(result)) return result as T[];
  return ((result as { rows?: T[] }).rows ?? []) as T[];
}
