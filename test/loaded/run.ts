/**
 * `npm run test:loaded [-- --runs N --busy N --keep]`: the whole suite on a busy machine, the way CI
 * machines and laptops are. It clones the committed HEAD into a temporary directory (uncommitted
 * changes are not tested: it is a clean clone), installs it with `npm ci`, starts `--busy` CPU
 * burners (`node -e 'for(;;){}'`, default one per core), then runs `npm test` `--runs` times in a
 * row (default 2) beside them. Prints each run's passed, failed, unhandled errors, duration and
 * load average, and exits 1 unless every run had 0 failed and 0 unhandled errors. The README's
 * testing section quotes its last figures.
 *
 * The suite is expected to pass here because its tests wait for conditions, never for time
 * (test/support/until.ts), and use no TTL or deadline a slow machine can cross by accident.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  args: process.argv.slice(2).filter((arg) => arg !== '--'),
  options: {
    runs: { type: 'string', default: '2' },
    busy: { type: 'string', default: String(availableParallelism()) },
    keep: { type: 'boolean', default: false },
  },
  strict: true,
});
const count = (name: string, text: string, min: number) => {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min)
    throw new Error(`--${name} must be an integer of at least ${min}, got ${JSON.stringify(text)}`);
  return n;
};
const runs = count('runs', values.runs, 1);
const busy = count('busy', values.busy, 0);

const repo = resolve(import.meta.dirname, '../..');
const log = (line: string) => process.stderr.write(`[test:loaded] ${line}\n`);

function run(command: string, args: string[], cwd: string): void {
  // Their output goes to stderr with ours: stdout carries only the JSON summary.
  const result = spawnSync(command, args, { cwd, stdio: ['ignore', process.stderr, process.stderr] });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (exit ${result.status})`);
}

interface RunFigures {
  readonly run: number;
  readonly passed: number;
  readonly failed: number;
  readonly skipped: number;
  readonly unhandledErrors: number;
  readonly exitCode: number | null;
  readonly seconds: number;
  readonly loadAverage: { readonly mean: number; readonly max: number };
}

/** One `npm test`, its output passed through; its counts from vitest's JSON report and summary. */
async function suite(clone: string, index: number): Promise<RunFigures> {
  const report = join(clone, `.loaded-run-${index}.json`);
  const started = performance.now();
  const loads: number[] = [];
  const sampler = setInterval(() => loads.push(loadavg()[0]!), 5_000);
  let output = '';
  const exitCode = await new Promise<number | null>((done) => {
    const child = spawn(
      'npm',
      ['test', '--', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`],
      {
        cwd: clone,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    for (const stream of [child.stdout, child.stderr]) {
      stream.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        process.stderr.write(chunk);
      });
    }
    child.on('close', done);
  });
  clearInterval(sampler);
  const plain = output.replace(/\x1b\[[0-9;]*m/g, '');
  const unhandled = /Errors\s+(\d+) errors?/.exec(plain);
  let counts = { passed: 0, failed: 1, skipped: 0 };
  try {
    const json = JSON.parse(readFileSync(report, 'utf8')) as Record<string, number>;
    counts = {
      passed: json.numPassedTests!,
      failed: json.numFailedTests!,
      skipped: json.numPendingTests! + json.numTodoTests!,
    };
  } catch {
    // no report: the run did not finish; counted as failed
  }
  return {
    run: index,
    ...counts,
    unhandledErrors: unhandled ? Number(unhandled[1]) : 0,
    exitCode,
    seconds: Math.round((performance.now() - started) / 1000),
    loadAverage: {
      mean: loads.length ? Number((loads.reduce((a, b) => a + b, 0) / loads.length).toFixed(1)) : 0,
      max: loads.length ? Number(Math.max(...loads).toFixed(1)) : 0,
    },
  };
}

const clone = mkdtempSync(join(tmpdir(), 'cacheside-loaded.'));
const burners: ChildProcess[] = [];
const stopBurners = () => {
  for (const burner of burners) burner.kill('SIGKILL');
};
process.on('exit', stopBurners);
let figures: RunFigures[] = [];
try {
  const head = spawnSync('git', ['rev-parse', '--short', 'HEAD'], {
    cwd: repo,
    encoding: 'utf8',
  }).stdout.trim();
  log(`cloning ${repo} at ${head} into ${clone}`);
  run('git', ['clone', '--quiet', '--no-hardlinks', repo, clone], repo);
  log('npm ci');
  run('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], clone);
  log(`starting ${busy} busy loop(s) (node -e 'for(;;){}') on ${availableParallelism()} core(s)`);
  for (let i = 0; i < busy; i += 1)
    burners.push(spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }));
  for (let i = 1; i <= runs; i += 1) {
    log(`run ${i} of ${runs}`);
    figures = [...figures, await suite(clone, i)];
  }
} finally {
  stopBurners();
  if (!values.keep) rmSync(clone, { recursive: true, force: true });
}

const summary = { busyLoops: busy, cores: availableParallelism(), node: process.version, runs: figures };
process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
const ok = figures.every(
  (f) => f.failed === 0 && f.unhandledErrors === 0 && f.skipped === 0 && f.exitCode === 0,
);
log(ok ? `${runs} run(s) passed beside ${busy} busy loop(s)` : 'FAILED: see the runs above');
process.exit(ok ? 0 : 1);
