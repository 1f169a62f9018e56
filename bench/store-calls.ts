/**
 * What the miss path's store calls cost the client, per call, on the real Redis: the CPU (user +
 * system, of this process) of `getMany` of cold keys, `acquireLocks`, `fillMany` and `getMany` of the
 * same keys warm, for one batch of N keys, averaged over many sequential calls. The Redis driver is
 * the product's (createRedisStore), with no layer around it. For changes to the driver's scripts and
 * arguments, whose effect a full run's ±30 % cannot show (bench/README.md, "Where we stand").
 *
 *   tsx bench/store-calls.ts [keys per batch = 60] [calls = 1500] [payload bytes = 220]
 */
import { randomBytes } from 'node:crypto';
import { createRedisConnections } from '../src/cache/store/redis/connections.js';
import { createRedisStore } from '../src/cache/store/redis/redis-store.js';
import { purgeRedis, REDIS_URL } from './setup.js';

const [keysPerBatch = 60, calls = 1500, payloadBytes = 220] = process.argv.slice(2).map(Number);
/** Calls made before measuring: script loads, JIT. */
const WARMUP = 200;

const prefix = `bench_calls_${randomBytes(4).toString('hex')}`;
const connections = createRedisConnections({ url: REDIS_URL, commandTimeoutMs: 2000 });
const store = createRedisStore({
  connections,
  dependentKeys: { writeStamp: `${prefix}:{stamp}`, generation: `${prefix}:{generation}` },
});
const keys = Array.from({ length: keysPerBatch }, (_, i) => `${prefix}:v1:post:{${i}}:`);
const payload = new Uint8Array(payloadBytes).fill(0x61);
const spent = { 'getMany (cold)': 0, acquireLocks: 0, fillMany: 0, 'getMany (warm)': 0 };

async function timed(name: keyof typeof spent, measured: boolean, call: () => Promise<unknown>) {
  const before = process.cpuUsage();
  await call();
  const used = process.cpuUsage(before);
  if (measured) spent[name] += used.user + used.system;
}

try {
  for (let round = 0; round < WARMUP + calls; round += 1) {
    const measured = round >= WARMUP;
    const token = `bench-${round}`;
    await store.purgePrefix(`${prefix}:v1:`);
    await timed('getMany (cold)', measured, () => store.getMany(keys));
    await timed('acquireLocks', measured, () => store.acquireLocks(keys, token, 5000));
    const staleAt = Date.now() + 3_600_000;
    const fills = keys.map((key, i) => ({
      key,
      ttlMs: 3_600_000 + i,
      entry: { kind: 'value' as const, version: 1, staleAt, payload },
    }));
    await timed('fillMany', measured, () => store.fillMany(fills, token));
    await timed('getMany (warm)', measured, () => store.getMany(keys));
  }
  console.log(`${keysPerBatch} keys per batch, ${payloadBytes}-byte payloads, ${calls} calls each:`);
  for (const [name, us] of Object.entries(spent)) {
    console.log(`  ${name.padEnd(15)} ${(us / calls).toFixed(0).padStart(5)} µs of client CPU per call`);
  }
} finally {
  await store.close();
  await purgeRedis(prefix);
}
