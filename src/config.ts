/**
 * The only module that reads the environment. Everything else receives a typed `Config` (or a part
 * of it) from the composition root, so a test builds any configuration without touching
 * `process.env`.
 */
import { z } from 'zod';

const DEV_AUTH_SECRET = 'cacheside-dev-secret-do-not-use-in-production';

const onOff = (fallback: boolean) =>
  z
    .enum(['on', 'off', 'true', 'false', '1', '0'])
    .optional()
    .transform((v) => (v === undefined ? fallback : v === 'on' || v === 'true' || v === '1'));

const int = (min: number, max: number, fallback: number) =>
  z.coerce.number().int().min(min).max(max).optional().default(fallback);

const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));

function envSchema(production: boolean) {
  return z.object({
    PORT: int(0, 65535, 4000),
    HOST: z.string().min(1).optional().default('0.0.0.0'),
    DATABASE_URL: optionalString,
    DATA_DIR: z.string().min(1).optional().default('.data'),
    REDIS_URL: optionalString,
    REDIS_CLUSTER_NODES: optionalString,
    REDIS_COMMAND_TIMEOUT_MS: int(10, 60_000, 200),
    AUTH_SECRET: optionalString,
    CACHE_PREFIX: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be 1..64 characters of [A-Za-z0-9_.-]')
      .optional()
      .default('cs'),
    CACHE_TTL_SECONDS: int(1, 30 * 86_400, 3600),
    CACHE_VOLATILE_TTL_SECONDS: int(1, 30 * 86_400, 300),
    CACHE_NEGATIVE_TTL_SECONDS: int(1, 30 * 86_400, 60),
    CACHE_LOCK_TTL_MS: int(50, 600_000, 5000),
    CACHE_LOCK_WAIT_MS: int(10, 600_000, 3000),
    CACHE_STALE_GRACE_SECONDS: int(0, 30 * 86_400, 300),
    DB_MAX_CONCURRENT_LOADS: int(1, 1000, 4),
    OUTBOX_POLL_INTERVAL_MS: int(10, 60_000, 250),
    // Behind a load balancer the instance must keep serving until it has seen /ready turn 503.
    SHUTDOWN_DELAY_MS: int(0, 600_000, production ? 5000 : 0),
    CACHE_L1_MAX_ENTRIES: int(0, 10_000_000, 0),
    CACHE_L1_TTL_MS: int(1, 86_400_000, 1000),
    CACHE_HEADERS: onOff(true),
    CACHE_DEBUG: onOff(!production),
    GRAPHQL_INTROSPECTION: onOff(!production),
    LOG_LEVEL: z
      .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
      .optional()
      .default('info'),
  });
}

export interface Config {
  readonly production: boolean;
  readonly http: { readonly port: number; readonly host: string };
  readonly database:
    | { readonly kind: 'postgres'; readonly url: string }
    | { readonly kind: 'pglite'; readonly dataDir: string };
  readonly redis:
    | { readonly kind: 'memory' }
    | { readonly kind: 'single'; readonly url: string; readonly commandTimeoutMs: number }
    | {
        readonly kind: 'cluster';
        readonly nodes: readonly { host: string; port: number }[];
        readonly commandTimeoutMs: number;
      };
  readonly auth: { readonly secret: string; readonly usingDevSecret: boolean };
  readonly cache: CacheConfig;
  readonly db: { readonly maxConcurrentLoads: number };
  /** The outbox relay polls for unpublished events this often (ms) while the backlog is empty. @default 250 */
  readonly outbox: { readonly pollIntervalMs: number };
  /** On SIGTERM, keep serving (with /ready at 503) this long before closing the listener, ms. @default 5000 in production, else 0 */
  readonly shutdown: { readonly delayMs: number };
  readonly graphql: { readonly introspection: boolean };
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

export interface CacheConfig {
  /** Namespace of every key. @default "cs" */
  readonly prefix: string;
  /** Logical TTL of entities, seconds. @default 3600 */
  readonly ttlSeconds: number;
  /** Logical TTL of volatile keys (a user's post-id list), seconds. @default 300 */
  readonly volatileTtlSeconds: number;
  /** Logical TTL of negative entries (unknown ids), seconds. @default 60 */
  readonly negativeTtlSeconds: number;
  /** Stampede lock lifetime, ms: longer than a slow load, short enough to recover from a dead holder. @default 5000 */
  readonly lockTtlMs: number;
  /** Longest a waiter waits for another caller's fill before loading itself, ms. @default 3000 */
  readonly lockWaitMs: number;
  /** How long past its logical TTL an entry may be served while PostgreSQL is down, seconds. @default 300 */
  readonly staleGraceSeconds: number;
  /** In-process tier size (0 = off). @default 0 */
  readonly l1MaxEntries: number;
  /** In-process tier TTL, ms. @default 1000 */
  readonly l1TtlMs: number;
  /** Send X-Cache, Cache-Status and friends. @default true */
  readonly headers: boolean;
  /** Honour `x-cache-debug: 1`. @default true unless production */
  readonly debug: boolean;
}

export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ConfigError';
  }
}

