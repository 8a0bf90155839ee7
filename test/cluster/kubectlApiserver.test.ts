// The embedded API server driven by the real kubectl v1.35: CRDs and custom resources with defaults
// and validation, printer columns, explain, patches, wait, cascading delete, watch, and the kinds a
// Helm chart installs.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { helmPath } from '../support/tools.js';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { type TestApiServer, startTestApiServer } from '../support/controlPlane.js';
import { waitFor } from '../support/waitFor.js';
import { widgetCrdPath } from './widgetCrd.js';

let t: TestApiServer;

function manifest(name: string, text: string): string {
  const path = join(t.dir, name);
  writeFileSync(path, text);
  return path;
}

/** kubectl apply -f of a manifest the server must refuse: what kubectl printed on stderr. */
async function applyRefused(path: string): Promise<string> {
  const r = await t.tryKubectl('apply', '-f', path);
  assert.equal(r.ok, false, `kubectl apply -f ${path} succeeded:\n${r.out}`);
  return r.err;
}

async function ok(...args: string[]): Promise<string> {
  const r = await t.tryKubectl(...args);
  assert.ok(r.ok, `kubectl ${args.join(' ')} failed: ${r.err}${r.out}`);
  return r.out;
}

before(async () => {
  t = await startTestApiServer();
  await ok('apply', '-f', widgetCrdPath);
  await ok('wait', '--for=condition=Established', '--timeout=20s', 'crd/widgets.test.btx.ai');
});

after(async () => {
  await t?.stop();
});

test('kubectl apply of a custom resource stores it with schema defaults', async () => {
  const unknown = manifest(
    'w0.yaml',
    'apiVersion: test.btx.ai/v1\nkind: Widget\nmetadata:\n  name: w0\nspec:\n  parts:\n    - name: bolt\n  unknownField: dropped\n',
  );
  // kubectl asks for strict server-side field validation; --validate=false prunes silently.
  const strictErr = await applyRefused(unknown);
  assert.match(
    strictErr,
    /Widget in version "v1" cannot be handled as a Widget: strict decoding error: unknown field "spec.unknownField"/,
  );
  await ok('apply', '--validate=false', '-f', unknown);
  assert.doesNotMatch(await ok('get', 'widget', 'w0', '-o', 'jsonpath={.spec}'), /unknownField/);
  await ok('delete', 'widget', 'w0');
  const path = manifest(
    'w1.yaml',
    'apiVersion: test.btx.ai/v1\nkind: Widget\nmetadata:\n  name: w1\nspec:\n  parts:\n    - name: bolt\n',
  );
  assert.match(await ok('apply', '-f', path), /widget.test.btx.ai\/w1 created/);
  const yaml = await ok('get', 'widget', 'w1', '-o', 'yaml');
  assert.match(yaml, /color: red/);
  assert.match(yaml, /size: 3/);
  assert.match(yaml, /count: 1/);
  // Re-applying sends the list without the defaulted field; defaulting fills it in again.
  await ok('apply', '-f', path);
  assert.equal(
    await ok('get', 'widget', 'w1', '-o', 'jsonpath={.spec.parts[0].count} {.metadata.generation}'),
    '1 1',
  );
});

test('kubectl apply of a kind no API serves ends in "no matches for kind", as on a real cluster', async () => {
  // kubectl validates a kind the OpenAPI v3 documents lack against /openapi/v2, which it asks for
  // in protobuf; a 406 there stopped it at "failed to download openapi ... content type".
  const wrong = manifest(
    'wrong-kind.yaml',
    'apiVersion: test.btx.ai/v1\nkind: Widgit\nmetadata:\n  name: w9\nspec:\n  parts:\n    - name: bolt\n',
  );
  const err = await applyRefused(wrong);
  assert.match(err, /no matches for kind "Widgit" in version "test.btx.ai\/v1"/);
  assert.doesNotMatch(err, /openapi|content type/);
});

test('kubectl get shows the printer columns and finds the kind by short name and category', async () => {
  const out = await ok('get', 'wd');
  const [header, row] = out.trim().split('\n');
  assert.match(header!, /^NAME\s+COLOR\s+SIZE\s+READY\s+AGE$/);
  assert.match(row!, /^w1\s+red\s+3\s+\S*\s+\d+s$/);
  assert.match(await ok('get', 'btx-test', '-o', 'name'), /widget.test.btx.ai\/w1/);
});

