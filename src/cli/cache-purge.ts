/**
 * `npm run cache:purge -- --entity profile --id 42` or `npm run cache:purge -- --all`: stops serving
 * cached entries, keeping the version fence (see src/cache/write/purge.ts): never KEYS, never a bare DEL;
 * then tells every instance's L1 tier on the events channel. Needs REDIS_URL (or REDIS_CLUSTER_NODES):
 * the in-memory store lives inside one server process.
 *
 * Exit codes: 0 done; 1 failed (Redis unreachable), or purged but the event not published (it says
 * so: run it again); 2 bad arguments.
 */
import { parseArgs } from 'node:util';
import { loadConfig } from '../config.js';
import { ID_RULE, parseId } from '../domain/ids.js';
import { createStoreFromConfig, describeStore } from '../cache/store/from-config.js';
import { createEntryFactory } from '../cache/entities/entries.js';
import { CACHED_ENTITIES, createCacheKeys, type CachedEntity } from '../cache/entities/keys.js';
import { purgeAll, purgeEntity, PurgeNotAnnouncedError } from '../cache/write/purge.js';
import { createLogger } from '../observability/logger.js';
import { describeError } from './describe-error.js';

const USAGE = `usage: npm run cache:purge -- --entity <${CACHED_ENTITIES.join('|')}> --id <id>
       npm run cache:purge -- --all`;

type Target = { all: true } | { all: false; entity: CachedEntity; id: number };

function parseTarget(argv: string[]): Target | string {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { entity: { type: 'string' }, id: { type: 'string' }, all: { type: 'boolean' } },
      strict: true,
    }));
  } catch (error) {
    return describeError(error);
  }
  if (values.all) {
    return values.entity === undefined && values.id === undefined
      ? { all: true }
      : '--all takes no --entity or --id';
  }
  const entity = values.entity;
  if (entity === undefined || !(CACHED_ENTITIES as readonly string[]).includes(entity)) {
    return `--entity must be one of ${CACHED_ENTITIES.join(', ')}, got ${JSON.stringify(entity ?? '')}`;
  }
  const id = parseId(values.id ?? '');
  if (id === undefined) return `--id must be ${ID_RULE}, got ${JSON.stringify(values.id ?? '')}`;
  return { all: false, entity: entity as CachedEntity, id };
}

async function main(): Promise<number> {
  const target = parseTarget(process.argv.slice(2).filter((arg) => arg !== '--'));
  if (typeof target === 'string') {
    process.stderr.write(`error: ${target}\n${USAGE}\n`);
    return 2;
  }
  const config = loadConfig();
  if (config.redis.kind === 'memory') {
    process.stderr.write(
      'error: no REDIS_URL or REDIS_CLUSTER_NODES: the in-memory store lives inside the server process; restart it to empty it\n',
    );
    return 1;
  }
  const logger = createLogger('warn');
  const keys = createCacheKeys(config.cache.prefix);
  const store = createStoreFromConfig(config, logger, { dependentKeys: keys.dependents });
  const deps = {
    store,
    keys,
    entries: createEntryFactory({ config: config.cache }),
  };
  try {
    if (target.all) {
      const { visited, invalidated } = await purgeAll(deps);
      process.stdout.write(
        `invalidated ${invalidated} cached entries (${visited} keys scanned) in ${describeStore(config)}\n`,
      );
    } else {
      const invalidated = await purgeEntity(deps, target.entity, target.id);
      const key = deps.keys.entity(target.entity, target.id);
      process.stdout.write(invalidated > 0 ? `invalidated ${key}\n` : `${key} held no cached value\n`);
    }
    return 0;
  } finally {
    await store.close();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    // The store's part done and only the instances not told: say so, rather than "failed".
    const what = error instanceof PurgeNotAnnouncedError ? '' : 'purge failed: ';
    process.stderr.write(`error: ${what}${describeError(error)}\n`);
    process.exitCode = 1;
  },
);
