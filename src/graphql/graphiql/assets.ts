/**
 * GraphiQL's page, split so that a browser downloads GraphiQL once. yoga's renderer inlines GraphiQL,
 * Monaco and its three workers into one 9 MB HTML document that can be cached by nobody (`no-store`,
 * and it embeds per-server options). Here the page is a few kilobytes that name its assets, and each
 * asset is served at a fingerprinted path (`/graphiql/<name>.<sha256 prefix>.<ext>`): its content
 * decides its URL, so it can be cached for a year, `immutable`, and an upgrade of GraphiQL is a new
 * URL. Everything stays on this server: no CDN (test/e2e/graphiql.e2e.ts checks it).
 */
import { createHash } from 'node:crypto';
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

export interface GraphiQLAssets {
  readonly js: Asset;
  readonly css: Asset;
  readonly editorWorkerService: Asset;
  readonly json: Asset;
  readonly graphql: Asset;
  readonly favicon: Asset;
  /** The same, by the path each is served at. */
  readonly byPath: ReadonlyMap<string, Asset>;
}

let loaded: Promise<GraphiQLAssets> | undefined;

/**
 * The assets, built on first use — the first GraphiQL page or asset asked for — and kept: GraphiQL is
 * 9 MB of JavaScript, which a server that nobody opens GraphiQL on (GRAPHIQL off, production, the
 * benchmark) need not parse, hash and hold, nor any start wait for.
 */
export function graphiqlAssets(): Promise<GraphiQLAssets> {
  return (loaded ??= import('@graphql-yoga/render-graphiql/graphiql').then((bundle) => {
    const assets = {
      js: asset('graphiql', 'js', JS, text(bundle.js)),
      css: asset('graphiql', 'css', 'text/css; charset=utf-8', text(bundle.css)),
      editorWorkerService: asset('editor.worker', 'js', JS, text(bundle.editorWorkerService)),
      json: asset('json.worker', 'js', JS, text(bundle.jsonWorker)),
      graphql: asset('graphql.worker', 'js', JS, text(bundle.graphqlWorker)),
      favicon: asset('favicon', 'ico', 'image/x-icon', Buffer.from(bundle.favicon.split(',')[1]!, 'base64')),
    };
    return { ...assets, byPath: new Map(Object.values(assets).map((a) => [a.path, a])) };
  }));
}

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
}): (options: { title?: string } & Record<string, unknown>) => Promise<string> {
  return async (options) => {
    const a = await graphiqlAssets();
    const workers = {
      editorWorkerService: a.editorWorkerService.path,
      json: a.json.path,
      graphql: a.graphql.path,
    };
    return `<!doctype html>
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
  };
}
