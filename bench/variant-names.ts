/**
 * The benchmark's variants by name, in the order the tables list them. A module of its own so that
 * the report and the command line can name variants without loading what builds them (variants.ts,
 * server.ts). What each one is: bench/README.md, "What runs".
 */
export type VariantName =
  'naive' | 'dataloader' | 'cacheside' | 'response-tier' | 'always-miss' | 'response-cache' | 'static';

export const VARIANTS: readonly VariantName[] = [
  'naive',
  'dataloader',
  'cacheside',
  'response-tier',
  'always-miss',
  'response-cache',
  'static',
];

/** Gives the reference answers (DataLoaders straight from PostgreSQL), so every run has it. */
export const REFERENCE: VariantName = 'dataloader';

/**
 * The variants that keep answers between requests: they are primed before they are counted or
 * measured, and the read/write mix runs on them only, since stale answers are theirs to give.
 */
export const CACHING: readonly VariantName[] = ['cacheside', 'response-tier', 'response-cache'];

/** The variants that run the product's cache tier as configured: `--cacheside-env` applies to them. */
export const CACHE_TIER: readonly VariantName[] = ['cacheside', 'response-tier', 'always-miss'];