/** Parses an environment (by default the process's) into a Config, or throws a ConfigError naming every bad variable. */
export function loadConfig(env: Readonly<Record<string, string | undefined>> = process.env): Config {
  const production = env.NODE_ENV === 'production';
  const parsed = envSchema(production).safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const name = issue.path.join('.');
      return `${name}=${JSON.stringify(env[name] ?? '')}: ${issue.message}`;
    });
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  }
  const e = parsed.data;

  if (production && e.AUTH_SECRET === undefined) {
    throw new ConfigError('AUTH_SECRET is required when NODE_ENV=production');
  }
  if (e.AUTH_SECRET !== undefined && e.AUTH_SECRET.length < 32) {
    throw new ConfigError(`AUTH_SECRET must be at least 32 characters, got ${e.AUTH_SECRET.length}`);
  }

  let redis: Config['redis'] = { kind: 'memory' };
  if (e.REDIS_CLUSTER_NODES !== undefined) {
    redis = {
      kind: 'cluster',
      nodes: e.REDIS_CLUSTER_NODES.split(',').map((seed) => parseHostPort(seed.trim())),
      commandTimeoutMs: e.REDIS_COMMAND_TIMEOUT_MS,
    };
  } else if (e.REDIS_URL !== undefined) {
    redis = { kind: 'single', url: e.REDIS_URL, commandTimeoutMs: e.REDIS_COMMAND_TIMEOUT_MS };
  }

  return {
    production,
    http: { port: e.PORT, host: e.HOST },
    database:
      e.DATABASE_URL !== undefined
        ? { kind: 'postgres', url: e.DATABASE_URL }
        : { kind: 'pglite', dataDir: e.DATA_DIR },
    redis,
    auth: { secret: e.AUTH_SECRET ?? DEV_AUTH_SECRET, usingDevSecret: e.AUTH_SECRET === undefined },
    cache: {
      prefix: e.CACHE_PREFIX,
      ttlSeconds: e.CACHE_TTL_SECONDS,
      volatileTtlSeconds: e.CACHE_VOLATILE_TTL_SECONDS,
      negativeTtlSeconds: e.CACHE_NEGATIVE_TTL_SECONDS,
      lockTtlMs: e.CACHE_LOCK_TTL_MS,
      lockWaitMs: e.CACHE_LOCK_WAIT_MS,
      staleGraceSeconds: e.CACHE_STALE_GRACE_SECONDS,
      l1MaxEntries: e.CACHE_L1_MAX_ENTRIES,
      l1TtlMs: e.CACHE_L1_TTL_MS,
      headers: e.CACHE_HEADERS,
      debug: e.CACHE_DEBUG,
    },
    db: { maxConcurrentLoads: e.DB_MAX_CONCURRENT_LOADS },
    outbox: { pollIntervalMs: e.OUTBOX_POLL_INTERVAL_MS },
    shutdown: { delayMs: e.SHUTDOWN_DELAY_MS },
    graphql: { introspection: e.GRAPHQL_INTROSPECTION },
    logLevel: e.LOG_LEVEL,
  };
}

function parseHostPort(seed: string): { host: string; port: number } {
  const match = /^([^:\s]+):(\d{1,5})$/.exec(seed);
  const port = match ? Number(match[2]) : NaN;
  if (!match || port < 1 || port > 65535) {
    throw new ConfigError(`REDIS_CLUSTER_NODES entries must be host:port, got ${JSON.stringify(seed)}`);
  }
  return { host: match[1]!, port };
}
