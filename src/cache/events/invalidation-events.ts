/**
 * Invalidation events as they travel on the events channel: entity, id and the version the change
 * committed at. Consumers are idempotent and order-tolerant because every action an event causes is
 * fenced by that version: applying it twice, or after a newer one, changes nothing. A message with
 * `all: true` says that any cached row may have changed (a change that named no row, such as the
 * seed): consumers forget everything.
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
const messageSchema = z.object({
  events: z.array(eventSchema).max(10_000),
  all: z.literal(true).optional(),
});

/** One message on the events channel. */
export interface InvalidationMessage {
  readonly events: readonly InvalidationEvent[];
  /** Any cached row may have changed: forget everything. */
  readonly all: boolean;
}

export function encodeEvents(events: readonly InvalidationEvent[], { all = false } = {}): string {
  return JSON.stringify(all ? { events, all } : { events });
}

/** The message, or an error naming what was wrong with it (foreign publishers exist). */
export function decodeEvents(message: string): InvalidationMessage | Error {
  let json: unknown;
  try {
    json = JSON.parse(message);
  } catch {
    return new Error(`invalidation message is not JSON: ${message.slice(0, 80)}`);
  }
  const parsed = messageSchema.safeParse(json);
  if (!parsed.success) return new Error(`invalid invalidation message: ${parsed.error.message}`);
  return { events: parsed.data.events, all: parsed.data.all === true };
}

export function isCachedEntity(entity: string): entity is CachedEntity {
  return (CACHED_ENTITIES as readonly string[]).includes(entity);
}
