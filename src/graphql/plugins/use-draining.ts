/**
 * The HTTP half of a graceful shutdown (src/app/shutdown.ts): it counts the requests being handled, and
 * once draining has begun it answers every response with `Connection: close`.
 *
 * - The count is what shutdown waits for before it closes the store and the database. Waiting for
 *   the sockets to close is not enough: a client that gives up mid-request closes its socket, but
 *   its resolvers run on, and they still have stampede locks to release and fills to write.
 * - `Connection: close` turns a busy keep-alive socket into one that ends with its response, so the
 *   client's next request opens a new connection (to another instance, once the load balancer has
 *   seen /ready answer 503) instead of going down a socket that is about to be closed under it.
 */
import type { Plugin } from 'graphql-yoga';

export interface DrainingTracker {
  /** Requests whose handling has started and not finished. */
  readonly inFlight: number;
  /** True once `begin()` was called. */
  readonly draining: boolean;
  /** From now on every response closes its connection. Idempotent. */
  begin(): void;
  /** Resolves once no request is being handled (at once if none is). */
  idle(): Promise<void>;
  /** Add to yoga's plugins. */
  readonly plugin: Plugin;
}

export function createDrainingTracker(): DrainingTracker {
  let inFlight = 0;
  let draining = false;
  let waiters: (() => void)[] = [];

  const finished = () => {
    inFlight -= 1;
    if (inFlight > 0) return;
    const wake = waiters;
    waiters = [];
    for (const resolve of wake) resolve();
  };

  return {
    get inFlight() {
      return inFlight;
    },
    get draining() {
      return draining;
    },
    begin() {
      draining = true;
    },
    idle() {
      if (inFlight === 0) return Promise.resolve();
      return new Promise<void>((resolve) => waiters.push(resolve));
    },
    plugin: {
      instrumentation: {
        // Wraps the whole handling of a request, onRequest to onResponse, whatever ends it early.
        async request(_, wrapped) {
          inFlight += 1;
          try {
            await wrapped();
          } finally {
            finished();
          }
        },
      },
      onResponse({ response }) {
        if (draining) response.headers.set('Connection', 'close');
      },
    },
  };
}
