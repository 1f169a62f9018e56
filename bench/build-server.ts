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
 * (tsconfig.server.json; about 5 s, a whole build every time: an incremental one trusts its build
 * info over its outputs, and would not notice a half-removed folder) into bench/.build/,
 * and schema/ and drizzle/ are linked beside the compiled src/, where it looks for them (one folder
 * above its own folders, as from src/ and dist/). The harness, the load generator and the modes
 * still run under tsx: they are not measured.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const BENCH_DIR = fileURLToPath(new URL('.', import.meta.url));
const BUILD_DIR = `${BENCH_DIR}.build/`;
/** What src/ reads from the repository's root at run time (create-yoga.ts, migrate.ts). */
const LINKED = ['schema', 'drizzle'] as const;

let built: string | undefined;

/** Compiles the bench's server (once per process) and answers the path of its entry point. */
export function buildServer(): string {
  if (built !== undefined) return built;
  const entry = `${BUILD_DIR}bench/server.js`;
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  try {
    execFileSync(process.execPath, [tsc, '-p', `${BENCH_DIR}tsconfig.server.json`], { stdio: 'pipe' });
  } catch (error) {
    const output = (error as { stdout?: Buffer }).stdout?.toString() ?? '';
    throw new Error(`compiling the bench's server (bench/tsconfig.server.json) failed:\n${output}`, {
      cause: error,
    });
  }
  for (const name of LINKED) {
    if (!existsSync(`${BUILD_DIR}${name}`)) symlinkSync(`../../${name}`, `${BUILD_DIR}${name}`, 'dir');
  }
  built = entry;
  return built;
}