test('kubectl explain shows the CRD schema descriptions', async () => {
  const out = await ok('explain', 'widget.spec');
  assert.match(out, /KIND:\s+Widget/);
  assert.match(out, /What the widget should be/);
  assert.match(out, /size\s+<integer>/);
  assert.match(out, /How big, in widget units/);
});

test('kubectl patch --type merge and --type json change the spec and bump generation', async () => {
  const jsonPatch = (ops: object[]) =>
    t.tryKubectl('patch', 'widget', 'w1', '--type', 'json', '-p', JSON.stringify(ops));
  await ok('patch', 'widget', 'w1', '--type', 'merge', '-p', '{"spec":{"size":5}}');
  const patched = await jsonPatch([
    { op: 'test', path: '/spec/size', value: 5 },
    { op: 'replace', path: '/spec/color', value: 'blue' },
  ]);
  assert.ok(patched.ok, patched.err);
  assert.equal(
    await ok('get', 'widget', 'w1', '-o', 'jsonpath={.spec.size} {.spec.color} {.metadata.generation}'),
    '5 blue 3',
  );
  const failed = await jsonPatch([{ op: 'test', path: '/spec/size', value: 9 }]);
  assert.equal(failed.ok, false);
  assert.match(failed.err, /test failed/);
});

test('kubectl rejects an invalid custom resource with the usual error text', async () => {
  const path = manifest(
    'bad.yaml',
    'apiVersion: test.btx.ai/v1\nkind: Widget\nmetadata:\n  name: bad\nspec:\n  size: 0\n  color: green\n  parts:\n    - name: Bad_Name\n',
  );
  const err = await applyRefused(path);
  assert.match(err, /The Widget "bad" is invalid:/);
  assert.match(err, /spec\.size: Invalid value: 0: spec\.size in body should be greater than or equal to 1/);
  assert.match(err, /spec\.color: Unsupported value: "green": supported values: "red", "blue"/);
  assert.match(
    err,
    /spec\.parts\[0\]\.name: Invalid value: "Bad_Name": spec\.parts\[0\]\.name in body should match '\^\[a-z0-9\]/,
  );
  const missing = await t.tryKubectl(
    'create',
    '-f',
    manifest('bad2.yaml', 'apiVersion: test.btx.ai/v1\nkind: Widget\nmetadata:\n  name: bad2\nspec: {}\n'),
  );
  assert.match(missing.err, /The Widget "bad2" is invalid: spec\.parts: Required value/);
});

test('kubectl wait --for=condition=Ready returns once the status subresource says so', async () => {
  const waiting = t.tryKubectl('wait', '--for=condition=Ready', '--timeout=20s', 'widget/w1');
  await new Promise((r) => setTimeout(r, 300));
  const cur = await t.json<{ metadata: { resourceVersion: string } }>(
    'GET',
    '/apis/test.btx.ai/v1/namespaces/default/widgets/w1',
  );
  const put = await t.json('PUT', '/apis/test.btx.ai/v1/namespaces/default/widgets/w1/status', {
    ...cur.body,
    spec: { parts: [{ name: 'ignored' }] },
    status: {
      phase: 'Done',
      conditions: [
        {
          type: 'Ready',
          status: 'True',
          reason: 'Built',
          message: 'ok',
          lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
        },
      ],
    },
  });
  assert.equal(put.status, 200, JSON.stringify(put.body));
  const r = await waiting;
  assert.ok(r.ok, r.err);
  assert.match(r.out, /widget.test.btx.ai\/w1 condition met/);
  // The status write left the spec alone.
  assert.equal(
    await ok('get', 'widget', 'w1', '-o', 'jsonpath={.spec.parts[0].name} {.status.phase}'),
    'bolt Done',
  );
  assert.match(await ok('get', 'widget', 'w1'), /w1\s+blue\s+5\s+True/);
});

test('kubectl delete of an owner cascades to its pods through garbage collection', async () => {
  const uid = await ok('get', 'widget', 'w1', '-o', 'jsonpath={.metadata.uid}');
  for (const n of [1, 2]) {
    const path = manifest(
      `p${n}.yaml`,
      `apiVersion: v1\nkind: Pod\nmetadata:\n  name: w1-pod-${n}\n  labels: {owner: w1}\n  ownerReferences:\n    - {apiVersion: test.btx.ai/v1, kind: Widget, name: w1, uid: ${uid}, controller: true, blockOwnerDeletion: true}\nspec:\n  containers:\n    - {name: main, image: busybox}\n`,
    );
    await ok('apply', '-f', path);
  }
  assert.equal((await ok('get', 'pods', '-l', 'owner=w1', '-o', 'name')).trim().split('\n').length, 2);
  // Foreground: kubectl waits for the owner, which goes only after its pods.
  assert.match(await ok('delete', 'widget', 'w1', '--cascade=foreground'), /widget.test.btx.ai "w1" deleted/);
  await waitFor(
    'owned pods to be collected',
    async () => (await ok('get', 'pods', '-l', 'owner=w1', '-o', 'name')).trim() === '',
    10_000,
  );
});

