/**
 * Redis as the consistency tests see it from outside the app: the file's own connections, the raw
 * entries of a test's keys, and the messages of a channel.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import { REDIS_URL, type TestApp } from './app.js';
import { scanKeys } from './redis.js';

/** Our own connections: one for commands, one that only subscribes. Open once `useRawRedis()` has run. */
export let redis: Redis;
let subscriber: Redis;

/**
 * Opens our own connections to REDIS_URL before the calling file's tests and closes them after: the
 * helpers below that read raw keys or listen on a channel need them.
 */
export function useRawRedis(): void {
  beforeAll(async () => {
    redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    subscriber = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  });

  afterAll(async () => {
    redis?.disconnect();
    subscriber?.disconnect();
  });
}

export const userKey = (t: TestApp, userId: number) => `${t.prefix}:v1:user:{${userId}}`;
export const profileKey = (t: TestApp, userId: number) => `${t.prefix}:v1:profile:{${userId}}`;
export const postListKey = (t: TestApp, authorId: number) => `${t.prefix}:v1:user:{${authorId}}:posts`;
export const eventsChannel = (t: TestApp) => `${t.prefix}:v1:events`;

/** The kind and version of a raw entry (`<kind>:<version>:<staleAt>:<payload>`, see src/cache/store/redis/wire-format.ts). */
export function headerOf(raw: Buffer | null): { kind: string; version: number } | undefined {
  if (raw === null) return undefined;
  const match = /^([vnt]):(\d+):(\d+):/.exec(raw.subarray(0, 64).toString('latin1'));
  if (match === null) throw new Error(`not a cacheside entry: ${raw.subarray(0, 64).toString('latin1')}`);
  const kinds: Record<string, string> = { v: 'value', n: 'negative', t: 'tombstone' };
  return { kind: kinds[match[1]!]!, version: Number(match[2]) };
}

/** A raw entry as text, for readable diffs: its header as stored, then its payload in hex. */
export async function rawEntry(key: string): Promise<string | null> {
  const raw = await redis.getBuffer(key);
  if (raw === null) return null;
  const match = /^[vnt]:\d+:\d+:/.exec(raw.subarray(0, 64).toString('latin1'));
  const headerLength = match?.[0].length ?? 0;
  return `${raw.subarray(0, headerLength).toString('latin1')}${raw.subarray(headerLength).toString('hex')}`;
}

/** Every key under the prefix with its exact bytes (hex), TTLs left out: they tick. */
export async function dumpRedis(t: TestApp): Promise<Record<string, string>> {
  const dump: Record<string, string> = {};
  for (const { key } of await scanKeys(`${t.prefix}:`)) {
    const raw = await redis.getBuffer(key);
    if (raw !== null) dump[key] = raw.toString('hex');
  }
  return dump;
}

/** Messages received on a channel from now on; `flush()` proves the list is complete so far. */
export async function listen(channel: string) {
  const received: string[] = [];
  const onMessage = (from: string, message: string) => {
    if (from === channel) received.push(message);
  };
  subscriber.on('message', onMessage);
  await subscriber.subscribe(channel);
  return {
    received,
    /**
     * Publishes a marker after everything that has been published so far and waits for it: Redis runs
     * commands one at a time and delivers a channel's messages in that order, so once the marker is
     * here, every earlier message is too. Returns the messages before the marker (and forgets them).
     */
    async flush(): Promise<string[]> {
      const marker = JSON.stringify({ events: [], marker: randomUUID() });
      const arrived = new Promise<void>((resolve) => {
        const check = (from: string, message: string) => {
          if (from === channel && message === marker) {
            subscriber.off('message', check);
            resolve();
          }
        };
        subscriber.on('message', check);
      });
      await redis.publish(channel, marker);
      await arrived;
      const before = received.splice(0, received.indexOf(marker));
      received.shift();
      return before;
    },
    async close() {
      subscriber.off('message', onMessage);
      await subscriber.unsubscribe(channel);
    },
  };
}

/** The events of the relay's messages, flattened. */
export function eventsIn(messages: readonly string[]) {
  return messages.flatMap(
    (m) => (JSON.parse(m) as { events: { entity: string; id: number; version: number }[] }).events,
  );
}
