/**
 * The only module that reads the environment. Everything else receives a typed `Config` (or a part
 * of it) from the composition root, so a test builds any configuration without touching
 * `process.env`.
 *
 * Every variable's default is written once, in `DEFAULTS` below; the table of docs/contract.md
 * ("Configuration") and `.env.example` are checked against it by test/deploy/config.test.ts, and
 * components take these values from `Config` rather than keeping fallbacks of their own.
 */
import { z } from 'zod';

/**
 * The default of every variable that has one, by name. Where production differs, the production
 * value is in `PRODUCTION_DEFAULTS`. Variables without a default (DATABASE_URL, REDIS_URL,
 * REDIS_CLUSTER_NODES, AUTH_SECRET, NODE_ENV) are unset unless given.
 */
export const DEFAULTS = {
  PORT: 4000,
  HOST: '0.0.0.0',
  DATA_DIR: '.data',
  /** Longest wait on any Redis command, ms: a slow Redis costs a request at most this before PostgreSQL. */
  REDIS_COMMAND_TIMEOUT_MS: 200,
  CACHE_PREFIX: 'cs',
  CACHE_TTL_SECONDS: 3600,
  CACHE_VOLATILE_TTL_SECONDS: 300,
  CACHE_NEGATIVE_TTL_SECONDS: 60,
  /** Longer than a slow load, short enough that a crashed holder is replaced quickly. */
  CACHE_LOCK_TTL_MS: 5000,
  /** A load taking several hundred ms still happens once: waiters wait up to 3 s. */
  CACHE_LOCK_WAIT_MS: 3000,
  CACHE_STALE_GRACE_SECONDS: 300,
  /** Small: when the cache is down every read is a load, and PostgreSQL must stay responsive. */
  DB_MAX_CONCURRENT_LOADS: 4,
  OUTBOX_POLL_INTERVAL_MS: 250,
  /** Longest a mutation whose write-through failed waits for a relay to apply it (then: pending). */
  WRITE_PROPAGATION_TIMEOUT_MS: 2000,
  SHUTDOWN_DELAY_MS: 0,
  /** One sample of cached entries against PostgreSQL per this many ms; 0 turns the monitor off. */
  CONSISTENCY_SAMPLE_INTERVAL_MS: 1000,
  /** A stale cached entry this much older than its sampling counts as a violation: past every documented window. */
  CONSISTENCY_GRACE_MS: 5000,
  CACHE_L1_MAX_ENTRIES: 0,
  CACHE_L1_TTL_MS: 1000,
  /**
   * The response tier: whole answers served without executing while every entity they read is at
   * the version they read (docs/consistency.md, "The response tier"). On: the consistency, fault,
   * stampede and L1 suites pass with it on (the `response-tier` project of vitest.config.ts).
   */
  RESPONSE_CACHE: 'on',
  /** Longest a stored response lives, s: its versions are checked on every read, this bounds memory. */
  RESPONSE_CACHE_TTL_SECONDS: 30,
  /** Largest response body stored, bytes. */
  RESPONSE_CACHE_MAX_BYTES: 262_144,
  /** Most entity keys one stored response may depend on (each is checked on every read). */
  RESPONSE_CACHE_MAX_DEPENDENCIES: 1000,
  /**
   * With L1 on (CACHE_L1_MAX_ENTRIES > 0): bytes of stored answers kept in process, each served with
   * no round trip while L1's events vouch for its dependencies, for at most CACHE_L1_TTL_MS after
   * Redis did (src/cache/response/response-memo.ts); 0 checks every hit against Redis.
   */
  RESPONSE_CACHE_L1_MAX_BYTES: 16_777_216,
  CACHE_HEADERS: 'on',
  CACHE_DEBUG: 'on',
  GRAPHQL_INTROSPECTION: 'on',
  GRAPHIQL: 'on',
  LOG_LEVEL: 'info',
  /** How long a start waits for PostgreSQL to answer (retrying each second) before it gives up, s. */
  DATABASE_STARTUP_TIMEOUT_SECONDS: 30,
} as const;

/** Defaults that differ when `NODE_ENV=production`. */
export const PRODUCTION_DEFAULTS = {
  /** Behind a load balancer the instance must keep serving until it has seen /ready turn 503. */
  SHUTDOWN_DELAY_MS: 5000,
  /** Key names in the debug extension reveal ids. */
  CACHE_DEBUG: 'off',
  GRAPHQL_INTROSPECTION: 'off',
  /** Without introspection GraphiQL has no schema to show: an IDE of 400s. */
  GRAPHIQL: 'off',
} as const satisfies Partial<Record<keyof typeof DEFAULTS, unknown>>;

