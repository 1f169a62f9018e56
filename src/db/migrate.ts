/**
 * Applies the drizzle-kit migrations in `drizzle/`. On PostgreSQL it first takes a session-level
 * advisory lock on a dedicated connection, so that instances starting together apply each migration
 * once: the second waits, then finds nothing left to do. PGlite belongs to one process and needs none.
 */
import { fileURLToPath } from 'node:url';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import type { PgliteDatabase } from 'drizzle-orm/pglite';
import postgres from 'postgres';
import type { Config } from '../config.js';
import type { Database } from './client.js';

/** `drizzle/` at the package root, from both `src/db/` (tsx, tests) and `dist/db/` (built). */
export const MIGRATIONS_FOLDER = fileURLToPath(new URL('../../drizzle', import.meta.url));

/** An arbitrary constant shared by every instance: the advisory lock key for migrations. */
const MIGRATION_LOCK_KEY = 7_413_220_191;

export async function migrateDatabase(config: Config['database'], database: Database): Promise<void> {
  if (config.kind === 'pglite') {
    await migratePglite(database.db as unknown as PgliteDatabase, { migrationsFolder: MIGRATIONS_FOLDER });
    return;
  }
  // max: 1 pins every statement, the lock included, to one session.
  const client = postgres(config.url, { max: 1, onnotice: () => {}, connect_timeout: 10 });
  try {
    await client`select pg_advisory_lock(${MIGRATION_LOCK_KEY})`;
    try {
      await migratePostgres(drizzlePostgres(client), { migrationsFolder: MIGRATIONS_FOLDER });
    } finally {
      await client`select pg_advisory_unlock(${MIGRATION_LOCK_KEY})`;
    }
  } finally {
    await client.end({ timeout: 5 });
  }
}
