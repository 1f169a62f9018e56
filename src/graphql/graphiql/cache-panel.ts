/**
 * GraphiQL's cache panel: what the cache did for the last operation GraphiQL ran — `X-Cache` (with
 * hits and misses), `Cache-Status` one tier per line, `Server-Timing`, and, when the server honours
 * `x-cache-debug` (CACHE_DEBUG), every key the request looked up with its tier, outcome and TTL.
 * GraphiQL's result pane shows only the body; these are response headers, and watching them is why
 * a newcomer opens GraphiQL here.
 *
 * yoga's GraphiQL takes options as JSON, not components, so the panel is a small script of its own,
 * run before GraphiQL's bundle: it wraps `window.fetch` (GraphiQL's fetcher calls it), reads the
 * headers of each /graphql answer other than introspection, and draws a fixed box. Plain browser
 * JavaScript in a string: the project's TypeScript has no DOM library, and the page is served
 * offline, as GraphiQL itself is (test/e2e/graphiql.e2e.ts drives it).
 */

/** The panel's element id, for the browser test. */
export const CACHE_PANEL_ID = 'cacheside-cache-panel';

/** The `<style>` and `<script>` to put in GraphiQL's page before its bundle runs. */
export function cachePanelMarkup({ endpoint, debug }: { endpoint: string; debug: boolean }): string {
  const settings = JSON.stringify({ id: CACHE_PANEL_ID, endpoint, debug });
  return `<style>
#${CACHE_PANEL_ID}{position:fixed;right:12px;bottom:12px;z-index:1000;max-width:560px;max-height:45vh;overflow:auto;
background:#0b1021;color:#e8eaf6;font:12px/1.5 ui-monospace,SFMono-Regular,Menlo,monospace;border-radius:6px;
padding:8px 12px;box-shadow:0 2px 12px rgba(0,0,0,.35)}
#${CACHE_PANEL_ID} h2{font-size:12px;margin:0 0 4px;color:#9fa8da}
#${CACHE_PANEL_ID} .x-cache{font-weight:bold}
#${CACHE_PANEL_ID} table{border-collapse:collapse;margin-top:4px}
#${CACHE_PANEL_ID} td{padding:0 8px 0 0;white-space:nowrap}
</style>
<script>
(function (settings) {
  var panel;
  function draw(rows) {
    if (!panel) {
      panel = document.createElement('section');
      panel.id = settings.id;
      panel.setAttribute('aria-label', 'What the cache did');
      document.body.appendChild(panel);
    }
    panel.replaceChildren();
    var title = document.createElement('h2');
    title.textContent = 'Cache (last operation)';
    panel.appendChild(title);
    rows.forEach(function (row) {
      var line = document.createElement(row.table ? 'table' : 'div');
      if (row.className) line.className = row.className;
      if (row.table) {
        row.table.forEach(function (cells) {
          var tr = document.createElement('tr');
          cells.forEach(function (cell) {
            var td = document.createElement('td');
            td.textContent = cell;
            tr.appendChild(td);
          });
          line.appendChild(tr);
        });
      } else {
        line.textContent = row.text;
      }
      panel.appendChild(line);
    });
  }
  function isOperation(input, init) {
    var url = new URL(typeof input === 'string' ? input : input.url, location.href);
    if (url.pathname !== settings.endpoint || !init || typeof init.body !== 'string') return false;
    try {
      return JSON.parse(init.body).operationName !== 'IntrospectionQuery';
    } catch (e) {
      return false;
    }
  }
  var fetchFirst = window.fetch.bind(window);
  window.fetch = function (input, init) {
    if (!isOperation(input, init)) return fetchFirst(input, init);
    if (settings.debug) {
      var headers = new Headers(init.headers);
      headers.set('x-cache-debug', '1');
      init = Object.assign({}, init, { headers: headers });
    }
    return fetchFirst(input, init).then(function (response) {
      var h = response.headers;
      var rows = [
        { className: 'x-cache', text: 'X-Cache: ' + (h.get('x-cache') || '(none)') +
          (h.get('x-cache-hits') !== null ? ' (' + h.get('x-cache-hits') + ' hits, ' + h.get('x-cache-misses') + ' misses)' : '') },
      ];
      (h.get('cache-status') || '(none)').split(/,\\s*(?=cacheside-)/).forEach(function (member, i) {
        rows.push({ text: (i === 0 ? 'Cache-Status: ' : '              ') + member });
      });
      rows.push({ text: 'Server-Timing: ' + (h.get('server-timing') || '(none)') });
      draw(rows);
      if (settings.debug) {
        response.clone().json().then(function (body) {
          var cache = body && body.extensions && body.extensions.cache;
          var answer = cache && cache.response;
          if (answer) {
            // The response tier: a stored answer served (nothing was looked up), or why it was not.
            rows.push({ text: 'Response tier: ' + (answer.outcome === 'hit'
              ? 'stored answer served, ' + answer.dependencies + ' versions checked'
              : 'executed' + (answer.failed ? ' (changed: ' + answer.failed + ')' : '')) });
            draw(rows);
          }
          var lookups = cache && cache.lookups;
          if (!lookups || !lookups.length) return;
          rows.push({ table: lookups.map(function (l) {
            return [l.key, l.tier, l.status, l.ttlMs === undefined ? '' : 'ttl ' + Math.round(l.ttlMs / 1000) + ' s'];
          }) });
          draw(rows);
        }, function () {});
      }
      return response;
    });
  };
  document.addEventListener('DOMContentLoaded', function () {
    draw([{ text: 'Run an operation: what the cache did shows here.' }]);
  });
})(${settings});
</script>`;
}
