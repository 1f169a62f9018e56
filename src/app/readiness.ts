/**
 * Readiness (docs/contract.md, "Endpoints"): ready when PostgreSQL answers and every migration is applied; Redis being
 * down makes the instance `degraded` but still ready, because the cache is not primary storage and
 * the instance answers from PostgreSQL. A draining instance (SIGTERM received) reports 503 so the
 * load balancer stops sending it new requests while in-flight ones finish.
 */
import { sql } from 'drizzle-orm';
import { readMigrationFiles } from 'drizzle-orm/migrator';
import type { CacheStore } from '../cache/store/contract.js';
import { rowsOf, type Db } from '../db/client.js';
import { MIGRATIONS_FOLDER } from '../db/migrate.js';

export interface CheckResult {
  readonly ok: boolean;
  readonly detail?: string;
}

export interface ReadinessReport {
  readonly status: 'ready' | 'degraded' | 'unavailable' | 'draining';
  readonly checks: { database: CheckResult; migrations: CheckResult; cache: CheckResult };
}

export interface ReadinessDeps {
  readonly db: Db;
  readonly store: CacheStore;
  /** The request path's breaker: while it is not closed the instance is degraded. */
  readonly breaker?: { readonly state: string };
  /** A key the probe reads; its absence is fine, the round trip is the point. */
  readonly probeKey: string;
  readonly isDraining: () => boolean;
  /** Longest a check may take before it counts as failed, ms. @default 1000 */
  readonly timeoutMs?: number;
}

export interface ReadinessProbe {
  check(): Promise<ReadinessReport>;
}

export function createReadinessProbe(deps: ReadinessDeps): ReadinessProbe {
  const timeoutMs = deps.timeoutMs ?? 1000;
  const expectedMigrations = readMigrationFiles({ migrationsFolder: MIGRATIONS_FOLDER }).length;

  const database = async (): Promise<CheckResult> => {
    await deps.db.execute(sql`select 1`);
    return { ok: true };
  };
  const migrations = async (): Promise<CheckResult> => {
    const rows = rowsOf<{ applied: number | string }>(
      await deps.db.execute(sql`
        select case when to_regclass('drizzle.__drizzle_migrations') is null then 0
                    else (select count(*) from drizzle.__drizzle_migrations) end as applied`),
    );
    const applied = Number(rows[0]?.applied ?? 0);
    return applied >= expectedMigrations
      ? { ok: true }
      : {
          ok: false,
          detail: `${expectedMigrations - applied} of ${expectedMigrations} migrations not applied`,
        };
  };
  const cache = async (): Promise<CheckResult> => {
    await deps.store.ttlMany([deps.probeKey]);
    const state = deps.breaker?.state ?? 'closed';
    return state === 'closed' ? { ok: true } : { ok: false, detail: `Redis answers; circuit ${state}` };
  };

  return {
    async check() {
      const [db, migrated, cached] = await Promise.all([
        guarded(database, timeoutMs),
        guarded(migrations, timeoutMs),
        guarded(cache, timeoutMs),
      ]);
      const checks = { database: db, migrations: migrated, cache: cached };
      const status = deps.isDraining()
        ? 'draining'
        : !db.ok || !migrated.ok
          ? 'unavailable'
          : cached.ok
            ? 'ready'
            : 'degraded';
      return { status, checks };
    },
  };
}

/** Runs a check with a deadline; a failure or a timeout is a failed check, never a thrown error. */
async function guarded(check: () => Promise<CheckResult>, timeoutMs: number): Promise<CheckResult> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<CheckResult>((resolve) => {
    timer = setTimeout(() => resolve({ ok: false, detail: `no answer within ${timeoutMs} ms` }), timeoutMs);
  });
  try {
    return await Promise.race([
      check().catch((error: unknown) => ({
        ok: false,
        detail: error instanceof Error ? error.message.split('\n')[0]! : String(error),
      })),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}
