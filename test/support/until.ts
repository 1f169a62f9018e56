/**
 * Waiting for a condition, never for a time: `until` polls `probe` until it holds. Its deadline is a
 * liveness bound for a condition that never comes (a test must fail, not hang), generous enough that
 * a busy machine cannot cross it by accident.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export async function until(
  what: string,
  probe: () => Promise<boolean> | boolean,
  { timeoutMs = 30_000, everyMs = 10 }: { timeoutMs?: number; everyMs?: number } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}
