/**
 * docs/grafana-dashboard.json is a contract with src/observability/metrics.ts: a renamed metric or a
 * dropped lookup result leaves a panel silently blank. This reads every PromQL expression in the
 * dashboard and checks it against a real registry, and checks that the panels use the datasource
 * that deploy/grafana provisions.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { createMetrics, LOOKUP_RESULTS } from '../../src/observability/metrics.js';

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');

interface Panel {
  readonly id: number;
  readonly type: string;
  readonly title: string;
  readonly datasource?: { type: string; uid: string };
  readonly targets?: { expr: string; datasource?: { uid: string } }[];
}
interface Dashboard {
  readonly uid: string;
  readonly panels: Panel[];
  readonly templating: { list: { name: string; type: string; current?: { value: unknown } }[] };
}

const dashboard = JSON.parse(read('docs/grafana-dashboard.json')) as Dashboard;
const queryPanels = dashboard.panels.filter((p) => p.type !== 'row');
const expressions = queryPanels.flatMap((p) =>
  (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })),
);

describe('docs/grafana-dashboard.json', () => {
  test('every metric it queries exists in the registry', async () => {
    const metrics = createMetrics({ outboxBacklog: async () => ({ count: 0, oldestAgeSeconds: 0 }) });
    const exposed = new Set<string>();
    for (const metric of await metrics.registry.getMetricsAsJSON()) {
      exposed.add(metric.name);
      if (String(metric.type) === 'histogram') {
        for (const suffix of ['_bucket', '_count', '_sum']) exposed.add(metric.name + suffix);
      }
    }

    expect(expressions.length).toBeGreaterThan(20);
    const unknown = expressions.flatMap(({ panel, expr }) =>
      [...expr.matchAll(/\b((?:cacheside|process|nodejs)_[a-z0-9_]+)\b/g)]
        .map((m) => m[1]!)
        .filter((name) => !exposed.has(name))
        .map((name) => `${panel}: ${name}`),
    );
    expect(unknown).toEqual([]);
  });

  test('the lookup results it filters on are the ones the cache reports', () => {
    const filtered = expressions.flatMap(({ expr }) =>
      [...expr.matchAll(/result=~?"([^"]+)"/g)].flatMap((m) => m[1]!.split('|')),
    );
    expect(filtered).toContain('hit');
    expect(filtered.filter((r) => !LOOKUP_RESULTS.includes(r as never))).toEqual([]);
  });

  test('its panels use the datasource variable, whose default is the provisioned Prometheus', () => {
    const provisionedUid = /^\s+uid:\s*(\S+)\s*$/m.exec(
      read('deploy/grafana/provisioning/datasources/prometheus.yml'),
    )?.[1];
    const variable = dashboard.templating.list.find((v) => v.name === 'datasource');
    expect(variable?.type).toBe('datasource');
    expect(variable?.current?.value).toBe(provisionedUid);

    for (const panel of queryPanels) {
      expect(panel.datasource?.uid, panel.title).toBe('${datasource}');
      for (const target of panel.targets ?? [])
        expect(target.datasource?.uid, panel.title).toBe('${datasource}');
    }
    expect(new Set(dashboard.panels.map((p) => p.id)).size).toBe(dashboard.panels.length);
  });
});
