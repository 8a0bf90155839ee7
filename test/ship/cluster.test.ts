// The chart against the embedded API server: `helm template` output passes a server dry-run, the GPU
// example passes the CRD schema, and Helm installs, upgrades (CRD included) and uninstalls (CRD kept).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { test } from 'node:test';
import { validateRun } from '../../src/api/validation.js';
import type { BTXRun } from '../../src/api/types.js';
import { helmPath, repoRoot } from '../support/tools.js';
import { startTestControlPlane } from '../support/controlPlane.js';
import { checkFields } from './k8sSchema.js';
import { CHART_DIR, parseManifests } from './deployManifests.js';

const run = promisify(execFile);
const ALL_ON = join(repoRoot, 'test/ship/fixtures/values-all.yaml');
const CRD_NAME = 'btxruns.btx.ai';

// The Prometheus Operator's ServiceMonitor, reduced to what the API server needs to serve the kind.
const SERVICE_MONITOR_CRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: servicemonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  names: {kind: ServiceMonitor, listKind: ServiceMonitorList, plural: servicemonitors, singular: servicemonitor}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
`;

async function helmTemplateText(args: string[]): Promise<string> {
  const { stdout } = await run(
    helmPath(),
    ['template', 'btx-operator', CHART_DIR, '--namespace', 'ops', ...args],
    {
      timeout: 60_000,
    },
  );
  return stdout;
}

test('helm template output, with the defaults and with everything on, passes kubectl apply --dry-run=server', async () => {
  const c = await startTestControlPlane({ name: 'ship' });
  try {
    await c.createNamespaces(['ops', 'team-a', 'team-b', 'team-c', 'monitoring']);
    await c.kubectl(['apply', '-f', '-'], SERVICE_MONITOR_CRD);
    for (const args of [[], ['--values', ALL_ON]]) {
      const manifests = await helmTemplateText(args);
      const objects = parseManifests(manifests);
      const out = await c.kubectl(['apply', '--dry-run=server', '-f', '-'], manifests);
      const accepted = out.split('\n').filter((l) => l.includes('(server dry run)'));
      assert.equal(accepted.length, objects.length, `every object accepted:\n${out}`);
      if (args.length > 0) assert.match(out, /servicemonitor\.monitoring\.coreos\.com\/btx-operator created/);
      assert.match(out, /customresourcedefinition\.apiextensions\.k8s\.io\/btxruns\.btx\.ai created/);
      assert.match(out, /deployment\.apps\/btx-operator created/);
    }
  } finally {
    await c.stop();
  }
});

test('examples/btxrun-gpu.yaml passes the CRD schema on the API server and validateRun', async () => {
  const text = readFileSync(join(repoRoot, 'examples/btxrun-gpu.yaml'), 'utf8');
  const objects = parseManifests(text);
  const runObj = objects.find((o) => o.kind === 'BTXRun') as unknown as BTXRun;
  assert.ok(runObj, 'the example has a BTXRun');
  assert.deepEqual(
    validateRun(runObj),
    [],
    'validateRun finds nothing wrong (it checks what CEL rules check)',
  );
  const spec = runObj.spec;
  assert.match(spec.seed.checkpoint ?? '', /^\/btx\/models\/llama-/);
  assert.deepEqual(
    spec.domains.map((d) => d.name),
    ['math', 'code', 'wiki'],
  );
  assert.equal(spec.mix.includeSeedAsExpert, true);
  assert.equal(spec.expert.resources?.requests?.['nvidia.com/gpu'], 1);
  assert.ok(spec.expert.tolerations?.some((t) => t.key === 'nvidia.com/gpu'));
  assert.ok(spec.expert.nodeSelector && Object.keys(spec.expert.nodeSelector).length > 0);
  assert.ok(spec.podLabels?.['kueue.x-k8s.io/queue-name']);
  assert.equal(
    spec.serviceAccountName,
    'btx-trainer',
    'the ServiceAccount the chart creates for trainer pods',
  );
  const pvc = objects.find((o) => o.kind === 'PersistentVolumeClaim');
  assert.equal(pvc?.metadata.name, spec.storage.persistentVolumeClaim.claimName);
  assert.deepEqual(checkFields(pvc, 'V1PersistentVolumeClaim', 'pvc'), []);

  const c = await startTestControlPlane({ name: 'ship' });
  try {
    await c.createNamespaces(['ml']);
    await c.kubectl(['apply', '-f', join(repoRoot, 'crds/btx.ai_btxruns.yaml')]);
    await c.kubectl(['wait', '--for=condition=Established', '--timeout=30s', `crd/${CRD_NAME}`]);
    const out = await c.kubectl(['apply', '--dry-run=server', '-n', 'ml', '-f', '-'], text);
    assert.match(out, /btxrun\.btx\.ai\/llama-btx created \(server dry run\)/);
    // The schema is enforced: the same run with a wrong enum value is refused...
    await assert.rejects(
      c.kubectl(
        ['apply', '--dry-run=server', '-n', 'ml', '-f', '-'],
        text.replace('dtype: bf16', 'dtype: bf17'),
      ),
      /spec\.mix\.dtype/,
    );
    // And so are the CEL rules: top-2 routing over more experts than the run has.
    await assert.rejects(
      c.kubectl(['apply', '--dry-run=server', '-n', 'ml', '-f', '-'], text.replace('k: 2', 'k: 9')),
      /mix\.router\.k must not exceed the number of experts/,
    );
  } finally {
    await c.stop();
  }
});

test('helm install, then helm upgrade with a changed CRD, leaves the new CRD; helm uninstall keeps it; a reinstall adopts it', async () => {
  const c = await startTestControlPlane({ name: 'ship' });
  const home = join(c.dir, 'helm');
  const env = {
    ...process.env,
    KUBECONFIG: c.kubeconfigPath,
    HELM_CACHE_HOME: join(home, 'cache'),
    HELM_CONFIG_HOME: join(home, 'config'),
    HELM_DATA_HOME: join(home, 'data'),
  };
  const helm = async (args: string[]) => (await run(helmPath(), args, { env, timeout: 90_000 })).stdout;
  const crdDescription = async () => {
    const crd = JSON.parse(await c.kubectl(['get', 'crd', CRD_NAME, '-o', 'json'])) as {
      metadata: { annotations?: Record<string, string> };
      spec: { versions: { schema: { openAPIV3Schema: { description?: string } } }[] };
    };
    return { description: crd.spec.versions[0]!.schema.openAPIV3Schema.description ?? '', crd };
  };
  try {
    await c.createNamespaces(['ops']);
    const installHelp = await helm(['install', '--help']);
    assert.match(installHelp, /--server-side\b.*\(default true\)/, 'Helm 4 installs with server-side apply');
    await helm(['install', 'btx', CHART_DIR, '--namespace', 'ops']);
    const before = await crdDescription();
    assert.ok(before.description.length > 0);
    assert.equal(before.crd.metadata.annotations?.['helm.sh/resource-policy'], 'keep');
    await c.kubectl(['get', 'deployment', 'btx-btx-operator', '-n', 'ops']);

    // A new chart version whose CRD changed (its schema description, as any CRD edit would).
    const chart2 = join(c.dir, 'chart-v2');
    cpSync(CHART_DIR, chart2, { recursive: true });
    const crdTemplate = join(chart2, 'templates/crd.yaml');
    const original = readFileSync(crdTemplate, 'utf8');
    const changed = original.replace(/(\n\s+description: )("?)/, '$1$2Upgraded. ');
    assert.notEqual(changed, original);
    writeFileSync(crdTemplate, changed);
    await helm(['upgrade', 'btx', chart2, '--namespace', 'ops']);
    const after = await crdDescription();
    assert.equal(after.description, `Upgraded. ${before.description}`, 'helm upgrade upgraded the CRD');
    assert.match(await helm(['history', 'btx', '--namespace', 'ops']), /2\s.*deployed/);

    const out = await helm(['uninstall', 'btx', '--namespace', 'ops']);
    assert.match(out, /uninstalled/);
    const kept = await crdDescription();
    assert.equal(kept.description, after.description, 'the CRD (and so every BTXRun) survives uninstall');
    await assert.rejects(
      c.kubectl(['get', 'deployment', 'btx-btx-operator', '-n', 'ops']),
      /NotFound|not found/,
    );

    // Installing again under the same name adopts the kept CRD, here with client-side apply.
    await helm(['install', 'btx', CHART_DIR, '--namespace', 'ops', '--server-side=false']);
    await c.kubectl(['get', 'deployment', 'btx-btx-operator', '-n', 'ops']);
    assert.equal(
      (await crdDescription()).description,
      before.description,
      'the reinstall applied its own CRD',
    );
  } finally {
    await c.stop();
  }
});
