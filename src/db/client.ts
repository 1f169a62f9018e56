/**
 * Opens the database: PostgreSQL through postgres.js when a URL is configured, otherwise an embedded
 * PGlite in a data directory. Both are exposed as the same drizzle `Db`, so repositories and services
 * never know which one they run on.
 */
import { mkdirSync } from 'node:fs';
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
  /** Give up connecting after this many seconds. @default 5 */
  readonly connectTimeoutSeconds?: number;
  /** Server-side statement timeout in ms, so a stuck query cannot hold a request. @default 10000 */
  readonly statementTimeoutMs?: number;
}

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
      connect_timeout: options.connectTimeoutSeconds ?? 5,
      idle_timeout: 30,
      onnotice: () => {},
      connection: {
        statement_timeout: options.statementTimeoutMs ?? 10_000,
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
  const client = await PGlite.create({ dataDir: config.dataDir });
  const db = drizzlePglite(client, { schema, logger: countingLogger }) as unknown as Db;
  return {
    db,
    kind: 'pglite',
    description: `embedded PGlite in ${config.dataDir}`,
    close: async () => {
      if (!client.closed) await client.close();
    },
  };
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
