// deploy/ is generated from the chart, so the plain manifests cannot drift from it:
//   npx tsx test/ship/deployManifests.ts      rewrites deploy/ (the test in deploy.test.ts checks it is current)
// The chart is rendered with its defaults (release btx-operator in namespace btx-system) except that the CRD
// comes from crds/ (as the kustomization `../crds`, so `npm run gen` updates both) and the Grafana dashboard
// ConfigMap is left to the chart.
import { execFileSync } from 'node:child_process';
import { writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as prettier from 'prettier';
import { parseAllDocuments, stringify } from 'yaml';
import { helmPath, repoRoot } from '../support/tools.js';

export const DEPLOY_NAMESPACE = 'btx-system';
export const DEPLOY_RELEASE = 'btx-operator';
export const CHART_DIR = join(repoRoot, 'charts/btx-operator');
export const CRD_FILE = 'crds/btx.ai_btxruns.yaml';

export type Manifest = Record<string, unknown> & {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
};

/** `helm template` of the chart, as objects. */
export function helmTemplate(
  args: string[] = [],
  release = DEPLOY_RELEASE,
  namespace = DEPLOY_NAMESPACE,
): Manifest[] {
  const out = execFileSync(helmPath(), ['template', release, CHART_DIR, '--namespace', namespace, ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return parseManifests(out);
}

export function parseManifests(text: string): Manifest[] {
  return parseAllDocuments(text)
    .map((d) => {
      if (d.errors.length > 0) throw new Error(`unreadable YAML: ${d.errors[0]!.message}`);
      return d.toJS() as Manifest | null;
    })
    .filter((m): m is Manifest => m !== null);
}

/** Helm's bookkeeping labels replaced by kustomize's. */
function plain(m: Manifest): Manifest {
  const labels = { ...m.metadata.labels };
  delete labels['helm.sh/chart'];
  if (labels['app.kubernetes.io/managed-by'] === 'Helm') labels['app.kubernetes.io/managed-by'] = 'kustomize';
  return { ...m, metadata: { ...m.metadata, labels } };
}

async function format(text: string, file: string): Promise<string> {
  const options = (await prettier.resolveConfig(file)) ?? {};
  return prettier.format(text, { ...options, filepath: file });
}

const HEADER = (what: string) =>
  `# Generated from charts/btx-operator by test/ship/deployManifests.ts (${what}). Do not edit:\n` +
  `# change the chart and run \`npx tsx test/ship/deployManifests.ts\`.\n`;

/** Every generated file under deploy/, by path relative to the repository. */
export async function renderDeploy(): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const objects = helmTemplate(['--set', 'crds.install=false', '--set', 'dashboard.enabled=false']).map(
    plain,
  );
  const namespace: Manifest = {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: {
      name: DEPLOY_NAMESPACE,
      labels: {
        'app.kubernetes.io/part-of': 'btx-operator',
      },
    },
  };
  const docs = (list: Manifest[]) => list.map((o) => stringify(o, { lineWidth: 0 })).join('---\n');
  files.set('deploy/namespace.yaml', HEADER('namespace') + docs([namespace]));
  files.set('deploy/operator.yaml', HEADER('helm template with the chart defaults') + docs(objects));
  files.set(
    'deploy/kustomization.yaml',
    HEADER('kustomization') +
      stringify({
        apiVersion: 'kustomize.config.k8s.io/v1beta1',
        kind: 'Kustomization',
        resources: ['namespace.yaml', '../crds', 'operator.yaml'],
      }),
  );
  for (const [path, text] of files) files.set(path, await format(text, join(repoRoot, path)));
  return files;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const [path, text] of await renderDeploy()) {
    mkdirSync(dirname(join(repoRoot, path)), { recursive: true });
    writeFileSync(join(repoRoot, path), text);
    process.stdout.write(`wrote ${path}\n`);
  }
}
