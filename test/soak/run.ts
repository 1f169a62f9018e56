/**
 * `npm run soak [-- --operations N --fault-every K --concurrency C --write-share W --sql-write-every Q
 * --user-churn-every U --l1 --seed S]`: the long soak of
 * test/support/soak.ts (default 100 000 operations, a Redis fault every 4 000), against the
 * PostgreSQL at DATABASE_URL and a private redis-server it starts itself. Prints its figures as JSON
 * and exits 1 if any guarantee broke (a stale read after an acknowledged write, a monitor violation,
 * an error, a key that did not converge). docs/consistency.md quotes its last run.
 */
import { parseArgs } from 'node:util';
import { runSoak } from '../support/soak.js';

const { values } = parseArgs({
  args: process.argv.slice(2).filter((arg) => arg !== '--'),
  options: {
    operations: { type: 'string', default: '100000' },
    'fault-every': { type: 'string', default: '4000' },
    concurrency: { type: 'string', default: '12' },
    'write-share': { type: 'string', default: '0.05' },
    'sql-write-every': { type: 'string', default: '40' },
    'user-churn-every': { type: 'string', default: '60' },
    l1: { type: 'boolean', default: false },
    seed: { type: 'string' },
  },
  strict: true,
});

const positive = (name: string, text: string) => {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1)
    throw new Error(`--${name} must be a positive integer, got ${JSON.stringify(text)}`);
  return n;
};

const share = (name: string, text: string) => {
  const n = Number(text);
  if (!(n > 0 && n < 1))
    throw new Error(`--${name} must be a number between 0 and 1, got ${JSON.stringify(text)}`);
  return n;
};

const report = await runSoak({
  operations: positive('operations', values.operations),
  faultEvery: positive('fault-every', values['fault-every']),
  concurrency: positive('concurrency', values.concurrency),
  writeShare: share('write-share', values['write-share']),
  sqlWriteEvery: positive('sql-write-every', values['sql-write-every']),
  userChurnEvery: positive('user-churn-every', values['user-churn-every']),
  l1: values.l1,
  ...(values.seed !== undefined && { seed: positive('seed', values.seed) }),
  log: (line) => process.stderr.write(`[soak] ${line}\n`),
});
process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
const broken =
  report.staleReads > 0 ||
  report.monitorViolations > 0 ||
  report.unconverged > 0 ||
  Object.keys(report.errors).length > 0;
process.exit(broken ? 1 : 0);
