/**
 * The Lua scripts of the Redis driver, registered on a client with `defineScripts`. Each touches one
 * entry and its lock, which share a hash tag, so each is slot-safe on a cluster.
 *
 * Memory: the invalidations (`cachesideWrite`: write-throughs and tombstones) and the lock release
 * carry `flags=allow-oom`, so Redis runs them even above `maxmemory` under `noeviction`: they replace
 * a value with one of about its size, or with a small tombstone, or delete. A fill (`cachesideFill`)
 * does not: Redis refuses it whole while memory is full, and the reader answers from PostgreSQL.
 * test/resilience/redis-memory.test.ts fills a private Redis to its limit to prove both.
 */
import type { Result } from 'ioredis';
import { FILL_CHANNEL_SUFFIX, LOCK_SUFFIX } from '../key-names.js';
import type { RedisClient } from './connections.js';
import { NO_EXPIRY } from './write-stamp.js';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    cachesideWrite(
      key: string,
      lockKey: string,
      kind: string,
      version: string,
      staleAt: string,
      value: Buffer,
      ttlMs: number,
      channel: string,
      message: string,
      ...stamp: StampArgs
    ): Result<number, Context>;
    cachesideFill(
      key: string,
      lockKey: string,
      token: string,
      kind: string,
      version: string,
      staleAt: string,
      value: Buffer,
      ttlMs: number,
      channel: string,
      message: string,
    ): Result<number, Context>;
    cachesideLockBuffer(
      key: string,
      lockKey: string,
      token: string,
      ttlMs: number,
    ): Result<[number, Buffer | null], Context>;
    cachesideLockManyBuffer(
      numberOfKeys: number,
      ...keysThenArgs: (string | number)[]
    ): Result<(number | Buffer | null)[], Context>;
    cachesideFillMany(
      numberOfKeys: number,
      ...keysThenArgs: (string | number | Buffer)[]
    ): Result<number[], Context>;
    cachesideGetDependentBuffer(
      key: string,
      at: number,
      ...args: [...StampArgs, generationKey: string, generationTtlMs: number]
    ): Result<
      [1, Buffer, number, number, Buffer, number] | [0, Buffer] | [-1, Buffer, Buffer, Buffer, Buffer],
      Context
    >;
    cachesideNewGeneration(generationKey: string, generation: string, ttlMs: number): Result<'OK', Context>;
    cachesideReleaseLock(
      lockKey: string,
      token: string,
      channel: string,
      message: string,
    ): Result<number, Context>;
  }
}

/**
 * The write stamp's arguments to a script: its key (empty: no stamp, as on a cluster, where it would
 * cross slots), the value to set if the script changes an entry (a `nextStamp()`: never set twice),
 * and its TTL in ms.
 */
export type StampArgs = [stampKey: string, stamp: string, stampTtlMs: number];

/** Registers the scripts as commands of `client` (EVALSHA, falling back to EVAL once per script). */
export function defineScripts(client: RedisClient): void {
  client.defineCommand('cachesideWrite', { numberOfKeys: 2, lua: WRITE });
  client.defineCommand('cachesideFill', { numberOfKeys: 2, lua: FILL });
  client.defineCommand('cachesideLock', { numberOfKeys: 2, lua: LOCK });
  // No numberOfKeys: the caller passes it first (a batch's keys, one per entry).
  client.defineCommand('cachesideLockMany', { lua: LOCK_MANY });
  client.defineCommand('cachesideFillMany', { lua: FILL_MANY });
  client.defineCommand('cachesideGetDependent', { numberOfKeys: 1, lua: GET_DEPENDENT });
  client.defineCommand('cachesideNewGeneration', { numberOfKeys: 1, lua: NEW_GENERATION });
  client.defineCommand('cachesideReleaseLock', { numberOfKeys: 1, lua: RELEASE_LOCK });
}

/** `cachesideFill`'s answer when the caller no longer holds the key's grant. */
export const FILL_REVOKED = -1;
/** The fence's answer when the key already held the written version, whose expiry it renewed. */
export const FENCE_RENEWED = 2;

