/**
 * Mutations: validate → one transaction (the row and, through triggers, its outbox event) → after
 * commit, write the cache through → prime the request's loaders so the rest of the request reads
 * the new value. Nothing touches the cache before the commit: a rollback must leave it untouched.
 */
import type { Db } from '../db/client.js';
import { classifyDatabaseError, DatabaseUnavailableError } from '../db/errors.js';
import type { Repositories } from '../db/repositories.js';
import type { PostRow, ProfileRow } from '../db/schema.js';
import { ConflictError, NotFoundError } from '../domain/errors.js';
import type { Loaders } from '../loaders/create-loaders.js';
import type { CacheWriter } from '../cache/write/cache-writer.js';
import {
  checkNewPost,
  toProfilePatch,
  type CreatePostInput,
  type UpdateProfileInput,
} from './input-rules.js';

export interface ServiceDeps {
  readonly db: Db;
  readonly repositories: Repositories;
  readonly cacheWriter: CacheWriter;
  /** Every mutation's transaction: whether PostgreSQL answered (metrics, the availability log). */
  readonly onTransaction?: (result: 'ok' | 'error' | 'unavailable', error?: unknown) => void;
}

/** What a mutation touches of the operation it serves. */
export interface MutationScope {
  /** The operation's loaders: primed with the written row, so the rest of it reads the new value. */
  readonly loaders: Loaders;
  /** Set when the change is committed but no relay applied it to the cache in time (propagation.ts). */
  readonly notices: { propagationPending: boolean };
}

export interface Services {
  updateProfile(userId: number, input: UpdateProfileInput, scope: MutationScope): Promise<ProfileRow>;
  createPost(userId: number, input: CreatePostInput, scope: MutationScope): Promise<PostRow>;
}

export function createServices({ db, repositories, cacheWriter, onTransaction }: ServiceDeps): Services {
  const inTransaction = async <T>(work: (tx: Db) => Promise<T>): Promise<T> => {
    let result: T;
    try {
      // On PGlite there is one connection: everything inside must go through `tx`, never `db`.
      result = await db.transaction((tx) => work(tx as unknown as Db));
    } catch (error) {
      const classified = classifyDatabaseError(error);
      onTransaction?.(classified instanceof DatabaseUnavailableError ? 'unavailable' : 'error', classified);
      throw classified;
    }
    onTransaction?.('ok');
    return result;
  };

  return {
    async updateProfile(userId, input, { loaders, notices }) {
      const { patch, expectedVersion } = toProfilePatch(input);
      const result = await inTransaction((tx) =>
        repositories.updateProfile(tx, userId, patch, expectedVersion),
      );
      if (result === undefined) throw new NotFoundError(`user ${userId} has no profile`);
      if (result === 'conflict') {
        throw new ConflictError(`profile of user ${userId} is no longer at version ${expectedVersion}`, {
          expectedVersion,
        });
      }
      if ((await cacheWriter.profileChanged(result)) === 'pending') notices.propagationPending = true;
      loaders.profile.clear(userId).prime(userId, result);
      return result;
    },

    async createPost(userId, input, { loaders, notices }) {
      const post = checkNewPost(input);
      // The list version is read in the same transaction, right after the insert's trigger bumped it.
      const { row, listVersion } = await inTransaction(async (tx) => {
        const inserted = await repositories.insertPost(tx, { authorId: userId, ...post });
        return { row: inserted, listVersion: await repositories.postListVersion(tx, userId) };
      });
      if ((await cacheWriter.postCreated(row, listVersion)) === 'pending') notices.propagationPending = true;
      loaders.post.prime(row.id, row);
      // The author's list changed: the next read in this request must not reuse the memoized one.
      loaders.postIdsByAuthor.clear(userId);
      return row;
    },
  };
}