/** What CACHE_PREFIX may be; the cache keys (src/cache/entities/keys.ts) check the same rule. */
export const CACHE_PREFIX_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
export const CACHE_PREFIX_RULE = '1..64 characters of [A-Za-z0-9_.-]';

/** Used when AUTH_SECRET is unset outside production; the start line warns about it. */
const DEV_AUTH_SECRET = 'cacheside-dev-secret-do-not-use-in-production';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const onOff = (fallback: 'on' | 'off') =>
  z
    .enum(['on', 'off', 'true', 'false', '1', '0'])
    .optional()
    .transform((v) => {
      const value = v ?? fallback;
      return value === 'on' || value === 'true' || value === '1';
    });

const int = (min: number, max: number, fallback: number) =>
  z.coerce.number().int().min(min).max(max).optional().default(fallback);

const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));

/**
 * A connection URL of one of these schemes, with a host: a bare "Invalid URL" named no variable, a
 * mysql:// URL was taken for PostgreSQL, and ioredis read http://host:6379 as a unix socket path.
 * The message shows the value with its password masked (loadConfig masks it in the problem list too).
 */
const url = (name: string, schemes: readonly string[]) =>
  z
    .string()
    .optional()
    .superRefine((value, context) => {
      if (value === undefined) return;
      const expected = `a ${schemes.map((s) => `${s}//`).join(' or ')} URL, like ${schemes[0]}//user:password@host:port/${name === 'DATABASE_URL' ? 'database' : '0'}`;
      let parsed: URL;
      try {
        parsed = new URL(value);
      } catch {
        context.addIssue({ code: 'custom', message: `is not a URL: must be ${expected}` });
        return;
      }
      if (!schemes.includes(parsed.protocol)) {
        context.addIssue({
          code: 'custom',
          message: `has the scheme ${parsed.protocol} — must be ${expected}`,
        });
      } else if (parsed.hostname === '') {
        context.addIssue({ code: 'custom', message: `names no host: must be ${expected}` });
      }
    });

/** A URL for messages and logs: its password replaced by `***`. */
export function maskUrl(value: string): string {
  try {
    const parsed = new URL(value);
    if (parsed.password === '') return value;
    parsed.password = '***';
    return parsed.toString();
  } catch {
    // Unparseable: mask anything between "//user:" and "@".
    return value.replace(/(\/\/[^:/@]*:)[^@]*@/, '$1***@');
  }
}

