/**
 * Bounds how many SQL loads run at once. When the cache is down every read becomes a load; without a
 * bound, a traffic spike would open the whole pool and queue the rest inside PostgreSQL. Excess
 * loads wait here, in the process, where waiting is cheap and the database stays responsive.
 */

export interface LoadLimiter {
  run<T>(task: () => Promise<T>): Promise<T>;
  /** Loads running now. */
  readonly active: number;
  /** Loads waiting for a slot. */
  readonly queued: number;
}

export function createLoadLimiter(maxConcurrent: number): LoadLimiter {
  if (!Number.isInteger(maxConcurrent) || maxConcurrent < 1) {
    throw new RangeError(`maxConcurrent must be a positive integer, got ${String(maxConcurrent)}`);
  }
  let active = 0;
  const queue: (() => void)[] = [];

  const release = () => {
    const next = queue.shift();
    if (next) next();
    else active -= 1;
  };

  return {
    get active() {
      return active;
    },
    get queued() {
      return queue.length;
    },
    async run(task) {
      if (active < maxConcurrent) active += 1;
      // The slot passes straight from the finishing task to the next waiter, so `active` never dips
      // and a newcomer cannot jump the queue.
      else await new Promise<void>((resolve) => queue.push(resolve));
      try {
        return await task();
      } finally {
        release();
      }
    },
  };
}
