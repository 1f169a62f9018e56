/**
 * Receives the invalidation events the relays publish, on the store's subscriber connection, and
 * hands them to in-process consumers (the L1 tier evicts; metrics count). Malformed messages are
 * logged and dropped: a consumer must never crash on what another process published.
 */
import type { Logger } from '../observability/logger.js';
import { decodeEvents, type InvalidationEvent } from './invalidation-events.js';
import type { CacheKeys } from './keys.js';
import type { CacheStore, Unsubscribe } from './store.js';

export type EventsListener = (events: readonly InvalidationEvent[]) => void;

export interface InvalidationSubscriber {
  /** Subscribes; resolves once the subscription is active. */
  start(): Promise<void>;
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
  let unsubscribe: Unsubscribe | undefined;

  const deliver = (_channel: string, message: string) => {
    const events = decodeEvents(message);
    if (events instanceof Error) {
      deps.logger.warn({ err: events }, 'dropped a malformed invalidation message');
      return;
    }
    for (const listener of listeners) {
      try {
        listener(events);
      } catch (error) {
        deps.logger.error({ err: error }, 'an invalidation consumer failed');
      }
    }
  };

  return {
    async start() {
      unsubscribe ??= await deps.store.subscribe(deps.keys.eventsChannel, deliver);
    },
    async stop() {
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
