/**
 * Receives the invalidation events the relays publish, on the store's subscriber connection, and
 * hands them to in-process consumers (today the L1 tier, which evicts). Malformed messages are
 * logged and dropped: a consumer must never crash on what another process published.
 */
import type { Logger } from '../../observability/logger.js';
import { decodeEvents, type InvalidationMessage } from './invalidation-events.js';
import type { CacheKeys } from '../entities/keys.js';
import type { CacheStore, Unsubscribe } from '../store/contract.js';

export type EventsListener = (message: InvalidationMessage) => void;

export interface InvalidationSubscriber {
  /**
   * Subscribes; resolves once the subscription is active. If it fails (Redis down at startup), it
   * rejects, and keeps retrying in the background (backoff up to 5 s) until it succeeds or `stop()`.
   */
  start(): Promise<void>;
  /** Called when a subscription that failed at first finally succeeds: events may have been missed. */
  onLateStart(listener: () => void): () => void;
  stop(): Promise<void>;
  /** Adds a consumer; returns a function that removes it. */
  onEvents(listener: EventsListener): () => void;
}

export function createInvalidationSubscriber(deps: {
  readonly store: CacheStore;
  readonly keys: CacheKeys;
  readonly logger: Logger;
}): InvalidationSubscriber {
  const listeners = new Set<EventsListener>();
  const lateStartListeners = new Set<() => void>();
  let unsubscribe: Unsubscribe | undefined;
  let stopped = false;
  let retry: NodeJS.Timeout | undefined;

  const subscribe = async () => {
    unsubscribe ??= await deps.store.subscribe(deps.keys.eventsChannel, deliver);
  };
  const retryLater = (delayMs: number) => {
    if (stopped) return;
    retry = setTimeout(() => {
      subscribe().then(
        () => {
          deps.logger.info('subscribed to invalidation events');
          for (const listener of lateStartListeners) listener();
        },
        () => retryLater(Math.min(5000, delayMs * 2)),
      );
    }, delayMs);
    // A pending retry must not keep a stopping process alive.
    retry.unref();
  };

  const deliver = (_channel: string, message: string) => {
    const decoded = decodeEvents(message);
    if (decoded instanceof Error) {
      deps.logger.warn({ err: decoded }, 'dropped a malformed invalidation message');
      return;
    }
    for (const listener of listeners) {
      try {
        listener(decoded);
      } catch (error) {
        deps.logger.error({ err: error }, 'an invalidation consumer failed');
      }
    }
  };

  return {
    async start() {
      stopped = false;
      try {
        await subscribe();
      } catch (error) {
        retryLater(250);
        throw error;
      }
    },
    onLateStart(listener) {
      lateStartListeners.add(listener);
      return () => lateStartListeners.delete(listener);
    },
    async stop() {
      stopped = true;
      clearTimeout(retry);
      const current = unsubscribe;
      unsubscribe = undefined;
      await current?.();
    },
    onEvents(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
