// The Helm chart: lint-clean, and what it renders is the least-privilege, hardened operator the values ask for.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { helmPath, repoRoot } from '../support/tools.js';
import { CHART_DIR, helmTemplate, type Manifest } from './deployManifests.js';
import { checkFields, modelOf } from './k8sSchema.js';

const ALL_ON = join(repoRoot, 'test/ship/fixtures/values-all.yaml');

type Rule = { apiGroups: string[]; resources: string[]; verbs: string[] };
type Container = {
  args: string[];
  env: { name: string; value: string }[];
  image: string;
  ports: { name: string; containerPort: number }[];
  livenessProbe: { httpGet: { path: string; port: string } };
  readinessProbe: { httpGet: { path: string; port: string } };
  resources: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext: Record<string, unknown>;
};
type PodSpec = {
  serviceAccountName: string;
  securityContext: Record<string, unknown>;
  containers: Container[];
  nodeSelector?: Record<string, string>;
  tolerations?: unknown[];
  affinity?: unknown;
};

function find(objects: Manifest[], kind: string, name?: string, namespace?: string): Manifest[] {
  return objects.filter(
    (o) =>
      o.kind === kind &&
      (name === undefined || o.metadata.name === name) &&
      (namespace === undefined || o.metadata.namespace === namespace),
  );
}

function one(objects: Manifest[], kind: string, name?: string, namespace?: string): Manifest {
  const found = find(objects, kind, name, namespace);
  assert.equal(found.length, 1, `one ${kind} ${namespace ?? ''}/${name ?? '*'}: ${found.length}`);
  return found[0]!;
}

function podSpec(objects: Manifest[]): PodSpec {
  const d = one(objects, 'Deployment') as Manifest & { spec: { template: { spec: PodSpec } } };
  return d.spec.template.spec;
}

/** Rules as sorted `group/resource: verbs` strings, for exact comparison. */
function ruleSet(o: Manifest): string[] {
  const rules = (o as Manifest & { rules: Rule[] }).rules;
  const out: string[] = [];
  for (const r of rules) {
    for (const g of r.apiGroups) {
      for (const res of r.resources) out.push(`${g}/${res}: ${[...r.verbs].sort().join(',')}`);
    }
  }
  return out.sort();
}

const OPERATOR_RULES = [
  'btx.ai/btxruns: get,list,watch',
  'btx.ai/btxruns/status: get,patch,update',
  'btx.ai/btxruns/finalizers: update',
  '/pods: create,delete,get,list,patch,watch',
  '/pods/log: get',
  'batch/jobs: create,delete,get,list,patch,watch',
  '/events: create,patch',
  'events.k8s.io/events: create,patch',
].sort();

