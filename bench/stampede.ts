/**
 * The stampede: 1 000 requests for one cold user at once, over two fresh instances, counting how
 * many times PostgreSQL is asked for it. With locks on it must be once, whatever the number of
 * instances; the rows with locks off and without a cache show what the locks save.
 */
import { log, startServer, type LoadProcess } from './harness.js';
import type { StampedeRow } from './results.js';
import { purgeRedis, type BenchEnvironment } from './setup.js';
import type { VariantName } from './variant-names.js';
import { body } from './workloads.js';

const STAMPEDE_REQUESTS = 1000;
const STAMPEDE_USER = 4242;

export const STAMPEDE_BODY = body(
  `query Cold($id: ID!) { user(id: $id) { id name profile { displayName location } } }`,
  {
    id: String(STAMPEDE_USER),
  },
);

/** `expected`: the reference answer to STAMPEDE_BODY, which every response of the burst must be. */
export async function runStampede(
  load: LoadProcess,
  env: BenchEnvironment,
  expected: string,
): Promise<StampedeRow[]> {
  // Each configuration twice, with the default Redis command timeout and with a long one: a burst
  // this size holds the event loop for longer than the default 200 ms, and a reply that waited in
  // the socket meanwhile must not count as a timeout (src/cache/store/redis/deadline.ts), or reads
  // go to PostgreSQL and the breaker opens; the default rows check that. The 2 s rows show the
  // locks themselves, whatever the timeout does.
  const slowTimeout = { REDIS_COMMAND_TIMEOUT_MS: '2000' };
  const configs: { name: string; variant: VariantName; locksOff?: boolean; env?: Record<string, string> }[] =
    [
      { name: 'cacheside, locks on', variant: 'cacheside' },
      { name: 'cacheside, locks off', variant: 'cacheside', locksOff: true },
      { name: 'cacheside, locks on, 2 s command timeout', variant: 'cacheside', env: slowTimeout },
      {
        name: 'cacheside, locks off, 2 s command timeout',
        variant: 'cacheside',
        locksOff: true,
        env: slowTimeout,
      },
      { name: 'dataloader, no cache', variant: 'dataloader' },
    ];
  const rows: StampedeRow[] = [];
  for (const [i, config] of configs.entries()) {
    // A fresh key prefix: the key is cold in Redis; fresh processes: cold in memory.
    const spec = env.specOf(config.variant, {
      prefix: `${env.prefix}_stampede${i}`,
      relay: false,
      trackIds: true,
      ...(config.locksOff ? { locksOff: true } : {}),
      ...(config.env ? { env: config.env } : {}),
    });
    const pair = await Promise.all([startServer(spec), startServer(spec)]);
    try {
      log(
        `stampede: ${STAMPEDE_REQUESTS} concurrent requests for user ${STAMPEDE_USER} over two instances, ${config.name}`,
      );
      const result = await load.burst({
        origins: pair.map((s) => s.origin),
        total: STAMPEDE_REQUESTS,
        body: STAMPEDE_BODY,
        expected,
      });
      const stats = await Promise.all(pair.map((s) => s.stats()));
      const loadsOf = (key: string) => stats.reduce((n, s) => n + (s.loads[key] ?? 0), 0);
      rows.push({
        config: config.name,
        requests: result.requests,
        userLoads: loadsOf(`users:${STAMPEDE_USER}`),
        profileLoads: loadsOf(`profiles:${STAMPEDE_USER}`),
        p50Ms: result.latencyMs.p50,
        p99Ms: result.latencyMs.p99,
        maxMs: result.latencyMs.max,
        bad: result.bad,
        breakerOpened: stats.reduce((n, s) => n + s.breaker.opened, 0),
        shortCircuited: stats.reduce((n, s) => n + s.breaker.shortCircuited, 0),
      });
      if (result.bad > 0)
        console.error(`  stampede ${config.name}: ${result.bad} bad, e.g. ${result.badSamples[0]}`);
    } finally {
      await Promise.all(pair.map((s) => s.stop()));
      await purgeRedis(spec.prefix);
    }
  }
  return rows;
}
