/**
 * The relational model (docs/contract.md, "Data"). PostgreSQL is the source of truth; the cache only ever holds
 * copies of these rows, each tagged with the row's `version` so a copy can be ordered against a write.
 */
import { sql } from 'drizzle-orm';
import { bigint, index, integer, pgTable, text, timestamp } from 'drizzle-orm/pg-core';

const timestamptz = (name: string) => timestamp(name, { precision: 3, withTimezone: true, mode: 'date' });

export const users = pgTable('users', {
  id: integer('id').primaryKey().generatedByDefaultAsIdentity(),
  name: text('name').notNull(),
  email: text('email').notNull().unique(),
  // Not in the API: bumped by a trigger on every UPDATE so that cached copies can be fenced even
  // when a row is changed outside the API.
  version: integer('version').notNull().default(1),
  createdAt: timestamptz('created_at').notNull().defaultNow(),
});

export const profiles = pgTable('profiles', {
  userId: integer('user_id')
    .primaryKey()
    .references(() => users.id, { onDelete: 'cascade' }),
  displayName: text('display_name').notNull(),
  bio: text('bio').notNull().default(''),
  location: text('location'),
  avatarUrl: text('avatar_url'),
  version: integer('version').notNull().default(1),
  updatedAt: timestamptz('updated_at').notNull().defaultNow(),
});

export const posts = pgTable(
  'posts',
  {
    id: integer('id').primaryKey().generatedByDefaultAsIdentity(),
    authorId: integer('author_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    title: text('title').notNull(),
    body: text('body').notNull(),
    version: integer('version').notNull().default(1),
    createdAt: timestamptz('created_at').notNull().defaultNow(),
  },
  (t) => [
    // Serves "an author's newest posts": an index-only walk in (created_at desc, id desc) order.
    index('posts_author_newest_idx').on(t.authorId, t.createdAt.desc(), t.id.desc()),
  ],
);

/**
 * The version of each author's newest-posts list, bumped by the posts triggers on every insert,
 * delete, re-dating or re-authoring of a post. A list cannot be versioned by its content (its newest
 * id does not change when a post is deleted or re-dated), so it gets a counter of its own. No foreign
 * key: the row may be bumped while its author is being deleted (cascading to the posts).
 */
export const postListVersions = pgTable('post_list_versions', {
  authorId: integer('author_id').primaryKey(),
  version: bigint('version', { mode: 'number' }).notNull().default(0),
});

/**
 * The version of the user directory — which user ids exist — bumped by the users triggers on every
 * insert and delete (an id never changes). A page of users (`userPage`) is a range of that
 * directory, which no user's own version covers; the response tier keeps a stored page answer only
 * while the directory's version is the one it read (docs/consistency.md, "The response tier"). One
 * row, id `USER_DIRECTORY_ID`; absent until the first insert or delete (version 0).
 */
export const userDirectoryVersion = pgTable('user_directory_version', {
  id: integer('id').primaryKey(),
  version: bigint('version', { mode: 'number' }).notNull().default(0),
});

/**
 * Invalidation events, written in the same transaction as the change they describe, so an event
 * exists exactly when its change committed. The relay publishes them (at least once) and marks them.
 */
export const outbox = pgTable(
  'outbox',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    entity: text('entity').notNull(),
    entityId: integer('entity_id').notNull(),
    version: bigint('version', { mode: 'number' }).notNull(),
    createdAt: timestamptz('created_at').notNull().defaultNow(),
    publishedAt: timestamptz('published_at'),
    attempts: integer('attempts').notNull().default(0),
  },
  (t) => [
    // The relay's claim query reads only unpublished rows, oldest first.
    index('outbox_unpublished_idx')
      .on(t.id)
      .where(sql`${t.publishedAt} is null`),
  ],
);

export type UserRow = typeof users.$inferSelect;
export type ProfileRow = typeof profiles.$inferSelect;
export type PostRow = typeof posts.$inferSelect;
export type OutboxRow = typeof outbox.$inferSelect;
