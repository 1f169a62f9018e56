/**
 * The Lua scripts of the Redis driver, registered on a client with `defineScripts`. Each touches a
 * single key (the entry, or a lock), so each is slot-safe on a cluster.
 */
import type { Result } from 'ioredis';
import type { RedisClient } from './connections.js';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    cachesideSetIfNewer(
      key: string,
      kind: string,
      version: string,
      staleAt: string,
      value: Buffer,
      ttlMs: number,
    ): Result<number, Context>;
    cachesideReleaseLock(
      lockKey: string,
      token: string,
      channel: string,
      message: string,
    ): Result<number, Context>;
  }
}

/** Registers the scripts as commands of `client` (EVALSHA, falling back to EVAL once per script). */
export function defineScripts(client: RedisClient): void {
  client.defineCommand('cachesideSetIfNewer', { numberOfKeys: 1, lua: SET_IF_NEWER });
  client.defineCommand('cachesideReleaseLock', { numberOfKeys: 1, lua: RELEASE_LOCK });
}

/*
 * The fence of contract.ts#setMany. KEYS[1] the entry; ARGV: kind code, version, staleAt, encoded entry,
 * ttl ms. Returns 1 when the write landed, 0 when the held entry stays (renewed by an equal-version
 * value or negative entry).
 */
const SET_IF_NEWER = `
local held = redis.call('GET', KEYS[1])
if held then
  local kind, version, payloadAt = string.match(held, '^([vnt]):(%d+):%d+:()')
  if kind then
    local incoming, current = tonumber(ARGV[2]), tonumber(version)
    if kind == 't' then
      if incoming < current or (incoming == current and ARGV[1] == 't') then return 0 end
    elseif incoming < current then
      return 0
    elseif incoming == current then
      -- A refill of the same row: keep the held bytes, but push its expiry out as the writer asked.
      -- A tombstone naming the held version (a duplicated event) has no expiry of its own to give.
      if ARGV[1] ~= 't' then
        redis.call('SET', KEYS[1], kind .. ':' .. version .. ':' .. ARGV[3] .. ':' .. string.sub(held, payloadAt), 'PX', ARGV[5])
      end
      return 0
    end
  end
end
redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[5])
return 1
`;

/*
 * Compare-and-delete: a holder whose lock expired (and was taken by another caller) must not release
 * the new holder's lock. KEYS[1] the lock; ARGV: token, fill channel, message (the entry's key).
 */
const RELEASE_LOCK = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], ARGV[3])
  return 1
end
return 0
`;
