/**
 * Process plumbing for the benchmark's modes: forking benchmark servers (compiled: build-server.ts)
 * and the load generator (TypeScript, through tsx's loader), talking to them over IPC, reading what a server counted, and
 * plain HTTP calls for priming and counting.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { buildServer } from './build-server.js';
import type { BurstJob, BurstResult } from './burst.js';
import type { RunJob, RunResult } from './load.js';
import type { ServerSpec, ServerStats } from './server.js';
import type { VariantName } from './variant-names.js';

const BENCH_DIR = fileURLToPath(new URL('.', import.meta.url));

export interface BenchServer {
  readonly variant: VariantName;
  readonly origin: string;
  readonly pid: number;
  stats(): Promise<ServerStats>;
  reset(): Promise<void>;
  /** The server's monotonic clock in µs (the clock of its --cpu-prof timestamps). */
  mark(): Promise<number>;
  /** Asks the server to close and exit (a --cpu-prof server writes its profile then); waits for the exit. */
  stop(): Promise<void>;
  /** What it printed, for a failure message. */
  output(): string;
}

/** Echo every server's output to stderr (`--verbose`). */
export const serverOutput = { echo: false };

export async function startServer(spec: ServerSpec, nodeFlags: readonly string[] = []): Promise<BenchServer> {
  // Compiled, not under tsx: the bench measures what ships (build-server.ts, why).
  const child = fork(buildServer(), [JSON.stringify(spec)], {
    execArgv: [...nodeFlags],
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let output = '';
  const onOutput = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-20_000);
    if (serverOutput.echo) process.stderr.write(`[${spec.variant}] ${chunk.toString()}`);
  };
  child.stdout!.on('data', onOutput);
  child.stderr!.on('data', onOutput);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (message: { type: string; port: number }) => {
      if (message.type === 'ready') resolve(message.port);
    });
    void exited.then(() =>
      reject(new Error(`server ${spec.variant} exited before it was ready:\n${output}`)),
    );
  });
  const ask = <T>(type: string) => askChild<T>(child, type, type);
  return {
    variant: spec.variant,
    origin: `http://127.0.0.1:${port}`,
    pid: child.pid!,
    stats: () => ask<ServerStats>('stats'),
    reset: async () => void (await ask('reset')),
    mark: async () => (await ask<{ us: number }>('mark')).us,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.send({ type: 'stop' });
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        await exited;
        clearTimeout(timer);
      }
    },
    output: () => output,
  };
}

/**
 * What a server counted between two snapshots of its stats. Without `before`: since its last reset
 * (SQL and round trips; CPU time is never reset, so `cpuUs` then means nothing).
 */
export function countedBetween(
  before: ServerStats | undefined,
  after: ServerStats,
): { sql: number; roundTrips: number; cpuUs: number } {
  const delta = (pick: (s: ServerStats) => number) => pick(after) - (before === undefined ? 0 : pick(before));
  return {
    sql: delta((s) => sum(Object.values(s.sql))),
    roundTrips: delta((s) => sum(Object.values(s.store))),
    cpuUs: delta((s) => s.cpu.user + s.cpu.system),
  };
}

export interface LoadProcess {
  send(message: object): void;
  run(job: Omit<RunJob, 'type' | 'id'>): Promise<RunResult>;
  burst(job: Omit<BurstJob, 'type' | 'id'>): Promise<BurstResult>;
  readonly pid: number;
  stop(): Promise<void>;
}

export function startLoadProcess(): LoadProcess {
  const child = fork(`${BENCH_DIR}load.ts`, [], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let nextId = 1;
  const pending = new Map<number, { resolve: (v: never) => void; reject: (e: Error) => void }>();
  child.on('message', (message: { type: string; id: number; result?: unknown; error?: string }) => {
    if (message.type !== 'result') return;
    const waiter = pending.get(message.id);
    pending.delete(message.id);
    if (message.error !== undefined) waiter?.reject(new Error(`load generator: ${message.error}`));
    else waiter?.resolve(message.result as never);
  });
  child.once('exit', (code) => {
    for (const waiter of pending.values()) waiter.reject(new Error(`load generator exited (${code})`));
  });
  const call = <T>(job: object) =>
    new Promise<T>((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve: resolve as (v: never) => void, reject });
      child.send({ ...job, id });
    });
  return {
    pid: child.pid!,
    send: (message) => child.send(message),
    run: (job) => call<RunResult>({ ...job, type: 'run' }),
    burst: (job) => call<BurstResult>({ ...job, type: 'burst' }),
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.disconnect();
      await exited;
    },
  };
}

export interface HttpAnswer {
  readonly status: number;
  readonly body: string;
}

export async function post(
  origin: string,
  body: string,
  headers: Record<string, string> = {},
): Promise<HttpAnswer> {
  const response = await fetch(`${origin}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
  });
  return { status: response.status, body: await response.text() };
}

/** Runs `work` over `items` with at most `concurrency` at a time, keeping the order of results. */
export async function mapConcurrent<T, R>(
  items: readonly T[],
  concurrency: number,
  work: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        results[i] = await work(items[i]!, i);
      }
    }),
  );
  return results;
}

/** Busy and total jiffies of the whole machine (all cores), from /proc/stat; undefined elsewhere. */
export function machineCpu(): { busy: number; total: number } | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const fields = line.trim().split(/\s+/).slice(1).map(Number);
    const total = fields.reduce((a, b) => a + b, 0);
    const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

/** Progress goes to stderr, so that stdout holds only the tables (and can be redirected). */
export function log(message: string): void {
  console.error(`[bench] ${message}`);
}

// Private:

function sum(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

function askChild<T>(child: ChildProcess, type: string, reply: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onMessage = (message: { type: string }) => {
      if (message.type !== reply) return;
      child.off('message', onMessage);
      child.off('exit', onExit);
      resolve(message as T);
    };
    const onExit = () => reject(new Error(`server exited while asked for ${type}`));
    child.on('message', onMessage);
    child.once('exit', onExit);
    child.send({ type });
  });
}
