/**
 * The configuration (src/config.ts) and its documentation agree: every variable `loadConfig` reads
 * has one row in docs/contract.md ("Configuration") whose default is the one `DEFAULTS` (and
 * `PRODUCTION_DEFAULTS`) writes, and `.env.example` lists each variable with that default. The
 * defaults live in one place; the documents are checked against it rather than trusted.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  CONFIG_VARIABLES,
  ConfigError,
  DEFAULTS,
  PRODUCTION_DEFAULTS,
  loadConfig,
  parseHostPort,
} from '../../src/config.js';
import { ROOT } from '../support/http-server.js';

const read = (path: string) => readFileSync(`${ROOT}/${path}`, 'utf8');
const SECRET = 'a-production-secret-of-at-least-32-chars';

/** The rows of the table under `## Configuration`: variable → default cell. */
function contractTable(): Map<string, string> {
  const text = read('docs/contract.md');
  const section = text.slice(text.indexOf('\n## Configuration'), text.indexOf('\n## Endpoints'));
  const rows = new Map<string, string>();
  for (const line of section.split('\n')) {
    const cells = line.split('|').map((cell) => cell.trim());
    const name = /^`([A-Z0-9_]+)`$/.exec(cells[1] ?? '')?.[1];
    if (name !== undefined) rows.set(name, cells[3] ?? '');
  }
  return rows;
}

/** What the contract's default cell must say for `name`. */
function documentedDefault(name: string): string {
  const base = (DEFAULTS as Record<string, unknown>)[name];
  const production = (PRODUCTION_DEFAULTS as Record<string, unknown>)[name];
  if (base === undefined) return 'unset';
  if (production !== undefined) return `\`${String(production)}\` in production, else \`${String(base)}\``;
  return `\`${String(base)}\``;
}

describe('docs/contract.md, Configuration', () => {
  const table = contractTable();

  it('has one row for every variable loadConfig reads, and no other', () => {
    expect([...table.keys()].sort()).toEqual([...CONFIG_VARIABLES].sort());
  });

  it.each([...CONFIG_VARIABLES])('%s: its default is the one src/config.ts writes', (name) => {
    expect(table.get(name)).toBe(documentedDefault(name));
  });
});

describe('.env.example', () => {
  const lines = read('.env.example').split('\n');
  const assigned = new Map<string, { value: string; commented: boolean }>();
  for (const line of lines) {
    const match = /^(# )?([A-Z0-9_]+)=(.*)$/.exec(line);
    if (match) assigned.set(match[2]!, { value: match[3]!, commented: match[1] !== undefined });
  }

  it('names every variable', () => {
    expect([...assigned.keys()].sort()).toEqual([...CONFIG_VARIABLES].sort());
  });

  it('sets, uncommented, exactly the variables whose default is the same everywhere, to that default', () => {
    for (const [name, { value, commented }] of assigned) {
      const base = (DEFAULTS as Record<string, unknown>)[name];
      const sameEverywhere = base !== undefined && !(name in PRODUCTION_DEFAULTS);
      expect(commented, name).toBe(!sameEverywhere);
      if (sameEverywhere) expect(value, name).toBe(String(base));
    }
  });
});

describe('loadConfig', () => {
  it('applies DEFAULTS when nothing is set', () => {
    const config = loadConfig({});
    expect(config.http).toEqual({ port: DEFAULTS.PORT, host: DEFAULTS.HOST });
    expect(config.database).toEqual({ kind: 'pglite', dataDir: DEFAULTS.DATA_DIR });
    expect(config.redis).toEqual({ kind: 'memory' });
    expect(config.cache).toEqual({
      prefix: DEFAULTS.CACHE_PREFIX,
      ttlSeconds: DEFAULTS.CACHE_TTL_SECONDS,
      volatileTtlSeconds: DEFAULTS.CACHE_VOLATILE_TTL_SECONDS,
      negativeTtlSeconds: DEFAULTS.CACHE_NEGATIVE_TTL_SECONDS,
      lockTtlMs: DEFAULTS.CACHE_LOCK_TTL_MS,
      lockWaitMs: DEFAULTS.CACHE_LOCK_WAIT_MS,
      staleGraceSeconds: DEFAULTS.CACHE_STALE_GRACE_SECONDS,
      l1MaxEntries: DEFAULTS.CACHE_L1_MAX_ENTRIES,
      l1TtlMs: DEFAULTS.CACHE_L1_TTL_MS,
      response: {
        enabled: true,
        ttlSeconds: DEFAULTS.RESPONSE_CACHE_TTL_SECONDS,
        maxBytes: DEFAULTS.RESPONSE_CACHE_MAX_BYTES,
        maxDependencies: DEFAULTS.RESPONSE_CACHE_MAX_DEPENDENCIES,
        l1MaxBytes: DEFAULTS.RESPONSE_CACHE_L1_MAX_BYTES,
      },
      headers: true,
      debug: true,
    });
    expect(config.db.maxConcurrentLoads).toBe(DEFAULTS.DB_MAX_CONCURRENT_LOADS);
    expect(config.outbox.pollIntervalMs).toBe(DEFAULTS.OUTBOX_POLL_INTERVAL_MS);
    expect(config.shutdown.delayMs).toBe(DEFAULTS.SHUTDOWN_DELAY_MS);
    expect(config.graphql.introspection).toBe(true);
    expect(config.logLevel).toBe(DEFAULTS.LOG_LEVEL);
  });

  it('applies PRODUCTION_DEFAULTS under NODE_ENV=production', () => {
    const config = loadConfig({ NODE_ENV: 'production', AUTH_SECRET: SECRET });
    expect(config.shutdown.delayMs).toBe(PRODUCTION_DEFAULTS.SHUTDOWN_DELAY_MS);
    expect(config.cache.debug).toBe(false);
    expect(config.graphql.introspection).toBe(false);
  });

  it('parses REDIS_CLUSTER_NODES once, into host and port, IPv6 included', () => {
    const config = loadConfig({ REDIS_CLUSTER_NODES: '10.0.0.1:7000, redis-b:7001,[::1]:7002' });
    expect(config.redis).toEqual({
      kind: 'cluster',
      nodes: [
        { host: '10.0.0.1', port: 7000 },
        { host: 'redis-b', port: 7001 },
        { host: '::1', port: 7002 },
      ],
      commandTimeoutMs: DEFAULTS.REDIS_COMMAND_TIMEOUT_MS,
    });
  });

  it.each(['10.0.0.1', ':7000', '10.0.0.1:0', '10.0.0.1:65536', 'a:b:7000', '[::1]', 'host :7000'])(
    'refuses the cluster seed %j, naming the variable and the value',
    (seed) => {
      expect(() => parseHostPort(seed)).toThrow(ConfigError);
      expect(() => parseHostPort(seed)).toThrow(
        `REDIS_CLUSTER_NODES entries must be host:port, got ${JSON.stringify(seed)}`,
      );
    },
  );
});
