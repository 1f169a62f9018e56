/**
 * `npm run db:migrate`: applies the migrations in drizzle/ to the configured database (DATABASE_URL,
 * or the embedded PGlite in DATA_DIR) and says which ones it applied. Safe to run while other
 * instances start: migrateDatabase serialises on an advisory lock.
 *
 * Exit codes: 0 done (or nothing to do), 1 failed.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import { loadConfig } from '../config.js';
import { createDatabase, type Database } from '../db/client.js';
import { MIGRATIONS_FOLDER, migrateDatabase } from '../db/migrate.js';
import { describeError } from './describe-error.js';
import { rowsOf } from '../db/client.js';

interface JournalEntry {
  readonly tag: string;
  /** drizzle-kit's folder timestamp, which the migrator stores as `created_at`: how we match them up. */
  readonly when: number;
}

async function main(): Promise<number> {
  if (process.argv.length > 2) {
    process.stderr.write(
      `error: db:migrate takes no arguments, got ${JSON.stringify(process.argv.slice(2).join(' '))}\n`,
    );
    return 1;
  }
  const config = loadConfig();
  const journal = readJournal();
  const database = await createDatabase(config.database, { poolSize: 1 });
  try {
    process.stderr.write(`migrating ${database.description}\n`);
    const before = await appliedMarks(database);
    await migrateDatabase(config.database, database);
    const after = await appliedMarks(database);

    const applied = journal.filter((entry) => after.has(entry.when) && !before.has(entry.when));
    const pending = journal.filter((entry) => !after.has(entry.when));
    if (applied.length === 0) {
      process.stdout.write(`up to date: ${after.size} migration(s) applied, none new\n`);
    } else {
      process.stdout.write(
        `applied ${applied.length} migration(s): ${applied.map((e) => e.tag).join(', ')}\n`,
      );
    }
    // The migrator only applies migrations newer than the newest it has applied: an older one added
    // later (a merge of two branches) is silently skipped, so say so.
    if (pending.length > 0) {
      process.stderr.write(
        `error: not applied (older than the newest applied migration): ${pending.map((e) => e.tag).join(', ')}\n`,
      );
      return 1;
    }
    return 0;
  } finally {
    await database.close();
  }
}

// Private:

function readJournal(): JournalEntry[] {
  const text = readFileSync(join(MIGRATIONS_FOLDER, 'meta', '_journal.json'), 'utf8');
  return (JSON.parse(text) as { entries: JournalEntry[] }).entries;
}

/** The `created_at` marks of the migrations already applied; none before the first run. */
async function appliedMarks(database: Database): Promise<Set<number>> {
  const present = rowsOf<{ present: boolean }>(
    await database.db.execute(sql`select to_regclass('drizzle.__drizzle_migrations') is not null as present`),
  );
  if (present[0]?.present !== true) return new Set();
  const rows = rowsOf<{ created_at: string | number }>(
    await database.db.execute(sql`select created_at from drizzle.__drizzle_migrations`),
  );
  return new Set(rows.map((row) => Number(row.created_at)));
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`error: migration failed: ${describeError(error)}\n`);
    process.exitCode = 1;
  },
);
