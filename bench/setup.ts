/**
 * What a run needs around it, and leaves as it found it: a database of its own (created, migrated
 * and seeded here, dropped at the end) and a Redis key prefix of its own (purged at the end), so it
 * never touches anyone else's data on a shared PostgreSQL and Redis; and the stack of cleanup steps
 * that undoes everything a run started, on Ctrl-C too.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { createDatabase } from '../src/db/client.js';
import { migrateDatabase } from '../src/db/migrate.js';
import { seedDatabase } from '../src/db/seed.js';
import { log } from './harness.js';
import type { ServerSpec } from './server.js';
import type { VariantName } from './variant-names.js';
import { POSTS_PER_USER, USERS } from './workloads.js';

const ADMIN_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
/** Signs the mix's tokens in the orchestrator and checks them in the servers. */
export const AUTH_SECRET = 'bench-secret-0123456789abcdef0123456789abcdef';

const steps: (() => Promise<unknown>)[] = [];

/** Runs `step` at cleanup, before every step registered earlier (what started last stops first). */
export function onCleanup(step: () => Promise<unknown>): void {
  steps.push(step);
}

/** Runs every registered step once; a failing step is reported and the others still run. */
export async function cleanup(): Promise<void> {
  for (const step of steps.splice(0).reverse()) {
    await step().catch((error: unknown) => console.error('cleanup:', error));
  }
}

export interface BenchEnvironment {
  /** This run's Redis key prefix. */
  readonly prefix: string;
  /** A server on this run's database and prefix; `extra` overrides any of it. */
  specOf(variant: VariantName, extra?: Partial<ServerSpec>): ServerSpec;
}

/**
 * A fresh seeded database `cs_bench_<kind><random>` and Redis prefix `bench_<kind><random>`, both
 * removed at cleanup.
 */
export async function openBenchEnvironment(kind = ''): Promise<BenchEnvironment> {
  const tag = `${kind}${randomBytes(4).toString('hex')}`;
  const prefix = `bench_${tag}`;
  log(`dataset: ${USERS} users × ${POSTS_PER_USER} posts in a fresh database; Redis prefix ${prefix}`);
  const databaseUrl = await createBenchDatabase(`cs_bench_${tag}`);
  onCleanup(() => purgeRedis(prefix));
  return {
    prefix,
    specOf: (variant, extra = {}) => ({
      variant,
      databaseUrl,
      redisUrl: REDIS_URL,
      prefix,
      authSecret: AUTH_SECRET,
      ...extra,
    }),
  };
}

/** Unlinks every key under `prefix`. */
export async function purgeRedis(prefix: string): Promise<void> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

// Private:

async function createBenchDatabase(name: string): Promise<string> {
  await admin((sql) => sql`create database ${sql(name)}`);
  onCleanup(() => admin((sql) => sql`drop database if exists ${sql(name)} with (force)`));
  const u = new URL(ADMIN_URL);
  u.pathname = `/${name}`;
  const url = u.toString();
  const database = await createDatabase({ kind: 'postgres', url }, { poolSize: 2 });
  try {
    await migrateDatabase({ kind: 'postgres', url }, database);
    const t = performance.now();
    // A fresh database and prefix: nothing to announce to a cache (the relay's run would race priming).
    await seedDatabase(database.db, { users: USERS, postsPerUser: POSTS_PER_USER, announce: false });
    log(`seeded in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  } finally {
    await database.close();
  }
  return url;
}

async function admin(run: (sql: postgres.Sql) => Promise<unknown>): Promise<void> {
  const sql = postgres(ADMIN_URL, { max: 1, onnotice: () => {}, connect_timeout: 10 });
  try {
    await run(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}
