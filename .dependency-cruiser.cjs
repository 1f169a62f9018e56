/**
 * `npm run lint:cycles`: the import rules of src/, checked by dependency-cruiser.
 *
 * 1. No import cycle between files (type-only imports included: a cycle of types is still two files
 *    that cannot be understood apart).
 * 2. The folders are layers, each importing only from the layers below it, so no cycle between folders
 *    can form and `ls -R src` reads bottom-up: the facts (config, domain), observability, the database,
 *    the cache store, what is cached, the read and write paths (and the response tier), the loaders,
 *    the services, GraphQL, the app. The read and write paths and the response tier sit side by side
 *    and never import each other.
 */

/** Bottom to top. A folder (or file) may import from its own layer's paths and from any layer below. */
const LAYERS = [
  ['src/config.ts', 'src/domain/'],
  ['src/observability/'],
  ['src/auth/', 'src/db/'],
  ['src/cache/store/'],
  ['src/cache/entities/'],
  ['src/cache/events/'],
  ['src/cache/read/', 'src/cache/write/', 'src/cache/monitor/', 'src/cache/response/'],
  ['src/cache/create-cache-tier.ts'],
  ['src/loaders/'],
  ['src/services/'],
  ['src/graphql/'],
  ['src/app/'],
  ['src/server.ts', 'src/cli/'],
];

const escape = (path) => path.replace(/[.]/g, '\\.');
const anyOf = (paths) => `^(${paths.map(escape).join('|')})`;

const layerRules = LAYERS.slice(0, -1).map((layer, i) => ({
  name: `layer-${i}-imports-upward`,
  comment: `${layer.join(', ')} may import only from itself and the layers below it`,
  severity: 'error',
  from: { path: anyOf(layer) },
  to: { path: anyOf(LAYERS.slice(i + 1).flat()) },
}));

/** Paths of one layer that must not import each other. */
const SIBLINGS = [
  ['src/cache/read/', 'src/cache/write/'],
  ['src/cache/read/', 'src/cache/monitor/'],
  ['src/cache/write/', 'src/cache/monitor/'],
  ['src/cache/response/', 'src/cache/read/'],
  ['src/cache/response/', 'src/cache/write/'],
  ['src/auth/', 'src/db/'],
  ['src/config.ts', 'src/domain/'],
];
const siblingRules = SIBLINGS.flatMap(([a, b]) => [
  { name: `${a}-imports-${b}`, severity: 'error', from: { path: anyOf([a]) }, to: { path: anyOf([b]) } },
  { name: `${b}-imports-${a}`, severity: 'error', from: { path: anyOf([b]) }, to: { path: anyOf([a]) } },
]);

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'two files that import each other, directly or through others',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'not-in-a-layer',
      comment: 'every file of src/ belongs to a layer of .dependency-cruiser.cjs',
      severity: 'error',
      from: { path: '^src/', pathNot: anyOf(LAYERS.flat()) },
      to: {},
    },
    ...layerRules,
    ...siblingRules,
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
