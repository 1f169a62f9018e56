/**
 * GraphiQL's page, split so that a browser downloads GraphiQL once. yoga's renderer inlines GraphiQL,
 * Monaco and its three workers into one 9 MB HTML document that can be cached by nobody (`no-store`,
 * and it embeds per-server options). Here the page is a few kilobytes that name its assets, and each
 * asset is served at a fingerprinted path (`/graphiql/<name>.<sha256 prefix>.<ext>`): its content
 * decides its URL, so it can be cached for a year, `immutable`, and an upgrade of GraphiQL is a new
 * URL. Everything stays on this server: no CDN (test/e2e/graphiql.e2e.ts checks it).
 */
import { createHash } from 'node:crypto';
import {
  css,
  editorWorkerService,
  favicon,
  graphqlWorker,
  js,
  jsonWorker,
} from '@graphql-yoga/render-graphiql/graphiql';
import { cachePanelMarkup } from './cache-panel.js';
import { compressible } from './compression.js';

/** Where the assets are served. */
export const GRAPHIQL_ASSETS_PATH = '/graphiql/';

export interface Asset {
  readonly path: string;
  readonly contentType: string;
  readonly body: ReturnType<typeof compressible>;
}

function asset(name: string, extension: string, contentType: string, bytes: Buffer): Asset {
  const hash = createHash('sha256').update(bytes).digest('hex').slice(0, 16);
  return {
    path: `${GRAPHIQL_ASSETS_PATH}${name}.${hash}.${extension}`,
    contentType,
    body: compressible(bytes),
  };
}

const JS = 'text/javascript; charset=utf-8';
const text = (value: string) => Buffer.from(value, 'utf8');
const icon = Buffer.from(favicon.slice(favicon.indexOf(',') + 1), 'base64');

/** Built once per process: the hashes are computed from the bundled GraphiQL itself. */
export const GRAPHIQL_ASSETS = {
  js: asset('graphiql', 'js', JS, text(js)),
  css: asset('graphiql', 'css', 'text/css; charset=utf-8', text(css)),
  editorWorkerService: asset('editor.worker', 'js', JS, text(editorWorkerService)),
  json: asset('json.worker', 'js', JS, text(jsonWorker)),
  graphql: asset('graphql.worker', 'js', JS, text(graphqlWorker)),
  favicon: asset('favicon', 'ico', 'image/x-icon', icon),
} as const;

export const ASSETS_BY_PATH: ReadonlyMap<string, Asset> = new Map(
  Object.values(GRAPHIQL_ASSETS).map((a) => [a.path, a]),
);

/** JSON for an inline script: `<` escaped, so no value can close the script element. */
const inline = (value: unknown) => JSON.stringify(value).replace(/</g, '\\u003c');
const escapeHtml = (value: string) =>
  value.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/**
 * The page yoga serves for GraphiQL (its `renderGraphiQL` option), with the cache panel. `options`
 * are yoga's GraphiQL options, passed to GraphiQL as yoga's own renderer does.
 */
export function renderGraphiQLPage(panel: {
  endpoint: string;
  debug: boolean;
}): (options: { title?: string } & Record<string, unknown>) => string {
  const a = GRAPHIQL_ASSETS;
  const workers = {
    editorWorkerService: a.editorWorkerService.path,
    json: a.json.path,
    graphql: a.graphql.path,
  };
  return (options) => `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>${escapeHtml(options.title ?? 'GraphiQL')}</title>
    <link rel="icon" href="${a.favicon.path}" />
    <link rel="stylesheet" href="${a.css.path}" />
  </head>
  <body id="body" class="no-focus-outline">
    <noscript>You need to enable JavaScript to run this app.</noscript>
    <div id="root"></div>
    ${cachePanelMarkup(panel)}
    <script>
      self.MonacoEnvironment = {
        globalAPI: false,
        getWorkerUrl: function (moduleId, label) { return ${inline(workers)}[label]; },
      };
    </script>
    <script src="${a.js.path}"></script>
    <script>
      YogaGraphiQL.renderYogaGraphiQL(document.querySelector('#root'), ${inline(options)});
    </script>
  </body>
</html>
`;
}
