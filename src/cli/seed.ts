/**
 * `npm run db:seed -- --users N [--posts-per-user K] [--reset]`: migrates the configured database,
 * then fills it with deterministic demo data (src/db/seed.ts). A progress bar on a terminal, an
 * occasional plain line otherwise (CI logs would turn a redrawn bar into thousands of lines).
 *
 * Exit codes: 0 seeded, 1 failed (database unreachable, already seeded without --reset, …),
 * 2 bad arguments.
 */
import { parseArgs } from 'node:util';
import { loadConfig } from '../config.js';
import { MAX_ID } from '../domain/ids.js';
import { createDatabase } from '../db/client.js';
import { migrateDatabase } from '../db/migrate.js';
import { DEFAULT_POSTS_PER_USER, SeedError, seedDatabase } from '../db/seed.js';
import { describeError } from './describe-error.js';

const USAGE = `usage: npm run db:seed -- --users N [--posts-per-user K] [--reset]

  --users N            users to create (ids 1..N), each with a profile
  --posts-per-user K   posts per user (default ${DEFAULT_POSTS_PER_USER})
  --reset              empty users, profiles and posts first instead of refusing a seeded database
`;

class UsageError extends Error {}

interface Arguments {
  readonly users: number;
  readonly postsPerUser: number;
  readonly reset: boolean;
}

async function main(): Promise<number> {
  let args: Arguments | 'help';
  try {
    args = parseArguments(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`error: ${error.message}\n(npm run db:seed -- --help shows the options)\n`);
    return 2;
  }
  if (args === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }

  const config = loadConfig();
  // Big statements on a busy server may be slower than the API's 5 s statement timeout.
  const database = await createDatabase(config.database, { poolSize: 1, statementTimeoutMs: 300_000 });
  try {
    if (database.kind === 'pglite') {
      process.stderr.write(
        `note: ${database.description} belongs to one process at a time: stop the server first\n`,
      );
    }
    await migrateDatabase(config.database, database);
    process.stderr.write(
      `seeding ${database.description}: ${args.users} users, ${args.postsPerUser} posts each\n`,
    );

    const started = performance.now();
    const progress = createProgress(started);
    let result;
    try {
      result = await seedDatabase(database.db, {
        users: args.users,
        postsPerUser: args.postsPerUser,
        reset: args.reset,
        onProgress: progress.update,
      });
    } finally {
      progress.finish();
    }
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    process.stdout.write(`seeded ${result.users} users and ${result.posts} posts in ${seconds} s\n`);
    if (args.reset) {
      process.stderr.write('note: a cache may still hold the replaced rows: npm run cache:purge -- --all\n');
    }
    return 0;
  } catch (error) {
    if (error instanceof SeedError && error.code === 'SEED_NOT_EMPTY') {
      process.stderr.write(`error: ${database.description} already has users; --reset replaces them\n`);
      return 1;
    }
    throw error;
  } finally {
    await database.close();
  }
}

// Private:

function parseArguments(argv: string[]): Arguments | 'help' {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        users: { type: 'string' },
        'posts-per-user': { type: 'string' },
        reset: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (error) {
    // parseArgs names the offending option in its message: "Unknown option '--user'".
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  const { values } = parsed;
  if (values.help) return 'help';
  if (values.users === undefined) throw new UsageError('--users is required');
  const users = integerOption('--users', values.users, 1);
  const postsPerUser =
    values['posts-per-user'] === undefined
      ? DEFAULT_POSTS_PER_USER
      : integerOption('--posts-per-user', values['posts-per-user'], 0);
  if (users * postsPerUser > MAX_ID) {
    throw new UsageError(
      `--users × --posts-per-user must be at most ${MAX_ID} (post ids are integers), got ${users * postsPerUser}`,
    );
  }
  return { users, postsPerUser, reset: values.reset };
}

function integerOption(name: string, text: string, min: number): number {
  const value = /^[0-9]{1,10}$/.test(text) ? Number(text) : NaN;
  if (!(value >= min && value <= MAX_ID)) {
    throw new UsageError(`${name} must be an integer in ${min}..${MAX_ID}, got ${JSON.stringify(text)}`);
  }
  return value;
}

interface Progress {
  update(done: number, total: number): void;
  finish(): void;
}

function createProgress(started: number): Progress {
  const out = process.stderr;
  const tty = out.isTTY === true;
  let lastDraw = 0;
  let lastTenth = 0;
  let drawn = false;
  return {
    update(done, total) {
      const fraction = total === 0 ? 1 : done / total;
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      if (tty) {
        // Redraw at most ten times a second: a batch takes milliseconds, the terminal is slower.
        const now = performance.now();
        if (done < total && now - lastDraw < 100) return;
        lastDraw = now;
        const width = Math.max(10, Math.min(40, (out.columns ?? 80) - 50));
        const filled = Math.round(fraction * width);
        const bar = `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
        out.write(
          `\r${bar} ${(fraction * 100).toFixed(0).padStart(3)}%  ${done}/${total} rows  ${seconds} s\x1b[K`,
        );
        drawn = true;
        return;
      }
      const tenth = Math.floor(fraction * 10);
      if (tenth > lastTenth) {
        lastTenth = tenth;
        out.write(`${tenth * 10}% (${done}/${total} rows, ${seconds} s)\n`);
      }
    },
    finish() {
      if (drawn) out.write('\n');
    },
  };
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`error: seeding failed: ${describeError(error)}\n`);
    process.exitCode = 1;
  },
);
