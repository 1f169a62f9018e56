/**
 * Returns of Redis: a connection lost, then back. Redis may have restarted, even with data older
 * than writes made meanwhile (persistence, a failover), and no event says so. The store's reconnect
 * listeners (the breaker trips, L1 clears: create-cache-tier.ts) must hear of it before any call can
 * read through it: at the connection's 'ready', or, should a call find it ready before that event
 * (ioredis emits it on the next tick), from the call (`checkBeforeCall`), which then fails — the
 * breaker it passed was still closed. A call that spanned a return (one waiting for the first
 * connection, one in flight, one queued on a cluster node's new connection) fails too: `count`
 * moved while it ran. A first connection that failed before it came up counts as a return: the
 * instance started during the outage.
 *
 * Without this only the subscriber's return tripped the breaker, and an instance whose command
 * connection came back first read the restored old values meanwhile
 * (test/resilience/redis-faults.test.ts, "Redis back with its old data";
 * test/store/redis-reconnect.test.ts).
 */
import type { EventEmitter } from 'node:events';
import { Cluster, type Redis } from 'ioredis';
import type { RedisClient } from './connections.js';

export interface ConnectionReturns {
  /** Returns so far: a call compares it before and after. */
  readonly count: number;
  /**
   * Before a call: true when the connection is back but its 'ready' has not been handled yet — the
   * return is handled now (listeners told), and the call must fail.
   */
  foundBack(): boolean;
  /** Calls `listener` on every return; returns a function that removes it. */
  onReturn(listener: () => void): () => void;
}

/** A node connection's address, as a cluster client's slot table names it: `host:port`. */
export function addressOf(node: Redis): string {
  return `${node.options.host}:${node.options.port}`;
}

export function watchConnectionReturns(
  client: RedisClient,
  onError: (error: Error) => void,
): ConnectionReturns {
  const listeners = new Set<() => void>();
  let lost = false;
  let count = 0;
  const returned = () => {
    lost = false;
    count += 1;
    for (const listener of [...listeners]) {
      try {
        listener();
      } catch (error) {
        onError(error instanceof Error ? error : new Error(String(error)));
      }
    }
  };
  (client as EventEmitter).on('close', () => void (lost = true));
  (client as EventEmitter).on('ready', () => void (lost && returned()));
  if (client instanceof Cluster) {
    // A cluster client emits 'close' and 'ready' only when every node is gone and back. One master
    // restarting ends only its own connection ('-node'); the client then opens a new, lazy one to
    // the same address ('+node'), whose queued commands are written before its 'ready'.
    const lostNodes = new Set<string>();
    (client as EventEmitter).on('-node', (node: Redis) => lostNodes.add(addressOf(node)));
    (client as EventEmitter).on('+node', (node: Redis) => {
      if (lostNodes.delete(addressOf(node))) (node as EventEmitter).once('ready', returned);
    });
  }
  return {
    get count() {
      return count;
    },
    foundBack() {
      if (!lost || client.status !== 'ready') return false;
      returned();
      return true;
    },
    onReturn(listener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
  };
}