/*
 * The fence of contract.ts#setMany, as a Lua function: `fence(key, kind, version, staleAt, encoded,
 * ttlMs)` returns 1 when the write landed, FENCE_RENEWED when the held entry stays but its expiry was
 * renewed (an equal-version value or negative entry), 0 when the held entry stays as it was.
 * Whatever it changes in an entry — a new one, or a renewed expiry — it records in `changed`, so
 * that the script ends with `stamp(at)`: the write stamp (below) set anew from ARGV[at],
 * ARGV[at + 1], ARGV[at + 2] (StampArgs), in the same atomic step as the change.
 */
const FENCE = `
local changed = false
local function stamp(at)
  if changed and ARGV[at] ~= '' then redis.call('SET', ARGV[at], ARGV[at + 1], 'PX', ARGV[at + 2]) end
end
local function fence(key, kind, version, staleAt, encoded, ttl)
  local held = redis.call('GET', key)
  if held then
    local heldKind, heldVersion, payloadAt = string.match(held, '^([vnt]):(%d+):%d+:()')
    if heldKind then
      local incoming, current = tonumber(version), tonumber(heldVersion)
      if heldKind == 't' then
        if incoming < current or (incoming == current and kind == 't') then return 0 end
      elseif incoming < current then
        return 0
      elseif incoming == current then
        -- A refill of the same row: keep the held bytes, but push its expiry out as the writer asked.
        -- A tombstone naming the held version (a duplicated event) has no expiry of its own to give.
        if kind ~= 't' then
          redis.call('SET', key, heldKind .. ':' .. heldVersion .. ':' .. staleAt .. ':' .. string.sub(held, payloadAt), 'PX', ttl)
          changed = true
          return ${FENCE_RENEWED}
        end
        return 0
      end
    end
  end
  redis.call('SET', key, encoded, 'PX', ttl)
  changed = true
  return 1
end
`;

/*
 * An invalidation. KEYS: the entry, its lock; ARGV: kind code, version, staleAt, encoded entry, ttl ms,
 * fill channel, message (the entry's key), then StampArgs. Fenced like any write; in every case the
 * key's fill grant is revoked (its lock deleted) and, if someone held it, the waiters are woken to
 * re-read. The stamp is one small key rewritten in place, which allow-oom may do.
 */
const WRITE = `#!lua flags=allow-oom
${FENCE}
local landed = fence(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
if redis.call('DEL', KEYS[2]) == 1 then redis.call('PUBLISH', ARGV[6], ARGV[7]) end
stamp(8)
return landed
`;

/*
 * A fill under a grant. KEYS: the entry, its lock; ARGV: token, kind code, version, staleAt, encoded
 * entry, ttl ms, fill channel, message. Without the grant nothing happens (FILL_REVOKED); with it, the
 * fenced write, then the grant's release, which wakes the waiters. A cluster's form (a single Redis
 * fills with FILL_MANY), so it keeps no write stamp.
 */
const FILL = `#!lua
${FENCE}
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return ${FILL_REVOKED} end
local landed = fence(KEYS[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
redis.call('DEL', KEYS[2])
redis.call('PUBLISH', ARGV[7], ARGV[8])
return landed
`;

/*
 * A stampede lock taken and the key read in one step. KEYS: the entry, its lock; ARGV: token, ttl
 * ms. Answers { 1 if the lock is now the token's else 0, the entry or nil }. No allow-oom: with
 * memory full under noeviction Redis refuses it, as it refuses the fill the lock would lead to, and
 * the reader answers from PostgreSQL.
 */
const LOCK = `#!lua
local acquired = redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2], 'NX') and 1 or 0
return { acquired, redis.call('GET', KEYS[1]) }
`;