function envSchema(production: boolean) {
  const d = production ? { ...DEFAULTS, ...PRODUCTION_DEFAULTS } : DEFAULTS;
  const DAY_SECONDS = 86_400;
  return z.object({
    PORT: int(0, 65535, d.PORT),
    HOST: z.string().min(1).optional().default(d.HOST),
    DATABASE_URL: optionalString.pipe(url('DATABASE_URL', ['postgres:', 'postgresql:'])),
    DATABASE_STARTUP_TIMEOUT_SECONDS: int(1, 3600, d.DATABASE_STARTUP_TIMEOUT_SECONDS),
    DATA_DIR: z.string().min(1).optional().default(d.DATA_DIR),
    REDIS_URL: optionalString.pipe(url('REDIS_URL', ['redis:', 'rediss:'])),
    REDIS_CLUSTER_NODES: optionalString,
    REDIS_COMMAND_TIMEOUT_MS: int(10, 60_000, d.REDIS_COMMAND_TIMEOUT_MS),
    AUTH_SECRET: optionalString,
    CACHE_PREFIX: z
      .string()
      .regex(CACHE_PREFIX_PATTERN, `must be ${CACHE_PREFIX_RULE}`)
      .optional()
      .default(d.CACHE_PREFIX),
    CACHE_TTL_SECONDS: int(1, 30 * DAY_SECONDS, d.CACHE_TTL_SECONDS),
    CACHE_VOLATILE_TTL_SECONDS: int(1, 30 * DAY_SECONDS, d.CACHE_VOLATILE_TTL_SECONDS),
    CACHE_NEGATIVE_TTL_SECONDS: int(1, 30 * DAY_SECONDS, d.CACHE_NEGATIVE_TTL_SECONDS),
    CACHE_LOCK_TTL_MS: int(50, 600_000, d.CACHE_LOCK_TTL_MS),
    CACHE_LOCK_WAIT_MS: int(10, 600_000, d.CACHE_LOCK_WAIT_MS),
    CACHE_STALE_GRACE_SECONDS: int(0, 30 * DAY_SECONDS, d.CACHE_STALE_GRACE_SECONDS),
    DB_MAX_CONCURRENT_LOADS: int(1, 1000, d.DB_MAX_CONCURRENT_LOADS),
    OUTBOX_POLL_INTERVAL_MS: int(10, 60_000, d.OUTBOX_POLL_INTERVAL_MS),
    WRITE_PROPAGATION_TIMEOUT_MS: int(0, 60_000, d.WRITE_PROPAGATION_TIMEOUT_MS),
    SHUTDOWN_DELAY_MS: int(0, 600_000, d.SHUTDOWN_DELAY_MS),
    CONSISTENCY_SAMPLE_INTERVAL_MS: int(0, 3_600_000, d.CONSISTENCY_SAMPLE_INTERVAL_MS),
    CONSISTENCY_GRACE_MS: int(100, 3_600_000, d.CONSISTENCY_GRACE_MS),
    CACHE_L1_MAX_ENTRIES: int(0, 10_000_000, d.CACHE_L1_MAX_ENTRIES),
    CACHE_L1_TTL_MS: int(1, 86_400_000, d.CACHE_L1_TTL_MS),
    RESPONSE_CACHE: onOff(d.RESPONSE_CACHE),
    RESPONSE_CACHE_TTL_SECONDS: int(1, DAY_SECONDS, d.RESPONSE_CACHE_TTL_SECONDS),
    RESPONSE_CACHE_MAX_BYTES: int(1024, 64 * 1024 * 1024, d.RESPONSE_CACHE_MAX_BYTES),
    RESPONSE_CACHE_MAX_DEPENDENCIES: int(1, 100_000, d.RESPONSE_CACHE_MAX_DEPENDENCIES),
    RESPONSE_CACHE_L1_MAX_BYTES: int(0, 4 * 1024 * 1024 * 1024, d.RESPONSE_CACHE_L1_MAX_BYTES),
    CACHE_HEADERS: onOff(d.CACHE_HEADERS),
    CACHE_DEBUG: onOff(d.CACHE_DEBUG),
    GRAPHQL_INTROSPECTION: onOff(d.GRAPHQL_INTROSPECTION),
    GRAPHIQL: onOff(d.GRAPHIQL),
    LOG_LEVEL: z.enum(LOG_LEVELS).optional().default(d.LOG_LEVEL),
  });
}

/** Every variable `loadConfig` reads, NODE_ENV included (docs/contract.md lists each). */
export const CONFIG_VARIABLES: readonly string[] = ['NODE_ENV', ...Object.keys(envSchema(false).shape)];

/** A `host:port` seed of a Redis Cluster, parsed from REDIS_CLUSTER_NODES. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
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
        readonly nodes: readonly HostPort[];
        readonly commandTimeoutMs: number;
      };
  readonly auth: { readonly secret: string; readonly usingDevSecret: boolean };
  readonly cache: CacheConfig;
  /** Concurrent SQL loads per instance (DB_MAX_CONCURRENT_LOADS). */
  readonly db: { readonly maxConcurrentLoads: number };
  readonly outbox: {
    /** The outbox relay polls this often while the backlog is empty, ms (OUTBOX_POLL_INTERVAL_MS). */
    readonly pollIntervalMs: number;
    /** Longest a mutation whose write-through failed waits for a relay to apply it, ms (WRITE_PROPAGATION_TIMEOUT_MS). */
    readonly propagationTimeoutMs: number;
  };
  /** How long a start waits for PostgreSQL to answer before it gives up (DATABASE_STARTUP_TIMEOUT_SECONDS). */
  readonly startup: { readonly databaseTimeoutSeconds: number };
  /** On SIGTERM, keep serving with /ready at 503 this long before closing the listener, ms (SHUTDOWN_DELAY_MS). */
  readonly shutdown: { readonly delayMs: number };
  readonly graphql: {
    /** Allow introspection (GRAPHQL_INTROSPECTION). */
    readonly introspection: boolean;
    /** Serve GraphiQL, with its cache panel, to browsers at /graphql (GRAPHIQL). */
    readonly graphiql: boolean;
  };
  readonly monitor: {
    /** Pause between consistency samples, ms; 0 = off (CONSISTENCY_SAMPLE_INTERVAL_MS). */
    readonly intervalMs: number;
    /** How long a stale entry may persist before it is a violation, ms (CONSISTENCY_GRACE_MS). */
    readonly graceMs: number;
  };
  readonly logLevel: (typeof LOG_LEVELS)[number];
}

