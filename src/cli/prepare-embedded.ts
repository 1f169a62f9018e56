/**
 * The first start of the embedded default, in a process of its own: creates the PGlite data
 * directory, migrates it and seeds the demo data, then exits. src/server.ts runs it before it opens
 * the directory itself, because PGlite's WebAssembly memory grows while it initialises and seeds and
 * never shrinks: done in the server, a first start idled at 690–770 MB where a restart idles at
 * 530–590 MB. Not a command of its own (`npm start` runs it when DATA_DIR is new).
 *
 * Exit codes: 0 prepared; otherwise the server's (src/app/startup-failure.ts), the reason on stderr.
 */
import { loadConfig } from '../config.js';
import { createDatabase } from '../db/client.js';
import { ensureDemoData } from '../db/demo-data.js';
import { migrateDatabase } from '../db/migrate.js';
import { createLogger } from '../observability/logger.js';
import { explainStartupFailure } from '../app/startup-failure.js';

async function main(): Promise<number> {
  const config = loadConfig();
  if (config.database.kind !== 'pglite') return 0;
  const logger = createLogger(config.logLevel);
  const database = await createDatabase(config.database);
  try {
    await migrateDatabase(config.database, database);
    await ensureDemoData(database.db, logger);
  } finally {
    await database.close();
  }
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    const failure = explainStartupFailure(error);
    process.stderr.write(`cacheside failed to start: ${failure.message}\n`);
    process.exitCode = failure.exitCode;
  },
);
