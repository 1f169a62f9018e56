/**
 * The failures a cache store reports. Every driver rejects with one of these (never with a raw
 * ioredis error), so the engine can tell "Redis is down or slow, go to PostgreSQL" from a bug with
 * one `instanceof CacheStoreError`, and logs and metrics can group by a stable `code`.
 *
 * They are created in one place, `toStoreError`, which is where a client library's errors are read.
 */
import { CodedError } from '../../domain/errors.js';

export type CacheStoreErrorCode = 'CACHE_STORE_UNAVAILABLE' | 'CACHE_STORE_TIMEOUT' | 'CACHE_STORE_REPLY';

export abstract class CacheStoreError extends CodedError<CacheStoreErrorCode> {}

/** The store cannot be reached: connection refused or lost, not yet ready, or closed. */
export class StoreUnavailableError extends CacheStoreError {
  static readonly code = 'CACHE_STORE_UNAVAILABLE';
  readonly code = StoreUnavailableError.code;
}

/** The store did not answer within the command timeout (it may still have applied the command). */
export class StoreTimeoutError extends CacheStoreError {
  static readonly code = 'CACHE_STORE_TIMEOUT';
  readonly code = StoreTimeoutError.code;
}

/** The store answered with an error (a script error, a wrong type): a bug or a foreign key, not an outage. */
export class StoreReplyError extends CacheStoreError {
  static readonly code = 'CACHE_STORE_REPLY';
  readonly code = StoreReplyError.code;
}

export function isCacheStoreError(error: unknown): error is CacheStoreError {
  return error instanceof CacheStoreError;
}

/** Redis down, unreachable or too slow — an outage, expected and survived — rather than a bug. */
export function isStoreOutage(error: unknown): boolean {
  return error instanceof StoreUnavailableError || error instanceof StoreTimeoutError;
}

/**
 * Wraps whatever a driver's client threw into a typed store error, keeping it as `cause`.
 * `operation` names the store method, so a log line says what was being attempted.
 */
export function toStoreError(error: unknown, operation: string): CacheStoreError {
  if (error instanceof CacheStoreError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const name = error instanceof Error ? error.name : '';
  const text = `cache store ${operation} failed: ${message}`;
  // ioredis signals a command timeout only through its message ("Command timed out").
  if (/timed out/i.test(message)) return new StoreTimeoutError(text, { cause: error });
  // A reply error is the server's answer: the connection is fine, so retrying elsewhere won't help.
  if (name === 'ReplyError' && !/^(LOADING|CLUSTERDOWN|TRYAGAIN|MASTERDOWN|READONLY|BUSY)\b/.test(message)) {
    return new StoreReplyError(text, { cause: error });
  }
  return new StoreUnavailableError(text, { cause: error });
}
