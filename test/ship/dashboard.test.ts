// The Grafana dashboard asks only for metrics and labels the operator really exports: the registry of
// src/operator/metrics.ts is filled with one run's worth of series and scraped, and every query is checked
// against what the scrape shows. A renamed metric or label on either side fails here.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { BTXRun } from '../../src/api/types.js';
import { createMetrics, METRIC_NAMES } from '../../src/operator/metrics.js';
import { CHART_DIR } from './deployManifests.js';

type Target = { expr: string; legendFormat?: string };
type Panel = { type: string; title: string; targets?: Target[]; panels?: Panel[] };
type Dashboard = {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; query?: unknown }[] };
};

const dashboard = JSON.parse(
  readFileSync(join(CHART_DIR, 'dashboards/btx-operator.json'), 'utf8'),
) as Dashboard;

/** Labels Prometheus adds to every scraped series (the ServiceMonitor adds pod, service, ...). */
const TARGET_LABELS = new Set(['instance', 'job', 'pod', 'namespace', 'service', 'endpoint', 'container']);

const PROMQL_FUNCTIONS = new Set([
  'sum',
  'max',
  'min',
  'avg',
  'count',
  'topk',
  'bottomk',
  'rate',
  'irate',
  'increase',
  'delta',
  'histogram_quantile',
  'clamp_min',
  'clamp_max',
  'label_values',
  'sort',
  'sort_desc',
  'abs',
  'vector',
  'max_over_time',
  'min_over_time',
  'avg_over_time',
  'last_over_time',
]);
const KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'and',
  'or',
  'unless',
  'bool',
  'offset',
]);

/** Sample name -> label names, from a scrape of a registry that has one run's worth of series. */
async function scrapeOperatorMetrics(): Promise<Map<string, Set<string>>> {
  const metrics = createMetrics();
  const run: BTXRun = {
    apiVersion: 'btx.ai/v1alpha1',
    kind: 'BTXRun',
    metadata: { namespace: 'ml', name: 'llama-btx' },
    spec: {} as BTXRun['spec'],
    status: {
      phase: 'TrainingExperts',
      experts: [
        { name: 'math', phase: 'Running', attempt: 2, restarts: 1, step: 10, totalSteps: 100, loss: 2.5 },
      ],
      results: [{ model: 'btx', domain: 'math', loss: 1.5, perplexity: 4.48, bitsPerByte: 2.1 }],
      meanResults: [{ model: 'btx', loss: 1.5, perplexity: 4.48, bitsPerByte: 2.1, domains: 1 }],
      compute: [{ model: 'btx', steps: 10, tokens: 640, flops: 1e9, relativeToBtx: 1 }],
      routing: [{ domain: 'math', expert: 'math', share: 0.7 }],
      tokenize: { phase: 'Succeeded', domains: [{ name: 'math', phase: 'Succeeded', tokens: 1234 }] },
    } as BTXRun['status'],
  };
  metrics.observeRun(run);
  metrics.expertRestarted('ml', 'llama-btx', 'math', 'Evicted');
  metrics.stageFinished('expert', 42);
  metrics.reconciled('error', 0.01);
  metrics.reconciled('success', 0.02);
  metrics.setQueueDepth(3);
  const text = await metrics.registry.metrics();
  const samples = new Map<string, Set<string>>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s/.exec(line);
    assert.ok(m, `exposition line: ${line}`);
    const labels = samples.get(m[1]!) ?? new Set<string>();
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) labels.add(l[1]!);
    samples.set(m[1]!, labels);
  }
  return samples;
}

interface Parsed {
  metrics: { name: string; matchers: string[] }[];
  grouping: string[];
  functions: string[];
}

/** The metric selectors, label matchers, grouping labels and functions of one PromQL expression. */
function parsePromQL(expr: string): Parsed {
  const metrics: Parsed['metrics'] = [];
  const grouping: string[] = [];
  const functions: string[] = [];
  // label_values(selector, label): only the selector is PromQL.
  let rest = expr.replace(/^label_values\((.*),\s*\w+\s*\)$/, '$1').replace(/\$\{?\w+\}?/g, 'VAR');
  // Selectors with label matchers; a bare {..} selector has no name (not used here, so an error).
  rest = rest.replace(
    /([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^}]*)\}/g,
    (_all, name: string | undefined, body: string) => {
      assert.ok(name, `a selector without a metric name in: ${expr}`);
      const matchers = [...body.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"/g)].map((m) => m[1]!);
      metrics.push({ name, matchers });
      return ' ';
    },
  );
  rest = rest.replace(/"(?:[^"\\]|\\.)*"/g, ' ').replace(/\[[^\]]*\]/g, ' ');
  rest = rest.replace(
    /\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g,
    (_all, _kw, labels: string) => {
      grouping.push(
        ...labels
          .split(',')
          .map((l) => l.trim())
          .filter(Boolean),
      );
      return ' ';
    },
  );
  rest = rest.replace(/(^|[^a-zA-Z0-9_:.])\d+(\.\d+)?([eE][+-]?\d+)?/g, '$1 ');
  for (const m of rest.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)) {
    const [, ident, call] = m as unknown as [string, string, string | undefined];
    if (call) functions.push(ident);
    else if (!KEYWORDS.has(ident)) metrics.push({ name: ident, matchers: [] });
  }
  return { metrics, grouping, functions };
}