/** The cache's settings; each names its variable, whose default is in `DEFAULTS`. */
export interface CacheConfig {
  /** Namespace of every key (CACHE_PREFIX). */
  readonly prefix: string;
  /** Logical TTL of entities, seconds (CACHE_TTL_SECONDS). */
  readonly ttlSeconds: number;
  /** Logical TTL of volatile keys (a user's post-id list), seconds (CACHE_VOLATILE_TTL_SECONDS). */
  readonly volatileTtlSeconds: number;
  /** Logical TTL of negative entries (unknown ids), seconds (CACHE_NEGATIVE_TTL_SECONDS). */
  readonly negativeTtlSeconds: number;
  /** Stampede lock lifetime, ms (CACHE_LOCK_TTL_MS). */
  readonly lockTtlMs: number;
  /** Longest a waiter waits for another caller's fill before loading itself, ms (CACHE_LOCK_WAIT_MS). */
  readonly lockWaitMs: number;
  /** How long past its logical TTL an entry may be served while PostgreSQL is down, seconds (CACHE_STALE_GRACE_SECONDS). */
  readonly staleGraceSeconds: number;
  /** In-process tier size, 0 = off (CACHE_L1_MAX_ENTRIES). */
  readonly l1MaxEntries: number;
  /** In-process tier TTL, ms (CACHE_L1_TTL_MS). */
  readonly l1TtlMs: number;
  /** The response tier; each field names its variable. */
  readonly response: ResponseTierConfig;
  /** Send X-Cache, Cache-Status and friends (CACHE_HEADERS). */
  readonly headers: boolean;
  /** Honour `x-cache-debug: 1` (CACHE_DEBUG). */
  readonly debug: boolean;
}

export interface ResponseTierConfig {
  /** RESPONSE_CACHE */
  readonly enabled: boolean;
  /** RESPONSE_CACHE_TTL_SECONDS */
  readonly ttlSeconds: number;
  /** RESPONSE_CACHE_MAX_BYTES */
  readonly maxBytes: number;
  /** RESPONSE_CACHE_MAX_DEPENDENCIES */
  readonly maxDependencies: number;
  /** RESPONSE_CACHE_L1_MAX_BYTES (used only with L1 on) */
  readonly l1MaxBytes: number;
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
      return `${name}=${JSON.stringify(maskUrl(env[name] ?? ''))}: ${issue.message}`;
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
      response: {
        enabled: e.RESPONSE_CACHE,
        ttlSeconds: e.RESPONSE_CACHE_TTL_SECONDS,
        maxBytes: e.RESPONSE_CACHE_MAX_BYTES,
        maxDependencies: e.RESPONSE_CACHE_MAX_DEPENDENCIES,
        l1MaxBytes: e.RESPONSE_CACHE_L1_MAX_BYTES,
      },
      headers: e.CACHE_HEADERS,
      debug: e.CACHE_DEBUG,
    },
    db: { maxConcurrentLoads: e.DB_MAX_CONCURRENT_LOADS },
    outbox: {
      pollIntervalMs: e.OUTBOX_POLL_INTERVAL_MS,
      propagationTimeoutMs: e.WRITE_PROPAGATION_TIMEOUT_MS,
    },
    startup: { databaseTimeoutSeconds: e.DATABASE_STARTUP_TIMEOUT_SECONDS },
    shutdown: { delayMs: e.SHUTDOWN_DELAY_MS },
    graphql: { introspection: e.GRAPHQL_INTROSPECTION, graphiql: e.GRAPHIQL },
    monitor: { intervalMs: e.CONSISTENCY_SAMPLE_INTERVAL_MS, graceMs: e.CONSISTENCY_GRACE_MS },
    logLevel: e.LOG_LEVEL,
  };
}

/** `host:port` or `[ipv6]:port`, as REDIS_CLUSTER_NODES lists them. */
export function parseHostPort(seed: string): HostPort {
  const match = /^(?:\[([^\]\s]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(seed);
  const port = match ? Number(match[3]) : NaN;
  const host = match?.[1] ?? match?.[2];
  if (host === undefined || !(port >= 1 && port <= 65535)) {
    throw new ConfigError(`REDIS_CLUSTER_NODES entries must be host:port, got ${JSON.stringify(seed)}`);
  }
  return { host, port };
}