test('kubectl get -w prints objects as they are added and changed', async () => {
  const watch = t.kubectlSpawn('get', 'widgets', '-w', '--output-watch-events', '--no-headers');
  let out = '';
  watch.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  try {
    await new Promise((r) => setTimeout(r, 500));
    const path = manifest(
      'w2.yaml',
      'apiVersion: test.btx.ai/v1\nkind: Widget\nmetadata:\n  name: w2\nspec:\n  parts: [{name: nut}]\n',
    );
    await ok('apply', '-f', path);
    await ok('patch', 'widget', 'w2', '--type', 'merge', '-p', '{"spec":{"size":4}}');
    await waitFor(
      `watch output, got: ${out}`,
      () => /ADDED\s+w2\s+red\s+3/.test(out) && /MODIFIED\s+w2\s+red\s+4/.test(out),
      10_000,
    );
  } finally {
    watch.kill();
  }
});

const CHART = `apiVersion: v1
kind: ServiceAccount
metadata: {name: op, labels: {app: op}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: op-config, labels: {app: op}}
data: {level: info}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: op-role, labels: {app: op}}
rules:
  - {apiGroups: [test.btx.ai], resources: [widgets, widgets/status], verbs: ["*"]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: op-binding, labels: {app: op}}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: op-role}
subjects: [{kind: ServiceAccount, name: op, namespace: default}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: op-leader, labels: {app: op}}
rules: [{apiGroups: [coordination.k8s.io], resources: [leases], verbs: ["*"]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: op-leader, labels: {app: op}}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: op-leader}
subjects: [{kind: ServiceAccount, name: op}]
---
apiVersion: v1
kind: Service
metadata: {name: op-metrics, labels: {app: op}}
spec:
  selector: {app: op}
  ports: [{name: metrics, port: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: op, labels: {app: op}}
spec:
  selector: {matchLabels: {app: op}}
  template:
    metadata: {labels: {app: op}}
    spec:
      serviceAccountName: op
      containers:
        - name: op
          image: btx/operator:1
          env: [{name: A, value: "1"}, {name: B, value: "2"}]
          ports: [{containerPort: 8080}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: op, labels: {app: op}}
spec:
  maxUnavailable: 1
  selector: {matchLabels: {app: op}}
`;

test('a chart-like set of built-in kinds applies with --dry-run=server, then for real, then re-applies with a strategic merge', async () => {
  const path = manifest('chart.yaml', CHART);
  const dry = await ok('apply', '--dry-run=server', '-f', path);
  assert.match(dry, /deployment.apps\/op created \(server dry run\)/);
  assert.equal(
    (await ok('get', 'deploy,svc,cm,sa,role,rolebinding,pdb', '-l', 'app=op', '-o', 'name')).trim(),
    '',
  );
  const applied = await ok('apply', '-f', path);
  for (const kind of [
    'serviceaccount/op',
    'configmap/op-config',
    'clusterrole.rbac.authorization.k8s.io/op-role',
    'service/op-metrics',
    'deployment.apps/op',
    'poddisruptionbudget.policy/op',
  ])
    assert.match(applied, new RegExp(`${kind.replace(/[./]/g, '\\$&')} created`));
  assert.match(
    await ok('get', 'svc', 'op-metrics', '-o', 'jsonpath={.spec.clusterIP} {.spec.ports[0].targetPort}'),
    /^10\.96\.\d+\.\d+ 8080$/,
  );
  // Drop env B and change A: kubectl sends a strategic merge patch with $setElementOrder and $patch: delete.
  const changed = CHART.replace(
    'env: [{name: A, value: "1"}, {name: B, value: "2"}]',
    'env: [{name: A, value: "3"}]',
  );
  await ok('apply', '-f', manifest('chart2.yaml', changed));
  assert.equal(
    await ok('get', 'deploy', 'op', '-o', 'jsonpath={.spec.template.spec.containers[0].env}'),
    '[{"name":"A","value":"3"}]',
  );
  assert.match(
    await ok(
      'apply',
      '--server-side',
      '--force-conflicts',
      '-f',
      manifest('chart3.yaml', changed.replace('level: info', 'level: debug')),
    ),
    /configmap\/op-config serverside-applied/,
  );
  assert.equal(await ok('get', 'cm', 'op-config', '-o', 'jsonpath={.data.level}'), 'debug');
  assert.match(await ok('delete', '-f', path), /deployment.apps "op" deleted/);
});

