/**
 * Invalidation events as they travel on the events channel: entity, id and the version the change
 * committed at. Consumers are idempotent and order-tolerant because every action an event causes is
 * fenced by that version: applying it twice, or after a newer one, changes nothing.
 */
import { z } from 'zod';
import { MAX_ID } from '../../domain/ids.js';
import { CACHED_ENTITIES, type CachedEntity } from '../entities/keys.js';

export interface InvalidationEvent {
  readonly entity: CachedEntity;
  readonly id: number;
  readonly version: number;
}

const eventSchema = z.object({
  entity: z.enum(CACHED_ENTITIES),
  id: z.number().int().min(1).max(MAX_ID),
  version: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
});
const messageSchema = z.object({ events: z.array(eventSchema).max(10_000) });

export function encodeEvents(events: readonly InvalidationEvent[]): string {
  return JSON.stringify({ events });
}

/** The events of a message, or an error naming what was wrong with it (foreign publishers exist). */
export function decodeEvents(message: string): InvalidationEvent[] | Error {
  let json: unknown;
  try {
    json = JSON.parse(message);
  } catch {
    return new Error(`invalidation message is not JSON: ${message.slice(0, 80)}`);
  }
  const parsed = messageSchema.safeParse(json);
  return parsed.success ? parsed.data.events : new Error(`invalid invalidation message: ${parsed.error.message}`);
}

export function isCachedEntity(entity: string): entity is CachedEntity {
  return (CACHED_ENTITIES as readonly string[]).includes(entity);
}