/*
 * The batch forms of LOCK and FILL, for a single Redis, where one script may touch every key of a
 * batch: one command instead of one per key. Measured here: taking 60 locks as a pipeline of 60
 * script calls cost the client 600–750 µs of CPU, as one call 110–170 µs (bench/README.md). A
 * cluster keeps the per-key forms: a batch's keys live in different slots.
 *
 * Their arguments are what only the client knows: each entry's key, and for a fill its encoded
 * entry and TTL. The rest is derived here — the lock's and the fill channel's names from the key
 * (key-names.ts), a fill's kind, version and staleAt from the entry's header (wire-format.ts, which
 * alone writes it) — because the client pays for every argument (ioredis encodes each one apart): a
 * fill of 60 keys cost it 308–348 µs of CPU with nine arguments per key, 166–233 µs with two (the
 * key and the entry) and the TTLs in one (`tsx bench/store-calls.ts`; bench/README.md, "The miss
 * path's store calls"). The locks and channels are not in KEYS, which a single Redis allows (as
 * GET_DEPENDENT's dependencies; some look-alikes, Dragonfly by default, do not).
 *
 * LOCK_MANY: KEYS entry₁, entry₂, …; ARGV token, ttl ms. Answers acquired₁, entry₁, acquired₂, ….
 * FILL_MANY: KEYS as LOCK_MANY; ARGV token, StampArgs, the TTLs in ms (decimals joined by commas, in
 * the keys' order), then the encoded entries. Answers each key's outcome as FILL does. Every
 * argument is checked before anything is written, so a malformed call changes nothing (a fill
 * half-applied would have moved entries without moving the write stamp).
 */
const LOCK_MANY = `#!lua
local out = {}
for i = 1, #KEYS do
  out[2 * i - 1] = redis.call('SET', KEYS[i] .. '${LOCK_SUFFIX}', ARGV[1], 'PX', ARGV[2], 'NX') and 1 or 0
  out[2 * i] = redis.call('GET', KEYS[i])
end
return out
`;

const FILL_MANY = `#!lua
${FENCE}
local ttls = {}
for ttl in string.gmatch(ARGV[5], '%d+') do ttls[#ttls + 1] = ttl end
if #ttls ~= #KEYS or #ARGV ~= 5 + #KEYS then
  return redis.error_reply('ERR cachesideFillMany: ' .. #KEYS .. ' keys, ' .. #ttls .. ' TTLs, ' .. (#ARGV - 5) .. ' entries')
end
local kinds, versions, staleAts = {}, {}, {}
for i = 1, #KEYS do
  kinds[i], versions[i], staleAts[i] = string.match(ARGV[5 + i], '^([vnt]):(%d+):(%d+):')
  if not kinds[i] then return redis.error_reply('ERR cachesideFillMany: entry ' .. i .. ' has no header') end
end
local out = {}
for i = 1, #KEYS do
  local key, encoded = KEYS[i], ARGV[5 + i]
  local lockKey = key .. '${LOCK_SUFFIX}'
  if redis.call('GET', lockKey) ~= ARGV[1] then
    out[i] = ${FILL_REVOKED}
  else
    out[i] = fence(key, kinds[i], versions[i], staleAts[i], encoded, ttls[i])
    redis.call('DEL', lockKey)
    redis.call('PUBLISH', key .. '${FILL_CHANNEL_SUFFIX}', key)
  end
end
stamp(2)
return out
`;

/*
 * A dependent entry (wire-format.ts, `encodeDependent`), served only while each dependency holds the
 * kind and version it names, fresh at ARGV[1] (epoch ms), and while it is of the current generation.
 * KEYS[1] the entry; ARGV[2..4] StampArgs, ARGV[5] the generation key, ARGV[6] its TTL. Answers
 * { 1, entry, count, payloadAt, generation } (the whole entry and where its payload starts, 1-based:
 * the client takes a view of it, so the payload is not copied inside Lua), { 0, generation } when absent (or not
 * a dependent entry, or of an older generation), { -1, kind, version, key, generation } of the first
 * dependency that is not current. A missing generation key is set from ARGV[3] (a new stamp).
 *
 * The full check reads each dependency's header (GETRANGE of its first 40 bytes: kind, version and
 * staleAt fit), so no payload is copied. The dependencies are not in KEYS: they are only known once
 * the entry is read, which a single server allows; a cluster reads them from the client instead
 * (redis-store.ts), and keeps no stamp.
 *
 * The write stamp skips it. Every script that changes an entry sets the stamp key to a value never
 * used before (FENCE's `stamp`), atomically with the change; a full check that passes records the
 * stamp it passed under, and the earliest staleAt it read, in the entry's header (SETRANGE over
 * fixed-width fields: same length, same TTL). While the stamp key still holds that value, no entry
 * has changed since — no dependency has another version, kind or expiry — so the entry is served on
 * that comparison alone, before the earliest staleAt. What the stamp cannot see is a key that vanished
 * without a write (evicted): its entry held the version it had, which the entity tier would load again
 * from PostgreSQL, unless the row was changed behind the cache's back — for which operators purge,
 * and the purge starts a new generation, of which no earlier answer is (`invalidateDependents`;
 * docs/consistency.md, "The response tier").
 * A stamp key that is missing (evicted, expired) fails every comparison and is set again by
 * the next passing check, to a new value. Measured here (EVALSHA usec_per_call, an answer over 120
 * dependencies of 270 bytes, 2 000 reads a run): 29–34 µs served on the stamp, against 484–506 µs for
 * the full check (412–454 µs before the stamp: recording it costs the full check 10–15 %).
 *
 * Why not one MGET for all dependencies in the full check, measured here: with 120 dependencies of
 * 270 bytes it costs Redis 190–225 µs against 270–295 µs, but it copies whole values: with 1 000
 * dependencies of 20 000-byte post bodies (what RESPONSE_CACHE_MAX_DEPENDENCIES and the body limit
 * allow) 77–79 ms per check against 1.7–2.3 ms, Redis blocked meanwhile. A check must not cost more
 * as the values it checks grow.
 *
 * allow-oom: the stamp is written over bytes of the same length (and a missing stamp key is a few
 * bytes), so a full Redis under noeviction still answers hits. Being a writing script, it waits under
 * CLIENT PAUSE WRITE (a failover) and is refused by a read-only replica, as fills and locks are.
 */
