/**
 * The bench's servers run what ships. `npm start` runs `node dist/server.js`, which tsc compiled; the
 * bench used to run bench/server.ts under tsx instead, whose esbuild transform keeps function names by
 * wrapping every named function and closure in a `__name` call when it is created. That made the
 * variants that create few closures of ours pay more than what ships, and the others not: with
 * `bench/compare.ts` (2026-12-04, 3 interleaved rounds, tsx against compiled, same variant),
 * `dataloader` spent 2 783 against 2 439 µs of server CPU per `users20` request and 3 121 against
 * 2 771 per `userPage` one under tsx, while `cacheside` and `always-miss` moved within the noise
 * (1 158 / 1 179, 4 913 / 4 677) — so tsx had flattered the ratios over `dataloader`.
 *
 * So server.ts and everything it imports are compiled with the project's compiler options
 * (tsconfig.server.json, about 5 s) into a folder of this process's own, bench/.build/<pid>/: two
 * benches at once in one checkout (`npm test` runs `bench --quick`) would otherwise fork a server
 * from files the other is rewriting. The folder goes when the process exits, and folders of
 * processes that are gone (killed) when the next build starts. schema/ and drizzle/ are linked
 * beside the compiled src/, where it looks for them (one folder above its own folders, as from src/
 * and dist/). The harness, the load generator and the modes still run under tsx: they are not
 * measured.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const BENCH_DIR = fileURLToPath(new URL('.', import.meta.url));
/** Where the builds go (ignored by git); each process's in a folder named by its pid. */
export const BUILDS_DIR = `${BENCH_DIR}.build/`;
/** What src/ reads from the repository's root at run time (create-yoga.ts, migrate.ts). */
const LINKED = ['schema', 'drizzle'] as const;

let built: string | undefined;

/** Compiles the bench's server (once per process) and answers the path of its entry point. */
export function buildServer(): string {
  if (built !== undefined) return built;
  removeOrphans();
  const dir = `${BUILDS_DIR}${process.pid}/`;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const entry = `${dir}bench/server.js`;
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  try {
    execFileSync(process.execPath, [tsc, '-p', `${BENCH_DIR}tsconfig.server.json`, '--outDir', dir], {
      stdio: 'pipe',
      maxBuffer: 64 * 1024 * 1024,
    });
  } catch (error) {
    // tsc emits despite type errors (CI type-checks on its own, as test/support/http-server.ts
    // reasons): only a server that was not emitted stops the bench.
    if (!existsSync(entry)) {
      const output = (error as { stdout?: Buffer }).stdout?.toString() ?? '';
      throw new Error(`compiling the bench's server (bench/tsconfig.server.json) failed:\n${output}`, {
        cause: error,
      });
    }
  }
  for (const name of LINKED) symlinkSync(`../../../${name}`, `${dir}${name}`, 'dir');
  built = entry;
  return built;
}

/** Removes the builds of processes that no longer run (a bench killed before its exit handler). */
function removeOrphans(): void {
  if (!existsSync(BUILDS_DIR)) return;
  for (const name of readdirSync(BUILDS_DIR)) {
    const pid = Number(name);
    if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && isGone(pid)) {
      rmSync(`${BUILDS_DIR}${name}`, { recursive: true, force: true });
    }
  }
}

function isGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
