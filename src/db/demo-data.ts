/**
 * First run of the embedded default: an empty database gets demo data, so `npm start` answers
 * queries with something to show. A reopened data directory already has users and is left alone.
 */
import { sql } from 'drizzle-orm';
import type { Logger } from '../observability/logger.js';
import { rowsOf, type Db } from './client.js';
import { seedDatabase } from './seed.js';

/** Big enough to page through and to see batching at work, small enough to seed in about a second. */
export const DEMO_USERS = 1000;
export const DEMO_POSTS_PER_USER = 5;

export async function ensureDemoData(db: Db, logger: Logger): Promise<void> {
  const result = await db.execute<{ present: boolean }>(sql`select exists (select 1 from users) as present`);
  const rows = rowsOf<{ present: boolean }>(result);
  if (rows[0]?.present) return;
  const started = performance.now();
  const seeded = await seedDatabase(db, { users: DEMO_USERS, postsPerUser: DEMO_POSTS_PER_USER });
  logger.info(
    { users: seeded.users, posts: seeded.posts, ms: Math.round(performance.now() - started) },
    'first run: seeded the embedded database with demo data',
  );
}