function allPanels(panels: Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

const queries: { where: string; expr: string; legend?: string }[] = [
  ...allPanels(dashboard.panels).flatMap((p) =>
    (p.targets ?? []).map((t) => ({ where: `panel "${p.title}"`, expr: t.expr, legend: t.legendFormat })),
  ),
  ...dashboard.templating.list
    .filter((v) => v.type === 'query')
    .map((v) => {
      const q = v.query as string | { query: string };
      return { where: `variable ${v.name}`, expr: typeof q === 'string' ? q : q.query };
    }),
];

test('every dashboard query names only metrics, labels and functions the operator really exports', async () => {
  const samples = await scrapeOperatorMetrics();
  assert.ok(queries.length >= 20, `${queries.length} queries`);
  for (const q of queries) {
    const parsed = parsePromQL(q.expr);
    assert.ok(parsed.metrics.length > 0, `${q.where}: a metric in ${q.expr}`);
    const available = new Set(TARGET_LABELS);
    for (const m of parsed.metrics) {
      const labels = samples.get(m.name);
      assert.ok(labels, `${q.where}: ${m.name} is exported by src/operator/metrics.ts (${q.expr})`);
      for (const l of labels) available.add(l);
      for (const l of m.matchers) {
        assert.ok(labels.has(l) || TARGET_LABELS.has(l), `${q.where}: ${m.name} has label ${l}`);
      }
    }
    for (const l of parsed.grouping)
      assert.ok(available.has(l), `${q.where}: grouping label ${l} exists (${q.expr})`);
    for (const f of parsed.functions)
      assert.ok(PROMQL_FUNCTIONS.has(f), `${q.where}: ${f}() is a PromQL function we know`);
    for (const m of (q.legend ?? '').matchAll(/\{\{\s*(\w+)\s*\}\}/g)) {
      assert.ok(available.has(m[1]!), `${q.where}: legend label ${m[1]} exists`);
    }
    const lv = /^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)[^,]*,\s*(\w+)\s*\)$/.exec(q.expr);
    if (q.expr.startsWith('label_values')) {
      assert.ok(lv, `${q.where}: label_values(metric, label)`);
      assert.ok(samples.get(lv[1]!)?.has(lv[2]!), `${q.where}: ${lv[1]} has label ${lv[2]}`);
    }
  }
});

test('the dashboard shows every btx_ metric the operator exports, and histograms through their buckets', async () => {
  const samples = await scrapeOperatorMetrics();
  const used = new Set(queries.flatMap((q) => parsePromQL(q.expr).metrics.map((m) => m.name)));
  for (const name of METRIC_NAMES) {
    const variants = [name, `${name}_bucket`, `${name}_sum`, `${name}_count`];
    assert.ok(
      variants.some((v) => samples.has(v)),
      `${name} (METRIC_NAMES) is registered`,
    );
    assert.ok(
      variants.some((v) => used.has(v)),
      `${name} is on the dashboard`,
    );
  }
  for (const histogram of ['btx_stage_duration_seconds', 'btx_reconcile_duration_seconds']) {
    assert.ok(samples.has(`${histogram}_bucket`), `${histogram} is a histogram`);
    assert.ok(
      queries.some((q) => q.expr.includes('histogram_quantile') && q.expr.includes(`${histogram}_bucket`)),
      `${histogram} quantiles are shown`,
    );
  }
  const btxSamples = [...samples.keys()].filter((s) => s.startsWith('btx_'));
  for (const s of btxSamples) {
    const base = s.replace(/_(bucket|sum|count)$/, '');
    assert.ok(
      (METRIC_NAMES as readonly string[]).includes(s) || (METRIC_NAMES as readonly string[]).includes(base),
      `${s} in METRIC_NAMES`,
    );
  }
});

test('the dashboard has a datasource variable and namespace/run variables that every run query uses', () => {
  const vars = new Map(dashboard.templating.list.map((v) => [v.name, v]));
  assert.equal(vars.get('datasource')?.type, 'datasource');
  assert.equal(vars.get('namespace')?.type, 'query');
  assert.equal(vars.get('run')?.type, 'query');
  const text = JSON.stringify(dashboard.panels);
  assert.ok(
    !/"uid":\s*"(?!\$\{datasource\})[^"]*"/.test(text.replace(/"uid":"-- Grafana --"/g, '')),
    'panels use ${datasource}',
  );
  for (const q of queries) {
    const perRun = /btx_(expert|eval|routing)_/.test(q.expr) || q.expr.includes('btx_run_phase{');
    if (perRun && !q.where.startsWith('variable')) {
      assert.match(q.expr, /namespace=~"\$namespace"/, `${q.where} filters by namespace`);
      assert.match(q.expr, /(run|name)=~"\$run"/, `${q.where} filters by run`);
    }
  }
  assert.equal(dashboard.uid, 'btx-operator');
});
