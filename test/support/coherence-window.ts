/**
 * The coherence window of an in-process tier, measured: how long after a mutation returns on one
 * instance another still reads the older version (test/read-path/l1-coherence.test.ts for L1's
 * entries, response-memo-coherence.test.ts for kept answers).
 *
 * `hot` users in parallel, `rounds` each: the reader warms the user (its tier holds it), the writer
 * writes, and the reader reads every few ms until it sees the written version. The window of a
 * round is the time from the mutation's response to the reader's first read of the new version (to
 * within the read interval; the reads are paced so that their own load does not lengthen what they
 * measure). Each write waits a random part of a poll interval first: otherwise rounds fall into
 * step with the relay (a round ends just after a publish, so the next write waits for a whole poll).
 */
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * The environment of both instances of a window measurement: the relay polling every `pollMs`, the
 * L1 TTL `ttlMs`, and a 2 s command timeout — answers, not speed: a write-through that timed out on
 * a busy machine would leave the old value in Redis until the relay's tombstone, a different lag
 * than the one measured.
 */
export function windowEnv({ pollMs, ttlMs }: { pollMs: number; ttlMs: number }): Record<string, string> {
  return {
    CACHE_L1_TTL_MS: String(ttlMs),
    OUTBOX_POLL_INTERVAL_MS: String(pollMs),
    REDIS_COMMAND_TIMEOUT_MS: '2000',
  };
}

export interface WindowRun {
  readonly hot: number;
  readonly rounds: number;
  readonly pollMs: number;
  /** Before each write: the reader's reads that put the user in its tier. */
  warm(userId: number): Promise<void>;
  /** The write, through the API on the other instance; its new version. */
  write(userId: number, round: number): Promise<number>;
  /** One read on the reader: the version seen, and what answered it (counted when it lags). */
  read(userId: number): Promise<{ readonly version: number; readonly by: string }>;
}

export interface WindowResult {
  /** One per write, ms, ascending. */
  readonly windows: readonly number[];
  /** Reads that showed an older version, by what answered them. */
  readonly lagging: Readonly<Record<string, number>>;
  /** `windows` at quantile `q` (0 < q ≤ 1). */
  at(q: number): number;
}

export async function measureWindow(run: WindowRun): Promise<WindowResult> {
  const windows: number[] = [];
  const lagging: Record<string, number> = {};
  const round = async (userId: number, r: number) => {
    await run.warm(userId);
    await sleep(Math.floor(Math.random() * run.pollMs));
    const version = await run.write(userId, r);
    const returnedAt = performance.now();
    for (;;) {
      const seen = await run.read(userId);
      if (seen.version >= version) break;
      lagging[seen.by] = (lagging[seen.by] ?? 0) + 1;
      // Liveness only: far past any bound, so a broken eviction fails instead of hanging.
      if (performance.now() - returnedAt > 10_000) throw new Error(`user ${userId} never caught up`);
      await sleep(5);
    }
    windows.push(performance.now() - returnedAt);
  };
  await Promise.all(
    Array.from({ length: run.hot }, async (_, i) => {
      for (let r = 0; r < run.rounds; r += 1) await round(i + 1, r);
    }),
  );
  const sorted = windows.sort((x, y) => x - y);
  return {
    windows: sorted,
    lagging,
    at: (q) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!,
  };
}
