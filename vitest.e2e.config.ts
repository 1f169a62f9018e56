import { defineConfig } from 'vitest/config';
import base from './vitest.config.js';

// Browser tests (`npm run test:e2e`): headless Chromium against an in-process app on a real port.
// The suite's config (vitest.config.ts: resolution, pool, hooks) with only the browser tests, which
// `npm test` does not run because it needs no browser.
// Not the suite's projects: a config that declares projects runs only them.
const suite = { ...base.test };
delete suite.projects;

export default defineConfig({
  ...base,
  test: {
    ...suite,
    include: ['test/e2e/**/*.e2e.ts'],
    // One browser at a time: Chromium alone fills the two cores of the machine this runs on.
    maxWorkers: 1,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
