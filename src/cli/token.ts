/**
 * `npm run token -- <userId>`: prints a bearer token for that user, valid 24 h, signed with the
 * configured AUTH_SECRET. stdout carries the token and nothing else, so
 * `TOKEN=$(npm run -s token -- 42)` works; everything else goes to stderr.
 *
 * The user must exist in the configured database (migrated first, so a fresh one gives "no user"
 * rather than "no table"): a token for a missing user would only fail later, with UNAUTHENTICATED.
 * The embedded database belongs to one process: while the server runs on it, the server is asked
 * instead (`{ user(id) { id } }` on HOST:PORT), so the README's examples work in either order.
 *
 * Exit codes: 0 printed, 1 anything else (bad or unknown id, database unreachable).
 */
import { DEFAULT_TOKEN_TTL_SECONDS, signToken } from '../auth/tokens.js';
import { loadConfig, type Config } from '../config.js';
import { ID_RULE, parseId } from '../domain/ids.js';
import { createDatabase, DataDirLockedError, type Database } from '../db/client.js';
import { migrateDatabase } from '../db/migrate.js';
import { createRepositories } from '../db/repositories.js';
import { describeError } from './describe-error.js';

const USAGE = 'usage: npm run token -- <userId>';

async function main(): Promise<number> {
  // No parseArgs: the only argument is an id, and "-1" must be reported as a bad id, not an unknown option.
  const positionals = process.argv.slice(2).filter((arg) => arg !== '--');
  if (positionals.length === 1 && (positionals[0] === '--help' || positionals[0] === '-h')) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (positionals.length !== 1) {
    return fail(`expected one user id, got ${positionals.length} arguments\n${USAGE}`);
  }
  const text = positionals[0]!;
  const userId = parseId(text);
  if (userId === undefined) {
    return fail(`user id must be ${ID_RULE}, got ${JSON.stringify(text)}`);
  }

  const config = loadConfig();
  let database: Database;
  try {
    database = await createDatabase(config.database, { poolSize: 1 });
  } catch (error) {
    if (!(error instanceof DataDirLockedError)) throw error;
    const server = serverOf(config);
    const exists = await askServer(server, userId);
    if (exists === undefined)
      return fail(`${error.message}; and no cacheside answered at ${server} to look the user up`);
    if (!exists) return fail(`no user with id ${userId} (asked the server at ${server})`);
    return print(config, userId);
  }
  let exists: boolean;
  try {
    await migrateDatabase(config.database, database);
    exists = await createRepositories(database.db).userExists(userId);
  } catch (error) {
    return fail(`could not look up user ${userId} in ${database.description}: ${describeError(error)}`);
  } finally {
    await database.close();
  }
  if (!exists) return fail(`no user with id ${userId} in ${database.description}`);
  return print(config, userId);
}

async function print(config: Config, userId: number): Promise<number> {
  if (config.auth.usingDevSecret) {
    // The server accepts it only while it also runs without AUTH_SECRET.
    process.stderr.write('warning: AUTH_SECRET is not set; signed with the built-in development secret\n');
  }
  const token = await signToken(config.auth.secret, userId, { expiresInSeconds: DEFAULT_TOKEN_TTL_SECONDS });
  process.stdout.write(`${token}\n`);
  return 0;
}

// Private:

/** The GraphQL endpoint of a server started with this configuration, as seen from here. */
function serverOf(config: Config): string {
  const { host, port } = config.http;
  const local = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  return `http://${local}:${port}/graphql`;
}

/** Whether the server at `endpoint` knows the user; undefined if it did not answer as cacheside. */
async function askServer(endpoint: string, userId: number): Promise<boolean | undefined> {
  try {
    const response = await fetch(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: `{ user(id: "${userId}") { id } }` }),
      signal: AbortSignal.timeout(5000),
    });
    const body = (await response.json()) as { data?: { user: { id: string } | null } };
    return body.data === undefined ? undefined : body.data.user !== null;
  } catch {
    return undefined;
  }
}

function fail(message: string): number {
  process.stderr.write(`error: ${message}\n`);
  return 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.exitCode = fail(describeError(error));
  },
);
