// deploy/ (plain manifests for kustomize) is what the chart renders with its defaults, and builds.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { kubectlPath, repoRoot } from '../support/tools.js';
import { CRD_FILE, DEPLOY_NAMESPACE, helmTemplate, parseManifests, renderDeploy } from './deployManifests.js';

test('deploy/ is exactly what the chart renders with its defaults (regenerate: npx tsx test/ship/deployManifests.ts)', async () => {
  const files = await renderDeploy();
  assert.ok(files.size >= 3);
  for (const [path, want] of files) {
    let have: string;
    try {
      have = readFileSync(join(repoRoot, path), 'utf8');
    } catch {
      assert.fail(`${path} is missing: run npx tsx test/ship/deployManifests.ts`);
    }
    assert.equal(have, want, `${path} is stale: run npx tsx test/ship/deployManifests.ts`);
  }
});

test('kubectl kustomize deploy/ builds the namespace, the CRD from crds/, RBAC, the Deployment and the Service', () => {
  const out = execFileSync(kubectlPath(), ['kustomize', join(repoRoot, 'deploy')], { encoding: 'utf8' });
  const objects = parseManifests(out);
  const kinds = objects.map((o) => o.kind).sort();
  for (const kind of [
    'Namespace',
    'CustomResourceDefinition',
    'ServiceAccount',
    'ClusterRole',
    'ClusterRoleBinding',
    'Role',
    'RoleBinding',
    'Deployment',
    'Service',
  ]) {
    assert.ok(kinds.includes(kind), `${kind} in ${kinds.join(', ')}`);
  }
  const crd = objects.find((o) => o.kind === 'CustomResourceDefinition')!;
  const source = parseManifests(readFileSync(join(repoRoot, CRD_FILE), 'utf8'))[0]!;
  assert.deepEqual(crd, source, 'the CRD is the one in crds/, not a copy');
  assert.ok(!existsSync(join(repoRoot, 'deploy/crds')), 'no stale copy of the CRD under deploy/');

  // The key parts of the Deployment are the chart's.
  const chartDeployment = helmTemplate().find((o) => o.kind === 'Deployment')!;
  const deployment = objects.find((o) => o.kind === 'Deployment')!;
  assert.deepEqual(deployment.spec, chartDeployment.spec);
  assert.equal(deployment.metadata.namespace, DEPLOY_NAMESPACE);
  for (const o of objects) {
    assert.ok(
      !JSON.stringify(o.metadata).includes('Helm'),
      `${o.kind}/${o.metadata.name} carries no Helm labels`,
    );
  }
});

test("the chart's CRD template and crds/ describe the same CRD", () => {
  const chartCrd = helmTemplate().find((o) => o.kind === 'CustomResourceDefinition');
  assert.ok(chartCrd, 'crds.install renders the CRD by default');
  const source = parseManifests(readFileSync(join(repoRoot, CRD_FILE), 'utf8'))[0]!;
  assert.deepEqual(chartCrd.spec, source.spec);
  assert.equal(chartCrd.metadata.name, source.metadata.name);
});