test('helm lint --strict is clean with the defaults and with every option turned on', () => {
  for (const args of [[], ['--values', ALL_ON]]) {
    const r = spawnSync(helmPath(), ['lint', '--strict', CHART_DIR, ...args], { encoding: 'utf8' });
    assert.equal(r.status, 0, `helm lint ${args.join(' ')}:\n${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /0 chart\(s\) failed/);
    assert.doesNotMatch(r.stdout, /\[(WARNING|ERROR)\]/);
  }
});

test('the chart is apiVersion v2 at appVersion 0.1.0, and its image defaults to that version', () => {
  const chart = readFileSync(join(CHART_DIR, 'Chart.yaml'), 'utf8');
  assert.match(chart, /^apiVersion: v2$/m);
  assert.match(chart, /^appVersion: 0\.1\.0$/m);
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
  assert.equal(pkg.version, '0.1.0');
  assert.equal(podSpec(helmTemplate()).containers[0]!.image, 'ghcr.io/btx-ai/btx-operator:0.1.0');
});

test('the operator pod is non-root, read-only, capability-free, seccomp RuntimeDefault, probed and resourced', () => {
  const spec = podSpec(helmTemplate());
  assert.equal(spec.containers.length, 1);
  const c = spec.containers[0]!;
  assert.equal(spec.securityContext.runAsNonRoot, true);
  assert.deepEqual(spec.securityContext.seccompProfile, { type: 'RuntimeDefault' });
  assert.equal(c.securityContext.runAsNonRoot, true);
  assert.equal(c.securityContext.readOnlyRootFilesystem, true);
  assert.equal(c.securityContext.allowPrivilegeEscalation, false);
  assert.deepEqual(c.securityContext.capabilities, { drop: ['ALL'] });
  assert.deepEqual(c.securityContext.seccompProfile, { type: 'RuntimeDefault' });
  assert.deepEqual(c.ports, [{ name: 'metrics', containerPort: 8080, protocol: 'TCP' }]);
  assert.deepEqual(c.livenessProbe.httpGet, { path: '/healthz', port: 'metrics' });
  assert.deepEqual(c.readinessProbe.httpGet, { path: '/readyz', port: 'metrics' });
  assert.ok(c.resources.requests?.cpu && c.resources.requests.memory && c.resources.limits?.memory);
  assert.equal(spec.serviceAccountName, 'btx-operator');
});

test('operator args: metrics port, leader election in the release namespace, log env; namespaces and workers when set', () => {
  const defaults = podSpec(helmTemplate([], 'btx-operator', 'ops')).containers[0]!;
  const base = ['operator', '--metrics-port', '8080', '--leader-elect', '--lease-namespace', 'ops'];
  assert.deepEqual(defaults.args, base);
  assert.deepEqual(defaults.env, [
    { name: 'BTX_LOG_LEVEL', value: 'info' },
    { name: 'BTX_LOG_FORMAT', value: 'json' },
  ]);
  const all = podSpec(helmTemplate(['--values', ALL_ON], 'btx-operator', 'ops'));
  const c = all.containers[0]!;
  assert.deepEqual(c.args, [...base, '--namespace', 'team-a', '--namespace', 'team-b', '--workers', '4']);
  assert.deepEqual(c.env, [
    { name: 'BTX_LOG_LEVEL', value: 'debug' },
    { name: 'BTX_LOG_FORMAT', value: 'text' },
  ]);
  assert.equal(c.image, 'ghcr.io/btx-ai/btx-operator:0.1.0-test');
  assert.deepEqual(all.nodeSelector, { 'kubernetes.io/os': 'linux' });
  assert.equal(all.tolerations?.length, 1);
  assert.ok(all.affinity);
  const off = podSpec(helmTemplate(['--set', 'leaderElection.enabled=false'])).containers[0]!;
  assert.deepEqual(off.args, ['operator', '--metrics-port', '8080', '--no-leader-elect']);
});

test('two replicas with leader election: a Lease Role in the release namespace only, get/create/update', () => {
  const objects = helmTemplate(['--set', 'replicaCount=2'], 'btx-operator', 'ops');
  assert.equal((one(objects, 'Deployment') as Manifest & { spec: { replicas: number } }).spec.replicas, 2);
  const role = one(objects, 'Role', 'btx-operator-leader-election', 'ops');
  assert.deepEqual(ruleSet(role), ['coordination.k8s.io/leases: create,get,update']);
  const binding = one(objects, 'RoleBinding', 'btx-operator-leader-election', 'ops') as Manifest & {
    subjects: unknown[];
  };
  assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: 'btx-operator', namespace: 'ops' }]);
  const none = helmTemplate(['--set', 'leaderElection.enabled=false']);
  assert.equal(find(none, 'Role', 'btx-operator-leader-election').length, 0);
});

test('cluster-wide RBAC by default: exactly the verbs the operator needs, bound to its ServiceAccount', () => {
  const objects = helmTemplate([], 'btx-operator', 'ops');
  assert.deepEqual(ruleSet(one(objects, 'ClusterRole')), OPERATOR_RULES);
  const binding = one(objects, 'ClusterRoleBinding') as Manifest & { subjects: unknown[]; roleRef: unknown };
  assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: 'btx-operator', namespace: 'ops' }]);
  assert.deepEqual(binding.roleRef, {
    apiGroup: 'rbac.authorization.k8s.io',
    kind: 'ClusterRole',
    name: 'btx-operator',
  });
  for (const o of [...find(objects, 'ClusterRole'), ...find(objects, 'Role')]) {
    const text = JSON.stringify((o as Manifest & { rules: unknown }).rules);
    assert.ok(!text.includes('"*"'), `${o.kind}/${o.metadata.name} has no wildcard`);
    assert.ok(!/secrets/.test(text), `${o.kind}/${o.metadata.name} cannot read secrets`);
  }
});

test('watchNamespaces: a Role and RoleBinding per watched namespace and no cluster-wide RBAC', () => {
  const objects = helmTemplate(['--values', ALL_ON], 'btx-operator', 'ops');
  assert.equal(find(objects, 'ClusterRole').length, 0);
  assert.equal(find(objects, 'ClusterRoleBinding').length, 0);
  for (const ns of ['team-a', 'team-b']) {
    assert.deepEqual(ruleSet(one(objects, 'Role', 'btx-operator', ns)), OPERATOR_RULES);
    const binding = one(objects, 'RoleBinding', 'btx-operator', ns) as Manifest & { subjects: unknown[] };
    assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: 'btx-operator', namespace: 'ops' }]);
  }
});

test('trainer pods get a ServiceAccount that may only get and patch pods, in each namespace where runs live', () => {
  // The Role is there only with the admission policy that pins it to the pod's own name (see trainerRbac.test.ts).
  const withPolicy = ['--api-versions', 'admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy'];
  const check = (objects: Manifest[], namespaces: string[]) => {
    assert.deepEqual(
      find(objects, 'ServiceAccount', 'btx-trainer')
        .map((o) => o.metadata.namespace)
        .sort(),
      namespaces,
    );
    for (const ns of namespaces) {
      assert.deepEqual(ruleSet(one(objects, 'Role', 'btx-trainer', ns)), ['/pods: get,patch']);
      const binding = one(objects, 'RoleBinding', 'btx-trainer', ns) as Manifest & { subjects: unknown[] };
      assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: 'btx-trainer', namespace: ns }]);
    }
  };
  // Never in the release namespace by default (the operator runs there): none when watching the cluster.
  check(helmTemplate(withPolicy, 'btx-operator', 'ops'), []);
  check(helmTemplate(['--set', 'watchNamespaces={x,y}', ...withPolicy], 'btx-operator', 'ops'), ['x', 'y']);
  check(helmTemplate(['--set', 'watchNamespaces={x,ops}', ...withPolicy], 'btx-operator', 'ops'), ['x']);
  check(helmTemplate(['--values', ALL_ON, ...withPolicy], 'btx-operator', 'ops'), [
    'team-a',
    'team-b',
    'team-c',
  ]);
  check(helmTemplate(['--set', 'trainer.rbac.create=false', ...withPolicy]), []);
});

test('the metrics Service selects the operator pods; ServiceMonitor and PDB only when enabled', () => {
  const defaults = helmTemplate();
  const svc = one(defaults, 'Service') as Manifest & {
    spec: { selector: Record<string, string>; ports: { name: string; port: number; targetPort: string }[] };
  };
  const d = one(defaults, 'Deployment') as Manifest & {
    spec: {
      selector: { matchLabels: Record<string, string> };
      template: { metadata: { labels: Record<string, string> } };
    };
  };
  assert.deepEqual(svc.spec.selector, d.spec.selector.matchLabels);
  for (const [k, v] of Object.entries(svc.spec.selector)) assert.equal(d.spec.template.metadata.labels[k], v);
  assert.deepEqual(svc.spec.ports, [{ name: 'metrics', port: 8080, targetPort: 'metrics', protocol: 'TCP' }]);
  assert.equal(find(defaults, 'ServiceMonitor').length, 0);
  assert.equal(find(defaults, 'PodDisruptionBudget').length, 0);

  const all = helmTemplate(['--values', ALL_ON]);
  const sm = one(all, 'ServiceMonitor') as Manifest & {
    spec: { endpoints: { port: string; path: string }[]; selector: { matchLabels: Record<string, string> } };
  };
  assert.equal(sm.metadata.labels?.release, 'kube-prometheus-stack');
  assert.equal(sm.spec.endpoints[0]!.port, 'metrics');
  assert.equal(sm.spec.endpoints[0]!.path, '/metrics');
  const allSvc = one(all, 'Service');
  for (const [k, v] of Object.entries(sm.spec.selector.matchLabels))
    assert.equal(allSvc.metadata.labels?.[k], v);
  const pdb = one(all, 'PodDisruptionBudget') as Manifest & { spec: Record<string, unknown> };
  assert.equal(pdb.spec.minAvailable, 1);
  const maxU = one(
    helmTemplate([
      '--set',
      'podDisruptionBudget.enabled=true',
      '--set',
      'podDisruptionBudget.maxUnavailable=1',
    ]),
    'PodDisruptionBudget',
  ) as Manifest & { spec: Record<string, unknown> };
  assert.deepEqual([maxU.spec.maxUnavailable, maxU.spec.minAvailable], [1, undefined]);
});

test('the Grafana dashboard ships as a ConfigMap labelled grafana_dashboard "1", the same JSON as the file', () => {
  const cm = one(helmTemplate(), 'ConfigMap') as Manifest & { data: Record<string, string> };
  assert.equal(cm.metadata.labels?.grafana_dashboard, '1');
  const file = readFileSync(join(CHART_DIR, 'dashboards/btx-operator.json'), 'utf8');
  assert.deepEqual(JSON.parse(cm.data['btx-operator.json']!), JSON.parse(file));
  const moved = one(helmTemplate(['--values', ALL_ON]), 'ConfigMap');
  assert.equal(moved.metadata.namespace, 'monitoring');
  assert.equal(
    moved.metadata.annotations && (moved.metadata.annotations as Record<string, string>).grafana_folder,
    'BTX',
  );
  assert.equal(find(helmTemplate(['--set', 'dashboard.enabled=false']), 'ConfigMap').length, 0);
});

test('the CRD is a template behind crds.install, kept on uninstall unless crds.keep=false', () => {
  const crd = one(helmTemplate(), 'CustomResourceDefinition');
  assert.equal(crd.metadata.name, 'btxruns.btx.ai');
  assert.equal(crd.metadata.annotations?.['helm.sh/resource-policy'], 'keep');
  assert.equal(crd.metadata.labels?.['app.kubernetes.io/name'], 'btx-operator');
  const notKept = one(helmTemplate(['--set', 'crds.keep=false']), 'CustomResourceDefinition');
  assert.equal(notKept.metadata.annotations?.['helm.sh/resource-policy'], undefined);
  assert.equal(find(helmTemplate(['--set', 'crds.install=false']), 'CustomResourceDefinition').length, 0);
});

test('values.schema.json rejects unknown keys and bad values', () => {
  const schema = JSON.parse(readFileSync(join(CHART_DIR, 'values.schema.json'), 'utf8')) as {
    additionalProperties: boolean;
  };
  assert.equal(schema.additionalProperties, false);
  for (const bad of [
    'unknownKey=1',
    'log.format=xml',
    'log.level=loud',
    'image.pullPolicy=Sometimes',
    'watchNamespaces[0]=Bad_NS',
    'metrics.port=0',
  ]) {
    const r = spawnSync(helmPath(), ['template', 'x', CHART_DIR, '--set', bad], { encoding: 'utf8' });
    assert.notEqual(r.status, 0, `--set ${bad} is rejected`);
    assert.match(r.stderr, /schema/);
  }
});

test('NOTES.txt tells the user what to do next: an example, kubectl get btx -w, metrics and the dashboard', () => {
  const out = execFileSync(
    helmPath(),
    // Runs live where the trainer ServiceAccount is: a watched namespace, never the release namespace.
    [
      'install',
      'btx-operator',
      CHART_DIR,
      '--namespace',
      'ops',
      '--set',
      'watchNamespaces={ml}',
      '--dry-run=client',
    ],
    { encoding: 'utf8' },
  );
  const notes = out.slice(out.indexOf('NOTES:'));
  assert.match(notes, /kubectl -n ml apply -f examples\/btxrun-gpu\.yaml/);
  assert.match(notes, /kubectl -n ml get btx -w/);
  assert.match(notes, /btx-operator-metrics/);
  assert.match(notes, /dashboard/i);
  assert.match(notes, /btx-trainer/);
});

test('every field of every built-in object the chart renders is a Kubernetes API field of the right type', () => {
  let checked = 0;
  for (const args of [
    [],
    ['--values', ALL_ON],
    ['--set', 'podDisruptionBudget.enabled=true', '--set', 'podDisruptionBudget.maxUnavailable=1'],
  ]) {
    for (const o of helmTemplate(args)) {
      const type = modelOf(o.apiVersion, o.kind);
      if (o.kind === 'ServiceMonitor') continue; // a Prometheus Operator kind, not in client-node
      assert.ok(type, `a client-node model for ${o.apiVersion} ${o.kind}`);
      assert.deepEqual(checkFields(o, type, `${o.kind}/${o.metadata.name}`), []);
      checked++;
    }
  }
  assert.ok(checked > 30, `checked ${checked} objects`);
  // The checker itself notices a misspelt field and a wrong type.
  const bad = helmTemplate().find((o) => o.kind === 'Deployment') as Manifest & {
    spec: { replicas: unknown; template: { spec: { containers: Record<string, unknown>[] } } };
  };
  bad.spec.replicas = 'two';
  bad.spec.template.spec.containers[0]!.securityContext = { readOnlyRootFilesytem: true };
  assert.deepEqual(checkFields(bad, 'V1Deployment', 'd'), [
    'd.spec.replicas: want a number, got string',
    'd.spec.template.spec.containers[0].securityContext.readOnlyRootFilesytem: not a field of V1SecurityContext',
  ]);
});
