/**
 * Pub/sub on the dedicated subscriber connection: channel subscriptions shared by every local
 * listener (fill notifications of one key, the invalidation events channel), confirmed by the
 * server before a caller proceeds, and restored after a reconnect.
 */
import type { EventEmitter } from 'node:events';
import { StoreTimeoutError, StoreUnavailableError } from '../errors.js';
import { whenReady, type RedisConnections, type RedisClient } from './connections.js';
import type { MessageListener, Unsubscribe } from '../contract.js';

/** Channel subscriptions shared by every local listener, on the dedicated subscriber connection. */
export interface SubscriptionHub {
  /**
   * Adds a listener to `channel`. The first listener of a channel subscribes on the server and every
   * caller resolves only once the server has confirmed it; the last one to leave unsubscribes.
   */
  add(channel: string, listener: MessageListener): Promise<Unsubscribe>;
  /**
   * Calls `listener` each time the subscriber connection is ready again after a loss, once its
   * channels were re-subscribed (or that failed): what was published meanwhile was missed.
   */
  onReconnect(listener: () => void): () => void;
  close(): Promise<void>;
}

/**
 * Many requests wait for fills of the same key at once; one SUBSCRIBE per key and process is what
 * Redis should see, so subscriptions are reference-counted here. SUBSCRIBE and UNSUBSCRIBE of one
 * channel are sent strictly in order (each after the previous one settled), so a listener joining
 * while the last one leaves cannot have its fresh SUBSCRIBE overtaken by the older UNSUBSCRIBE.
 */
export function createSubscriptionHub(options: {
  connections: RedisConnections;
  /** Receives listener exceptions and failed re-subscribes, which no caller awaits. */
  onError: (error: Error) => void;
}): SubscriptionHub {
  const { connections, onError } = options;
  const timeoutMs = connections.commandTimeoutMs;
  const channels = new Map<string, { listeners: Set<MessageListener>; settled: Promise<void> }>();
  const reconnectListeners = new Set<() => void>();
  let subscriber: RedisClient | undefined;
  let closed = false;

  const connect = (): RedisClient => {
    if (subscriber) return subscriber;
    const client = connections.subscriber();
    const events = client as EventEmitter;
    events.on('message', (channel: string, message: string) => {
      // A copy: a listener may unsubscribe while being called.
      for (const listener of [...(channels.get(channel)?.listeners ?? [])]) {
        try {
          listener(channel, message);
        } catch (error) {
          onError(error instanceof Error ? error : new Error(String(error)));
        }
      }
    });
    let readyBefore = false;
    const reconnected = () => {
      for (const listener of [...reconnectListeners]) {
        try {
          listener();
        } catch (error) {
          onError(error instanceof Error ? error : new Error(String(error)));
        }
      }
    };
    events.on('ready', () => {
      const isReconnect = readyBefore;
      readyBefore = true;
      // After a reconnect the server has forgotten every subscription (see `autoResubscribe` above).
      const active = [...channels]
        .filter(([, state]) => state.listeners.size > 0)
        .map(([channel]) => channel);
      const resubscribed =
        active.length > 0
          ? withTimeout(client.subscribe(...active), timeoutMs, 're-subscribe').catch(onError)
          : Promise.resolve();
      if (isReconnect) void resubscribed.then(reconnected);
    });
    subscriber = client;
    return client;
  };

  const send = async (command: 'subscribe' | 'unsubscribe', channel: string): Promise<void> => {
    const client = connect();
    await whenReady(client, timeoutMs);
    await withTimeout(client[command](channel), timeoutMs, `${command} ${channel}`);
  };

  const remove = (channel: string, listener: MessageListener): Promise<void> => {
    const state = channels.get(channel);
    if (!state?.listeners.delete(listener) || state.listeners.size > 0) return Promise.resolve();
    const settled = after(state.settled, () => send('unsubscribe', channel));
    state.settled = settled;
    // A failed UNSUBSCRIBE (Redis down) leaves nothing to undo: no local listener hears the channel,
    // and a reconnect re-subscribes only channels that have listeners.
    return settled
      .then(
        () => {},
        () => {},
      )
      .finally(() => {
        if (channels.get(channel) === state && state.settled === settled) channels.delete(channel);
      });
  };

  return {
    async add(channel, listener) {
      if (closed) throw new StoreUnavailableError(`cannot subscribe to ${channel}: the store is closed`);
      let state = channels.get(channel);
      if (!state) {
        state = { listeners: new Set(), settled: Promise.resolve() };
        channels.set(channel, state);
      }
      // Wrapped so that the same function added twice is two listeners, removed one at a time.
      const own: MessageListener = (ch, message) => listener(ch, message);
      state.listeners.add(own);
      if (state.listeners.size === 1) state.settled = after(state.settled, () => send('subscribe', channel));
      try {
        await state.settled;
      } catch (error) {
        void remove(channel, own);
        throw error;
      }
      let removing: Promise<void> | undefined;
      return () => (removing ??= remove(channel, own));
    },
    onReconnect(listener) {
      // Wrapped, like `add`'s listeners: the same function registered twice is removed one at a time.
      const own = () => listener();
      reconnectListeners.add(own);
      return () => void reconnectListeners.delete(own);
    },
    async close() {
      closed = true;
      channels.clear();
      reconnectListeners.clear();
    },
  };
}

// Private:

/** Runs `next` once `previous` has settled either way; its own outcome is the result. */
function after(previous: Promise<void>, next: () => Promise<void>): Promise<void> {
  return previous.then(next, next);
}

/** Bounds a pub/sub command: a Cluster's subscriber connection has no command timeout of its own. */
function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new StoreTimeoutError(`${what} was not confirmed within ${ms} ms`)),
      ms,
    );
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}
