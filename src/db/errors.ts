/**
 * Database failures the rest of the system must tell apart from bugs. Created in one place
 * (`classifyDatabaseError`) from whatever postgres.js or PGlite threw, with the original as `cause`.
 */
import { CodedError } from '../domain/errors.js';

export class DatabaseUnavailableError extends CodedError<'DATABASE_UNAVAILABLE'> {
  static readonly code = 'DATABASE_UNAVAILABLE';
  readonly code = DatabaseUnavailableError.code;
  /**
   * The statement failed on a connection that was lost (the server restarted, a proxy dropped it):
   * the pool replaces it, so a read may be retried at once. Refused connections and timeouts are not
   * retryable: trying again would only double the wait.
   */
  readonly retryable: boolean;
  constructor(message: string, options?: { cause?: unknown; retryable?: boolean }) {
    super(message, options);
    this.retryable = options?.retryable ?? false;
  }
}

const LOST_CONNECTION = new Set([
  'ECONNRESET',
  'EPIPE',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  '57P01',
  '57P02',
]);

// Connection-level failures: the server is down, unreachable, restarting or out of connections.
const UNAVAILABLE_ERRNOS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'CONNECT_TIMEOUT',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
]);
// SQLSTATE classes 08 (connection exception) and 57P0x (admin shutdown, crash, cannot connect now),
// 53300 (too many connections), 57014 (statement timeout: the server is too slow to be useful).
const UNAVAILABLE_SQLSTATE = /^(08|57P0|53300|57014)/;

/** Wraps connection-level failures in DatabaseUnavailableError; returns anything else unchanged. */
export function classifyDatabaseError(error: unknown): unknown {
  if (error instanceof DatabaseUnavailableError) return error;
  const e = error as { code?: unknown; errno?: unknown; cause?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : typeof e?.errno === 'string' ? e.errno : undefined;
  if (code !== undefined && (UNAVAILABLE_ERRNOS.has(code) || UNAVAILABLE_SQLSTATE.test(code))) {
    return new DatabaseUnavailableError(`database unavailable (${code})`, {
      cause: error,
      retryable: LOST_CONNECTION.has(code),
    });
  }
  // drizzle wraps driver errors ("Failed query: …") with the driver's error as `cause`.
  if (e?.cause !== undefined && e.cause !== error) {
    const inner = classifyDatabaseError(e.cause);
    if (inner instanceof DatabaseUnavailableError) return inner;
  }
  return error;
}
