/**
 * A start waits for PostgreSQL, bounded: it asks `select 1` once a second, logs each failed attempt,
 * and gives up after `timeoutSeconds` with an error naming the host and port. Without it a start
 * against an address that drops packets printed nothing and hung for good: postgres.js keeps a
 * query queued through reconnect after reconnect when the connect times out (only a refused
 * connection rejects it), so neither its `connect_timeout` nor ours ended the wait.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import postgres from 'postgres';
import { CodedError } from '../domain/errors.js';
import type { Logger } from '../observability/logger.js';
import { describeUrl } from './client.js';

export class DatabaseStartupTimeoutError extends CodedError<'DATABASE_STARTUP_TIMEOUT'> {
  static readonly code = 'DATABASE_STARTUP_TIMEOUT';
  readonly code = DatabaseStartupTimeoutError.code;
}

export interface WaitForDatabaseOptions {
  readonly url: string;
  /** Give up after this long (DATABASE_STARTUP_TIMEOUT_SECONDS). */
  readonly timeoutSeconds: number;
  readonly logger: Logger;
  /** One attempt's limit, ms: its connect and its `select 1`. @default 2000 */
  readonly attemptTimeoutMs?: number;
  /** Pause between attempts, ms. @default 1000 */
  readonly retryEveryMs?: number;
}

export async function waitForDatabase(options: WaitForDatabaseOptions): Promise<void> {
  const { url, timeoutSeconds, logger } = options;
  const attemptTimeoutMs = options.attemptTimeoutMs ?? 2000;
  const retryEveryMs = options.retryEveryMs ?? 1000;
  const where = describeUrl(url);
  const deadline = performance.now() + timeoutSeconds * 1000;
  for (let attempt = 1; ; attempt += 1) {
    const left = deadline - performance.now();
    const failure = await probe(url, Math.max(1, Math.min(attemptTimeoutMs, left)));
    if (failure === undefined) {
      if (attempt > 1) logger.info({ database: where, attempt }, 'PostgreSQL answered');
      return;
    }
    if (performance.now() + retryEveryMs >= deadline) {
      throw new DatabaseStartupTimeoutError(
        `PostgreSQL at ${where} did not answer within ${timeoutSeconds} s ` +
          `(${attempt === 1 ? '1 attempt' : `${attempt} attempts`}; last: ${failure}). Check DATABASE_URL and that the server is up and ` +
          `reachable from here; DATABASE_STARTUP_TIMEOUT_SECONDS sets how long a start waits`,
      );
    }
    logger.warn(
      { database: where, attempt, reason: failure, giveUpInSeconds: Math.round(left / 1000) },
      `PostgreSQL at ${where} is not answering (${failure}); retrying`,
    );
    await sleep(retryEveryMs);
  }
}

/** One `select 1` on a connection of its own, within `limitMs`; the failure's reason, or undefined. */
async function probe(url: string, limitMs: number): Promise<string | undefined> {
  const sql = postgres(url, {
    max: 1,
    connect_timeout: Math.max(1, Math.ceil(limitMs / 1000)),
    idle_timeout: 1,
    onnotice: () => {},
    connection: { application_name: 'cacheside startup' },
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      sql`select 1`,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer in ${Math.round(limitMs)} ms`)), limitMs);
      }),
    ]);
    return undefined;
  } catch (error) {
    const e = error as { code?: unknown; message?: unknown };
    return typeof e.code === 'string' ? `${e.code}: ${String(e.message)}` : String(e.message ?? error);
  } finally {
    clearTimeout(timer);
    // Not awaited: a connection stuck connecting never ends cleanly; timeout 0 drops it at once.
    void sql.end({ timeout: 0 }).catch(() => {});
  }
}
