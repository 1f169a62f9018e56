/**
 * `--render FILE`: bench/RESULTS.md again from a saved run, after a change to the report rather than
 * to the product, so that the table changes without measuring again.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { BenchOptions } from '../options.js';
import { renderMarkdown, RESULTS_MD } from '../report.js';
import type { BenchResults } from '../results.js';

export function runRender(options: BenchOptions): number {
  const markdown = renderMarkdown(JSON.parse(readFileSync(savedRun(options.renderFile!), 'utf8')) as BenchResults);
  console.log(markdown);
  if (options.write) writeFileSync(RESULTS_MD, markdown);
  return 0;
}

/**
 * The path as given, or else below bench/: `npm run bench` runs in the repository root, and the
 * documented `--render results/FILE.json` names the file as bench/ sees it.
 */
function savedRun(file: string): string {
  return existsSync(file) ? file : resolve(RESULTS_MD, '..', file);
}
