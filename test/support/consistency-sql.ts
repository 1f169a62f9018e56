/**
 * PostgreSQL as the consistency tests see it from outside the API: statements on the test
 * database's own connection (no app, no request, no cache), the outbox, and the relay driven by hand.
 */
import { sql, type SQL } from 'drizzle-orm';
import type { TestApp } from './app.js';

/** Runs a statement on the test database's own connection (no app, no request, no cache). */
export async function rows<T>(t: TestApp, statement: SQL): Promise<T[]> {
  const result: unknown = await t.testDb.database.db.execute(statement);
  // postgres.js answers the rows array itself.
  return (Array.isArray(result) ? result : ((result as { rows?: T[] }).rows ?? [])) as T[];
}

export async function profileRow(t: TestApp, userId: number) {
  const [row] = await rows<{ version: number; bio: string; display_name: string }>(
    t,
    sql`select version, bio, display_name from profiles where user_id = ${userId}`,
  );
  if (row === undefined) throw new Error(`no profile row for user ${userId}`);
  return { version: Number(row.version), bio: row.bio, displayName: row.display_name };
}

export async function outboxRows(t: TestApp, entity: string, entityId: number) {
  const found = await rows<{ id: string; version: string; published_at: Date | null }>(
    t,
    sql`select id, version, published_at from outbox where entity = ${entity} and entity_id = ${entityId} order by id`,
  );
  return found.map((r) => ({
    id: Number(r.id),
    version: Number(r.version),
    published: r.published_at !== null,
  }));
}

export async function lastOutboxId(t: TestApp): Promise<number> {
  const [row] = await rows<{ last: string | null }>(t, sql`select max(id) as last from outbox`);
  return Number(row?.last ?? 0);
}

export async function unpublishedCount(t: TestApp): Promise<number> {
  const [row] = await rows<{ n: number }>(
    t,
    sql`select count(*)::int as n from outbox where published_at is null`,
  );
  return Number(row?.n ?? 0);
}

/** Runs the relay until the backlog is empty; returns the number of events it published. */
export async function drainOutbox(t: TestApp): Promise<number> {
  let total = 0;
  for (;;) {
    const published = await t.app.relay.runOnce();
    if (published === 0) return total;
    total += published;
  }
}

/**
 * Inserts a user (and a profile) by plain SQL, as an outside writer would: its triggers bump the user
 * directory and write the outbox row the relay turns into a tombstone — unless `triggers` is false,
 * a bulk load behind the cache's back (no version bump, no outbox row).
 */
export async function insertUser(
  t: TestApp,
  name: string,
  { triggers = true }: { triggers?: boolean } = {},
): Promise<void> {
  await t.testDb.database.db.transaction(async (tx) => {
    if (!triggers) await tx.execute(sql`set local session_replication_role = replica`);
    await tx.execute(
      sql`with u as (insert into users (name, email) values (${name}, ${`${name.replaceAll(' ', '.')}@example.com`}) returning id)
          insert into profiles (user_id, display_name) select id, 'added' from u`,
    );
  });
}
