/**
 * Graceful shutdown (docs/contract.md, "Commands": SIGTERM drains in-flight requests, releases
 * held locks and closes connections; exit code 0), in the order a load balancer needs:
 *
 *   1. drain    /ready answers 503 and every response closes its connection, while the instance
 *               keeps serving for `delayMs` so that the balancer sees it and stops routing here;
 *   2. close    stop accepting; idle keep-alive sockets are closed now, busy ones after their response;
 *   3. finish   wait for the requests still being handled, even those whose client has gone: their
 *               read path releases its stampede locks in `finally` (src/cache/read/miss-resolver.ts);
 *   4. release  `app.close()`: the outbox relay finishes the batch it is in, then the event
 *               subscriber, the store and the database close.
 *
 * Steps 2 and 3 are bounded by `timeoutMs`: past it the remaining connections are cut and the
 * shutdown is reported as forced, so one stuck request cannot keep an instance alive until the
 * orchestrator's SIGKILL. test/resilience/shutdown.test.ts drives all of it on the built server.
 */
import type { Server } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DrainingTracker } from '../graphql/plugins/use-draining.js';
import type { Logger } from '../observability/logger.js';

/** The parts of the app a shutdown drives (src/app/create-app.ts `App`). */
export interface ShutdownApp {
  /** Makes /ready answer 503 and every response close its connection. */
  beginDraining(): void;
  /** The requests being handled: what step 3 waits for. */
  readonly requests: Pick<DrainingTracker, 'inFlight' | 'idle'>;
  /** Closes the relay, the subscriber, the store and the database. */
  close(): Promise<void>;
}

export interface ShutdownOptions {
  readonly server: Server;
  readonly app: ShutdownApp;
  readonly logger: Logger;
  /** How long to keep serving, /ready at 503, before the listener closes, ms. SHUTDOWN_DELAY_MS. */
  readonly delayMs: number;
  /** Longest wait for in-flight requests once the listener is closed, ms. @default 20000 */
  readonly timeoutMs?: number;
}

/** Runs the whole sequence; resolves `true` when every request finished on its own, `false` if some were cut. */
export async function shutDown(options: ShutdownOptions): Promise<boolean> {
  const { server, app, logger, delayMs } = options;
  const timeoutMs = options.timeoutMs ?? 20_000;

  app.beginDraining();
  if (delayMs > 0) await sleep(delayMs);

  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const finished = Promise.all([closed, app.requests.idle()]).then(() => true);
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  const clean = await Promise.race([finished, timedOut]);
  clearTimeout(timer);
  if (!clean) {
    logger.warn(
      { inFlight: app.requests.inFlight, timeoutMs },
      'requests still running after the shutdown timeout: closing their connections',
    );
    server.closeAllConnections();
  }

  await app.close();
  return clean;
}
