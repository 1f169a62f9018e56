/**
 * A private, migrated PostgreSQL database per test file, so files run in parallel without seeing
 * each other's rows. The admin URL is the suite's DATABASE_URL (docs/contract.md, "Commands"), whose database is only
 * used to CREATE and DROP the test's own.
 */
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { createDatabase, type Database, type DatabaseOptions } from '../../src/db/client.js';
import { migrateDatabase } from '../../src/db/migrate.js';

export const ADMIN_DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface TestDatabase {
  /** Connection URL of the fresh database. */
  readonly url: string;
  /** Its name: cs_t_<label>_<random>. */
  readonly name: string;
  readonly database: Database;
  /** Closes the connections and drops the database (WITH (FORCE): stray connections do not block it). */
  drop(): Promise<void>;
}

/** Creates `cs_t_<label>_<random>`, applies the migrations and opens it. */
export async function createTestDatabase(label: string, options: DatabaseOptions = {}): Promise<TestDatabase> {
  const safeLabel = label.toLowerCase().replace(/[^a-z0-9_]/g, '_').slice(0, 30);
  const name = `cs_t_${safeLabel}_${randomBytes(5).toString('hex')}`;
  await admin((sql) => sql`create database ${sql(name)}`);

  const url = withDatabase(ADMIN_DATABASE_URL, name);
  const config = { kind: 'postgres', url } as const;
  let database: Database | undefined;
  try {
    database = await createDatabase(config, { poolSize: 4, ...options });
    await migrateDatabase(config, database);
  } catch (error) {
    await database?.close();
    await admin((sql) => sql`drop database if exists ${sql(name)} with (force)`);
    throw error;
  }

  const opened = database;
  let dropped = false;
  return {
    url,
    name,
    database: opened,
    async drop() {
      if (dropped) return;
      dropped = true;
      await opened.close();
      await admin((sql) => sql`drop database if exists ${sql(name)} with (force)`);
    },
  };
}

// Private:

/** One short-lived admin connection per call: nothing is left open between tests. */
async function admin(run: (sql: postgres.Sql) => Promise<unknown>): Promise<void> {
  const sql = postgres(ADMIN_DATABASE_URL, { max: 1, onnotice: () => {}, connect_timeout: 10 });
  try {
    await run(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}
