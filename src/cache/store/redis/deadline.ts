import { StoreTimeoutError } from '../errors.js';

/**
 * Rejects with a StoreTimeoutError when `work` has not settled `ms` after the call — but only after
 * letting the event loop read its sockets once more. A timer is served before pending I/O, so when
 * the loop was busy (a burst of requests) a plain timeout would fail a command whose reply had already
 * arrived, send its request to PostgreSQL and count toward opening the breaker. Deferring the
 * rejection with setImmediate (which runs after the poll phase) lets such a reply win; a Redis that
 * really is slow or gone still fails at the deadline. bench/README.md, "Stampede".
 */
export function withDeadline<T>(work: Promise<T>, ms: number, operation: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        setImmediate(() =>
          reject(new StoreTimeoutError(`cache store ${operation} failed: no answer within ${ms} ms`)),
        ),
      ms,
    );
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}