const GET_DEPENDENT = `#!lua flags=allow-oom
local generationKey = ARGV[5]
local generation = redis.call('GET', generationKey)
if not generation then
  generation = ARGV[3]
  redis.call('SET', generationKey, generation, 'PX', ARGV[6])
end
local held = redis.call('GET', KEYS[1])
if not held then return { 0, generation } end
local writtenIn, stamped, freshUntil, count, linesLength, pos = string.match(held, '^r:([^:]+):([^:]+):(%d+):(%d+):(%d+)\\n()')
if not writtenIn or writtenIn ~= generation then return { 0, generation } end
local at, payloadAt = tonumber(ARGV[1]), pos + tonumber(linesLength)
local stampKey = ARGV[2]
local current = stampKey ~= '' and redis.call('GET', stampKey)
if current and current == stamped and at < tonumber(freshUntil) then
  return { 1, held, tonumber(count), payloadAt, generation, tonumber(freshUntil) }
end
local earliest = ${NO_EXPIRY}
for i = 1, tonumber(count) do
  local kind, version, key, nextPos = string.match(held, '^([vn])(%d+) ([^\\n]+)\\n()', pos)
  if not kind then return { 0, generation } end
  local heldKind, heldVersion, staleAt = string.match(redis.call('GETRANGE', key, 0, 39), '^([vnt]):(%d+):(%d+):')
  staleAt = tonumber(staleAt)
  if heldKind ~= kind or heldVersion ~= version or staleAt <= at then return { -1, kind, version, key, generation } end
  if staleAt < earliest then earliest = staleAt end
  pos = nextPos
end
if pos ~= payloadAt then return { 0, generation } end
redis.call('PEXPIRE', generationKey, ARGV[6])
if stampKey ~= '' then
  if not current then
    current = ARGV[3]
    redis.call('SET', stampKey, current, 'PX', ARGV[4])
  end
  if #current == #stamped then
    redis.call('SETRANGE', KEYS[1], 3 + #writtenIn, current .. ':' .. string.format('%016d', earliest))
  end
end
return { 1, held, tonumber(count), payloadAt, generation, earliest }
`;

/*
 * A new answer generation (contract.ts, `invalidateDependents`). KEYS[1] the generation key; ARGV: the
 * new value (a stamp: never used before), its TTL. allow-oom: a purge must not fail because Redis is
 * full (test/resilience/redis-memory.test.ts).
 */
const NEW_GENERATION = `#!lua flags=allow-oom
return redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
`;

/*
 * Compare-and-delete: a holder whose lock expired (and was taken by another caller) must not release
 * the new holder's lock. KEYS[1] the lock; ARGV: token, fill channel, message (the entry's key).
 */
const RELEASE_LOCK = `#!lua flags=allow-oom
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], ARGV[3])
  return 1
end
return 0
`;