test('helm 4 installs, upgrades and uninstalls a chart straight against the server (protobuf release Secrets, server-side apply)', async () => {
  const chart = join(t.dir, 'chart');
  mkdirSync(join(chart, 'templates'), { recursive: true });
  writeFileSync(join(chart, 'Chart.yaml'), 'apiVersion: v2\nname: op\nversion: 0.1.0\n');
  writeFileSync(
    join(chart, 'templates', 'all.yaml'),
    CHART.replace(
      'data: {level: info}',
      'data: {level: {{ .Values.level | default "info" }}{{ if .Values.extra }}, extra: "1"{{ end }}}',
    ),
  );
  await ok('create', 'namespace', 'helm');
  const helm = async (...args: string[]): Promise<string> => {
    const { stdout } = await promisify(execFile)(
      helmPath(),
      ['--kubeconfig', t.kubeconfigPath, '-n', 'helm', ...args],
      {
        env: { ...process.env, HOME: t.dir },
        timeout: 60_000,
      },
    );
    return stdout;
  };
  assert.match(await helm('install', 'op', chart, '--set', 'extra=true'), /STATUS: deployed/);
  assert.match(await ok('get', 'cm', 'op-config', '-n', 'helm', '-o', 'jsonpath={.data}'), /"extra":"1"/);
  // The upgrade no longer renders `extra`: server-side apply removes it.
  assert.match(await helm('upgrade', 'op', chart, '--set', 'level=debug'), /STATUS: deployed/);
  assert.equal(
    await ok('get', 'cm', 'op-config', '-n', 'helm', '-o', 'jsonpath={.data}'),
    '{"level":"debug"}',
  );
  assert.equal(await ok('get', 'cm', 'op-config', '-n', 'helm', '-o', 'jsonpath={.data.level}'), 'debug');
  assert.match(
    await ok('get', 'secrets', '-n', 'helm', '-o', 'name'),
    /secret\/sh\.helm\.release\.v1\.op\.v2/,
  );
  assert.match(await helm('uninstall', 'op'), /release "op" uninstalled/);
  assert.equal((await ok('get', 'deploy,cm,secrets', '-n', 'helm', '-o', 'name')).trim(), '');
});

test('kubectl create, run and auth, which send protobuf bodies, do what they say', async () => {
  await ok('create', 'namespace', 'pb');
  await ok('create', 'secret', 'generic', 's', '--from-literal=p=q', '-n', 'pb');
  await ok('create', 'job', 'j', '--image=busybox', '-n', 'pb', '--', 'echo', 'hi');
  await ok('create', 'deployment', 'd', '--image=nginx:1', '--replicas=2', '-n', 'pb');
  await ok('run', 'r', '--image=busybox', '--env=A=1', '--labels=x=y', '-n', 'pb', '--', 'sleep', '1');
  assert.equal(await ok('get', 'secret', 's', '-n', 'pb', '-o', 'jsonpath={.type} {.data.p}'), 'Opaque cQ==');
  assert.equal(
    await ok(
      'get',
      'job',
      'j',
      '-n',
      'pb',
      '-o',
      'jsonpath={.spec.template.spec.restartPolicy} {.spec.template.spec.containers[0].command}',
    ),
    'Never ["echo","hi"]',
  );
  assert.equal(
    await ok(
      'get',
      'deploy',
      'd',
      '-n',
      'pb',
      '-o',
      'jsonpath={.spec.replicas} {.spec.selector.matchLabels.app}',
    ),
    '2 d',
  );
  assert.equal(
    await ok(
      'get',
      'pod',
      'r',
      '-n',
      'pb',
      '-o',
      'jsonpath={.metadata.labels.x} {.spec.containers[0].env[0].value} {.spec.containers[0].args}',
    ),
    'y 1 ["sleep","1"]',
  );
  assert.match(await ok('delete', 'namespace', 'pb'), /namespace "pb" deleted/);
  // Access reviews: one admin identity, RBAC stored but not enforced.
  assert.equal((await ok('auth', 'can-i', 'create', 'pods')).trim(), 'yes');
  assert.match(await ok('auth', 'whoami'), /btx-admin/);
});
