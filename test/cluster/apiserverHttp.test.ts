// The API server's object semantics over plain HTTP: Status bodies, resourceVersion and generation,
// status subresources, selectors, patches, dry runs, finalizers, garbage collection, pod and Job
// defaults, watch (initial state, replay, 410, bookmarks, timeouts, selectors), logs, persistence.
import assert from 'node:assert/strict';
import { mkdirSync, appendFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { containerLogPath } from '../../src/cluster/podLogs.js';
import { serverInternals } from '../../src/cluster/apiserver/server.js';
import { TEST_TOKEN, type TestApiServer, startTestApiServer } from '../support/controlPlane.js';
import { podManifest } from '../support/pods.js';
import { waitFor } from '../support/waitFor.js';
import { widgetCrd } from './widgetCrd.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

let t: TestApiServer;
const W = '/apis/test.btx.ai/v1/namespaces/default/widgets';
const PODS = '/api/v1/namespaces/default/pods';
const CMS = '/api/v1/namespaces/default/configmaps';

before(async () => {
  t = await startTestApiServer({ watchHistory: 50 });
  const crd = await t.json('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', widgetCrd());
  assert.equal(crd.status, 201, JSON.stringify(crd.body));
});

after(async () => {
  await t?.stop();
});

/** A pod with one busybox container (env A=1) and nothing else set, so the server's defaults show. */
const pod = (name: string, extra: Obj = {}): Obj =>
  podManifest(
    name,
    { containers: [{ name: 'main', image: 'busybox', env: [{ name: 'A', value: '1' }] }], ...extra.spec },
    extra.metadata,
  );

/** Reads a watch stream's events until `until` says stop (or the stream ends). */
async function watchEvents(
  path: string,
  until: (events: Obj[]) => boolean,
  timeoutMs = 5000,
): Promise<Obj[]> {
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), timeoutMs);
  const events: Obj[] = [];
  try {
    const res = await fetch(`${t.url}${path}`, {
      headers: { Authorization: `Bearer ${TEST_TOKEN}` },
      signal: ctrl.signal,
    });
    assert.equal(res.status, 200);
    const decoder = new TextDecoder();
    let buf = '';
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        events.push(JSON.parse(buf.slice(0, nl)));
        buf = buf.slice(nl + 1);
      }
      if (until(events)) break;
    }
  } catch (err) {
    if ((err as Error).name !== 'AbortError') throw err;
  } finally {
    clearTimeout(timer);
    ctrl.abort();
  }
  return events;
}

test('requests without the bearer token get a 401 Status; health and version are public', async () => {
  const res = await fetch(`${t.url}/api/v1/namespaces`);
  assert.equal(res.status, 401);
  assert.deepEqual(await res.json(), {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: 'Unauthorized',
    reason: 'Unauthorized',
    code: 401,
  });
  assert.equal((await fetch(`${t.url}/healthz`)).status, 200);
  assert.match(((await (await fetch(`${t.url}/version`)).json()) as Obj).gitVersion, /^v1\.35\./);
});

test('errors are Status bodies shaped like Kubernetes: 404, 409 AlreadyExists, 422 Invalid, 415', async () => {
  const missing = await t.json('GET', `${PODS}/nope`);
  assert.deepEqual(missing, {
    status: 404,
    body: {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'pods "nope" not found',
      reason: 'NotFound',
      details: { name: 'nope', kind: 'pods' },
      code: 404,
    },
  });
  assert.equal((await t.json('POST', CMS, { metadata: { name: 'dup' } })).status, 201);
  const dup = await t.json<Obj>('POST', CMS, { metadata: { name: 'dup' } });
  assert.equal(dup.status, 409);
  assert.equal(dup.body.reason, 'AlreadyExists');
  assert.equal(dup.body.message, 'configmaps "dup" already exists');
  const bad = await t.json<Obj>('POST', PODS, {
    metadata: { name: 'bad' },
    spec: { containers: [{ name: 'c' }], restartPolicy: 'Sometimes' },
  });
  assert.equal(bad.status, 422);
  assert.equal(bad.body.reason, 'Invalid');
  assert.deepEqual(bad.body.details, {
    name: 'bad',
    kind: 'Pod',
    causes: [
      { reason: 'FieldValueRequired', message: 'Required value', field: 'spec.containers[0].image' },
      {
        reason: 'FieldValueNotSupported',
        message: 'Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"',
        field: 'spec.restartPolicy',
      },
    ],
  });
  assert.equal(
    bad.body.message,
    'Pod "bad" is invalid: [spec.containers[0].image: Required value, spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"]',
  );
  const wrongType = await t.json<Obj>('POST', CMS, 'name: x', 'text/plain');
  assert.equal(wrongType.status, 415);
  assert.equal(wrongType.body.reason, 'UnsupportedMediaType');
  const smp = await t.json<Obj>('PATCH', `${W}/none`, '{}', 'application/strategic-merge-patch+json');
  assert.equal(smp.status, 415, 'custom resources take no strategic merge patches');
});

test('objects get uid, creationTimestamp, generateName and an increasing string resourceVersion; a no-op update keeps it', async () => {
  const a = await t.json<Obj>('POST', CMS, { metadata: { generateName: 'gen-' }, data: { k: 'v' } });
  assert.equal(a.status, 201);
  assert.match(a.body.metadata.name, /^gen-[bcdfghjklmnpqrstvwxz2456789]{5}$/);
  assert.match(a.body.metadata.uid, /^[0-9a-f-]{36}$/);
  assert.match(a.body.metadata.creationTimestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.equal(typeof a.body.metadata.resourceVersion, 'string');
  const same = await t.json<Obj>('PUT', `${CMS}/${a.body.metadata.name}`, a.body);
  assert.equal(same.body.metadata.resourceVersion, a.body.metadata.resourceVersion);
  const changed = await t.json<Obj>('PUT', `${CMS}/${a.body.metadata.name}`, { ...a.body, data: { k: 'w' } });
  assert.ok(Number(changed.body.metadata.resourceVersion) > Number(a.body.metadata.resourceVersion));
  const stale = await t.json<Obj>('PUT', `${CMS}/${a.body.metadata.name}`, { ...a.body, data: { k: 'x' } });
  assert.equal(stale.status, 409);
  assert.equal(stale.body.reason, 'Conflict');
  const list = await t.json<Obj>('GET', CMS);
  assert.equal(list.body.kind, 'ConfigMapList');
  assert.ok(Number(list.body.metadata.resourceVersion) >= Number(changed.body.metadata.resourceVersion));
});

test('custom resources: generation follows spec only; main writes ignore status and /status writes ignore the rest', async () => {
  const created = await t.json<Obj>('POST', W, {
    apiVersion: 'test.btx.ai/v1',
    kind: 'Widget',
    metadata: { name: 'g' },
    spec: { parts: [{ name: 'a' }] },
    status: { phase: 'ignored' },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.equal(created.body.metadata.generation, 1);
  assert.equal(created.body.status, undefined);
  const st = await t.json<Obj>('PUT', `${W}/g/status`, {
    ...created.body,
    spec: { parts: [{ name: 'zzz' }] },
    metadata: { ...created.body.metadata, labels: { x: 'y' } },
    status: { phase: 'Running' },
  });
  assert.equal(st.body.status.phase, 'Running');
  assert.equal(st.body.spec.parts[0].name, 'a');
  assert.equal(st.body.metadata.labels, undefined);
  assert.equal(st.body.metadata.generation, 1);
  const main = await t.json<Obj>('PUT', `${W}/g`, {
    ...st.body,
    spec: { ...st.body.spec, size: 4 },
    status: { phase: 'Hacked' },
  });
  assert.equal(main.body.status.phase, 'Running');
  assert.equal(main.body.metadata.generation, 2);
  const labelled = await t.json<Obj>(
    'PATCH',
    `${W}/g`,
    { metadata: { labels: { a: 'b' } } },
    'application/merge-patch+json',
  );
  assert.equal(labelled.body.metadata.generation, 2);
  const badStatus = await t.json<Obj>(
    'PATCH',
    `${W}/g/status`,
    { status: { conditions: [{ type: 'Ready' }] } },
    'application/merge-patch+json',
  );
  assert.equal(badStatus.status, 422);
  assert.equal(
    badStatus.body.message,
    'Widget.test.btx.ai "g" is invalid: status.conditions[0].status: Required value',
  );
});

test('x-kubernetes-validations CEL rules: plain rules, fieldPath, macros and transition rules with oldSelf', async () => {
  const w = (spec: Obj): Obj => ({
    apiVersion: 'test.btx.ai/v1',
    kind: 'Widget',
    metadata: { name: 'cel' },
    spec: { parts: [{ name: 'p' }], ...spec },
  });
  const big = await t.json<Obj>('POST', W, w({ size: 7 }));
  assert.equal(big.status, 422);
  assert.equal(
    big.body.message,
    'Widget.test.btx.ai "cel" is invalid: spec.size: Invalid value: "object": widgets bigger than 5 must be blue',
  );
  const reserved = await t.json<Obj>('POST', W, w({ labels: { 'reserved/x': '1' } }));
  assert.equal(
    reserved.body.message,
    'Widget.test.btx.ai "cel" is invalid: spec.labels: Invalid value: "object": the reserved/ prefix is for the server, found 1',
  );
  const dupParts = await t.json<Obj>('POST', W, w({ parts: [{ name: 'a' }, { name: 'a' }] }));
  assert.match(dupParts.body.message, /spec\.parts\[1\]: Duplicate value: \{"name":"a"\}/);
  const ok = await t.json<Obj>('POST', W, w({ size: 7, color: 'blue', serial: 'A1' }));
  assert.equal(ok.status, 201, JSON.stringify(ok.body));
  const changed = await t.json<Obj>(
    'PATCH',
    `${W}/cel`,
    { spec: { serial: 'B2' } },
    'application/merge-patch+json',
  );
  assert.equal(changed.status, 422);
  assert.equal(
    changed.body.message,
    'Widget.test.btx.ai "cel" is invalid: spec.serial: Invalid value: "string": serial is immutable',
  );
  const same = await t.json<Obj>('PATCH', `${W}/cel`, { spec: { size: 6 } }, 'application/merge-patch+json');
  assert.equal(same.status, 200);
});

test('label and field selectors filter lists; an unknown field label is a 400', async () => {
  for (const [name, labels, phase] of [
    ['s1', { tier: 'web', env: 'prod' }, 'Running'],
    ['s2', { tier: 'db', env: 'prod' }, 'Pending'],
    ['s3', { tier: 'web' }, 'Running'],
  ] as const) {
    const p = await t.json<Obj>('POST', PODS, pod(name, { metadata: { labels } }));
    await t.json('PATCH', `${PODS}/${name}/status`, { status: { phase } }, 'application/merge-patch+json');
    assert.equal(p.status, 201);
  }
  const names = async (query: string): Promise<string[]> =>
    ((await t.json<Obj>('GET', `${PODS}?${query}`)).body.items as Obj[])
      .map((p) => p.metadata.name)
      .filter((n: string) => /^s\d$/.test(n));
  assert.deepEqual(await names('labelSelector=tier%3Dweb'), ['s1', 's3']);
  assert.deepEqual(await names('labelSelector=tier%3D%3Dweb,env%21%3Dprod'), ['s3']);
  assert.deepEqual(await names('labelSelector=tier%20in%20(db,cache)'), ['s2']);
  assert.deepEqual(await names('labelSelector=tier%20notin%20(db),env'), ['s1']);
  assert.deepEqual(await names('labelSelector=tier,!env'), ['s3']);
  assert.deepEqual(await names('fieldSelector=status.phase%3DRunning'), ['s1', 's3']);
  assert.deepEqual(await names('fieldSelector=metadata.name%3Ds2'), ['s2']);
  assert.deepEqual(
    await names('fieldSelector=status.phase!%3DRunning,metadata.namespace%3Ddefault&limit=1&continue='),
    ['s2'],
  );
  const bad = await t.json<Obj>('GET', `${PODS}?fieldSelector=spec.foo%3Dx`);
  assert.equal(bad.status, 400);
  assert.equal(bad.body.message, 'field label not supported: spec.foo');
});

test('strategic merge patches merge containers and env by name and honour $patch: delete; JSON patch test ops guard writes', async () => {
  const DEPLOY = '/apis/apps/v1/namespaces/default/deployments';
  const template = pod('x');
  const d = await t.json<Obj>('POST', DEPLOY, {
    metadata: { name: 'smp' },
    spec: {
      selector: { matchLabels: { a: 'b' } },
      template: { metadata: { labels: { a: 'b' } }, spec: template.spec },
    },
  });
  assert.equal(d.status, 201, JSON.stringify(d.body));
  /** A strategic merge patch of the Deployment's pod template containers. */
  const patchContainers = (containers: Obj[]) =>
    t.json<Obj>(
      'PATCH',
      `${DEPLOY}/smp`,
      { spec: { template: { spec: { containers } } } },
      'application/strategic-merge-patch+json',
    );
  const patched = await patchContainers([
    { name: 'main', image: 'busybox:2', env: [{ name: 'B', value: '2' }] },
    { name: 'side', image: 'x' },
  ]);
  assert.equal(patched.status, 200, JSON.stringify(patched.body));
  const cs = patched.body.spec.template.spec.containers;
  assert.deepEqual(
    cs.map((c: Obj) => c.name),
    ['main', 'side'],
  );
  assert.equal(cs[0].image, 'busybox:2');
  assert.deepEqual(cs[0].env, [
    { name: 'A', value: '1' },
    { name: 'B', value: '2' },
  ]);
  const deleted = await patchContainers([
    { name: 'main', env: [{ name: 'A', $patch: 'delete' }] },
    { name: 'side', $patch: 'delete' },
  ]);
  assert.deepEqual(
    deleted.body.spec.template.spec.containers.map((c: Obj) => c.name),
    ['main'],
  );
  assert.deepEqual(deleted.body.spec.template.spec.containers[0].env, [{ name: 'B', value: '2' }]);
  await t.json('POST', PODS, pod('smp'));
  const image = await t.json<Obj>(
    'PATCH',
    `${PODS}/smp`,
    { spec: { containers: [{ name: 'main', image: 'busybox:3' }] } },
    'application/strategic-merge-patch+json',
  );
  assert.equal(image.body.spec.containers[0].image, 'busybox:3', 'a pod may change its image');
  assert.deepEqual(image.body.spec.containers[0].env, [{ name: 'A', value: '1' }]);
  const failed = await t.json<Obj>(
    'PATCH',
    `${PODS}/smp`,
    [
      { op: 'test', path: '/spec/containers/0/image', value: 'nope' },
      { op: 'replace', path: '/spec/containers/0/image', value: 'x' },
    ],
    'application/json-patch+json',
  );
  assert.equal(failed.status, 422);
  const applied = await t.json<Obj>(
    'PATCH',
    `${CMS}/ssa?fieldManager=test`,
    'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  a: "1"\n',
    'application/apply-patch+yaml',
  );
  assert.equal(applied.status, 201);
  const reapplied = await t.json<Obj>(
    'PATCH',
    `${CMS}/ssa?fieldManager=test`,
    '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"ssa"},"data":{"b":"2"}}',
    'application/apply-patch+yaml',
  );
  // The same manager left `a` out: server-side apply removes it. Another manager's field stays.
  assert.deepEqual(reapplied.body.data, { b: '2' });
  await t.json(
    'PATCH',
    `${CMS}/ssa?fieldManager=other`,
    '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"ssa"},"data":{"c":"3"}}',
    'application/apply-patch+yaml',
  );
  const third = await t.json<Obj>(
    'PATCH',
    `${CMS}/ssa?fieldManager=test`,
    '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"ssa","labels":{"l":"1"}}}',
    'application/apply-patch+yaml',
  );
  assert.deepEqual(third.body.data, { c: '3' });
  assert.deepEqual(third.body.metadata.labels, { l: '1' });
  const strictPatch = await t.json<Obj>(
    'PATCH',
    `${W}/g?fieldValidation=Strict`,
    { spec: { nope: 1 } },
    'application/merge-patch+json',
  );
  assert.equal(strictPatch.status, 400);
  assert.match(strictPatch.body.message, /strict decoding error: unknown field "spec.nope"/);
});

test('dryRun=All validates and answers without storing anything', async () => {
  const created = await t.json<Obj>('POST', `${CMS}?dryRun=All`, { metadata: { name: 'dry' } });
  assert.equal(created.status, 201);
  assert.equal((await t.json('GET', `${CMS}/dry`)).status, 404);
  await t.json('POST', CMS, { metadata: { name: 'dry2' }, data: { a: '1' } });
  await t.json('PATCH', `${CMS}/dry2?dryRun=All`, { data: { a: '2' } }, 'application/merge-patch+json');
  await t.json('DELETE', `${CMS}/dry2?dryRun=All`);
  assert.equal((await t.json<Obj>('GET', `${CMS}/dry2`)).body.data.a, '1');
});

test('finalizers hold a deleted object with a deletionTimestamp until the last one is removed', async () => {
  const obj = await t.json<Obj>('POST', CMS, {
    metadata: { name: 'fin', finalizers: ['test/hold', 'test/second'] },
  });
  const del = await t.json<Obj>('DELETE', `${CMS}/fin`);
  assert.equal(del.status, 202);
  assert.ok(del.body.metadata.deletionTimestamp);
  const added = await t.json<Obj>(
    'PATCH',
    `${CMS}/fin`,
    { metadata: { finalizers: ['test/hold', 'test/second', 'test/new'] } },
    'application/merge-patch+json',
  );
  assert.equal(added.status, 422);
  await t.json(
    'PATCH',
    `${CMS}/fin`,
    { metadata: { finalizers: ['test/second'] } },
    'application/merge-patch+json',
  );
  assert.equal((await t.json('GET', `${CMS}/fin`)).status, 200);
  const last = await t.json<Obj>(
    'PATCH',
    `${CMS}/fin`,
    { metadata: { finalizers: null } },
    'application/merge-patch+json',
  );
  assert.equal(last.status, 200);
  assert.equal((await t.json('GET', `${CMS}/fin`)).status, 404);
  assert.ok(obj.body.metadata.uid);
});

test('delete preconditions: a wrong uid or resourceVersion is a 409 naming both values; matching ones delete', async () => {
  const cm = await t.json<Obj>('POST', CMS, { metadata: { name: 'guarded' } });
  const { uid, resourceVersion } = cm.body.metadata;
  const wrongUid = await t.json<Obj>('DELETE', `${CMS}/guarded`, { preconditions: { uid: 'not-it' } });
  assert.equal(wrongUid.status, 409);
  assert.equal(
    wrongUid.body.message,
    `Operation cannot be fulfilled on configmaps "guarded": Precondition failed: UID in precondition: not-it, UID in object meta: ${uid}`,
  );
  const wrongRv = await t.json<Obj>('DELETE', `${CMS}/guarded`, { preconditions: { resourceVersion: '1' } });
  assert.equal(wrongRv.status, 409);
  assert.match(
    wrongRv.body.message,
    new RegExp(`ResourceVersion in precondition: 1, ResourceVersion in object meta: ${resourceVersion}$`),
  );
  const ok = await t.json('DELETE', `${CMS}/guarded`, { preconditions: { uid, resourceVersion } });
  assert.equal(ok.status, 200);
  assert.equal((await t.json('GET', `${CMS}/guarded`)).status, 404);
});

test('garbage collection: background deletes dependents, Orphan keeps them without the reference; delete by label selector', async () => {
  const owner = await t.json<Obj>('POST', CMS, { metadata: { name: 'owner' } });
  const ref = { apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: owner.body.metadata.uid };
  for (const n of ['d1', 'd2'])
    await t.json('POST', CMS, { metadata: { name: n, labels: { gc: 'yes' }, ownerReferences: [ref] } });
  await t.json('DELETE', `${CMS}/owner`, {
    kind: 'DeleteOptions',
    apiVersion: 'v1',
    propagationPolicy: 'Background',
  });
  await waitFor(
    'dependents to go',
    async () =>
      (await t.json('GET', `${CMS}/d1`)).status === 404 && (await t.json('GET', `${CMS}/d2`)).status === 404,
    10_000,
  );
  const owner2 = await t.json<Obj>('POST', CMS, { metadata: { name: 'owner2' } });
  await t.json('POST', CMS, {
    metadata: {
      name: 'kept',
      labels: { gc: 'yes' },
      ownerReferences: [{ ...ref, name: 'owner2', uid: owner2.body.metadata.uid }],
    },
  });
  await t.json('DELETE', `${CMS}/owner2?propagationPolicy=Orphan`);
  const kept = await t.json<Obj>('GET', `${CMS}/kept`);
  assert.equal(kept.status, 200);
  assert.equal(kept.body.metadata.ownerReferences, undefined);
  // Foreground: the owner waits, marked, until its dependents are gone.
  const owner3 = await t.json<Obj>('POST', CMS, { metadata: { name: 'owner3' } });
  const ref3 = { ...ref, name: 'owner3', uid: owner3.body.metadata.uid, blockOwnerDeletion: true };
  await t.json('POST', CMS, {
    metadata: { name: 'held', finalizers: ['test/hold'], ownerReferences: [ref3] },
  });
  const fg = await t.json<Obj>('DELETE', `${CMS}/owner3`, { propagationPolicy: 'Foreground' });
  assert.equal(fg.status, 202);
  assert.deepEqual(fg.body.metadata.finalizers, ['foregroundDeletion']);
  await waitFor(
    'the dependent to be deleting',
    async () => (await t.json<Obj>('GET', `${CMS}/held`)).body.metadata.deletionTimestamp,
    10_000,
  );
  assert.equal((await t.json('GET', `${CMS}/owner3`)).status, 200);
  await t.json('PATCH', `${CMS}/held`, { metadata: { finalizers: null } }, 'application/merge-patch+json');
  await waitFor(
    'the owner to go after its dependent',
    async () => (await t.json('GET', `${CMS}/owner3`)).status === 404,
    10_000,
  );
  // An object whose owners are all gone (a made-up uid here) is collected too.
  await t.json('POST', CMS, {
    metadata: {
      name: 'dangling',
      ownerReferences: [{ ...ref, uid: '00000000-0000-0000-0000-000000000000' }],
    },
  });
  await waitFor(
    'the dangling dependent to go',
    async () => (await t.json('GET', `${CMS}/dangling`)).status === 404,
    10_000,
  );
  await t.json('POST', CMS, { metadata: { name: 'other', labels: { gc: 'no' } } });
  const gone = await t.json<Obj>('DELETE', `${CMS}?labelSelector=gc%3Dyes`);
  assert.deepEqual(
    gone.body.items.map((i: Obj) => i.metadata.name),
    ['kept'],
  );
  assert.equal((await t.json('GET', `${CMS}/other`)).status, 200);
});

test('pods get the real defaults; bound pods are deleted gracefully and a zero grace period finishes it', async () => {
  const created = await t.json<Obj>('POST', PODS, pod('defaults'));
  const spec = created.body.spec;
  assert.equal(spec.restartPolicy, 'Always');
  assert.equal(spec.dnsPolicy, 'ClusterFirst');
  assert.equal(spec.schedulerName, 'default-scheduler');
  assert.equal(spec.serviceAccountName, 'default');
  assert.equal(spec.terminationGracePeriodSeconds, 30);
  assert.equal(spec.containers[0].terminationMessagePath, '/dev/termination-log');
  assert.equal(spec.containers[0].terminationMessagePolicy, 'File');
  assert.equal(spec.containers[0].imagePullPolicy, 'Always');
  assert.equal(created.body.status.phase, 'Pending');
  const bound = await t.json<Obj>('POST', `${PODS}/defaults/binding`, {
    apiVersion: 'v1',
    kind: 'Binding',
    metadata: { name: 'defaults' },
    target: { kind: 'Node', name: 'local' },
  });
  assert.equal(bound.status, 201);
  const again = await t.json<Obj>('POST', `${PODS}/defaults/binding`, {
    target: { kind: 'Node', name: 'other' },
  });
  assert.equal(again.status, 409);
  const nodeChange = await t.json<Obj>(
    'PATCH',
    `${PODS}/defaults`,
    { spec: { nodeName: 'elsewhere' } },
    'application/merge-patch+json',
  );
  assert.equal(nodeChange.status, 422);
  const del = await t.json<Obj>('DELETE', `${PODS}/defaults`);
  assert.equal(del.status, 202);
  assert.equal(del.body.metadata.deletionGracePeriodSeconds, 30);
  assert.equal((await t.json('GET', `${PODS}/defaults`)).status, 200);
  await t.json('DELETE', `${PODS}/defaults`, { gracePeriodSeconds: 0 });
  assert.equal((await t.json('GET', `${PODS}/defaults`)).status, 404);
});

test('Jobs get the generated selector and labels and their template is immutable; restartPolicy Always is refused', async () => {
  const JOBS = '/apis/batch/v1/namespaces/default/jobs';
  const job = (restartPolicy: string): Obj => ({
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: `job-${restartPolicy.toLowerCase()}` },
    spec: { template: { spec: { restartPolicy, containers: [{ name: 'c', image: 'busybox' }] } } },
  });
  const bad = await t.json<Obj>('POST', JOBS, job('Always'));
  assert.equal(bad.status, 422);
  assert.match(
    bad.body.message,
    /spec\.template\.spec\.restartPolicy: Unsupported value: "Always": supported values: "OnFailure", "Never"/,
  );
  const ok = await t.json<Obj>('POST', JOBS, job('Never'));
  assert.equal(ok.status, 201);
  const uid = ok.body.metadata.uid;
  assert.deepEqual(ok.body.spec.selector, { matchLabels: { 'batch.kubernetes.io/controller-uid': uid } });
  assert.equal(ok.body.spec.template.metadata.labels['batch.kubernetes.io/job-name'], 'job-never');
  assert.equal(ok.body.spec.template.metadata.labels['controller-uid'], uid);
  assert.deepEqual(
    [ok.body.spec.backoffLimit, ok.body.spec.completions, ok.body.spec.parallelism],
    [6, 1, 1],
  );
  const changed = await t.json<Obj>(
    'PATCH',
    `${JOBS}/job-never`,
    { spec: { template: { spec: { containers: [{ name: 'c', image: 'other' }] } } } },
    'application/strategic-merge-patch+json',
  );
  assert.equal(changed.status, 422);
  assert.match(changed.body.message, /spec\.template: Invalid value: .*field is immutable/);
  const status = await t.json<Obj>(
    'PATCH',
    `${JOBS}/job-never/status`,
    { status: { active: 1 } },
    'application/merge-patch+json',
  );
  assert.equal(status.body.status.active, 1);
});

test('events.k8s.io/v1 events are core/v1 events with renamed fields', async () => {
  const ev = await t.json<Obj>('POST', '/apis/events.k8s.io/v1/namespaces/default/events', {
    metadata: { name: 'ev1' },
    regarding: { kind: 'Pod', name: 'x', namespace: 'default' },
    note: 'hello',
    reason: 'Tested',
    type: 'Normal',
    action: 'Test',
    reportingController: 'btx',
    reportingInstance: 'btx-1',
    eventTime: '2026-01-01T00:00:00.000000Z',
  });
  assert.equal(ev.status, 201, JSON.stringify(ev.body));
  const core = await t.json<Obj>('GET', '/api/v1/namespaces/default/events/ev1');
  assert.equal(core.body.message, 'hello');
  assert.equal(core.body.involvedObject.name, 'x');
  const sel = await t.json<Obj>(
    'GET',
    '/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dx,reason%3DTested',
  );
  assert.equal(sel.body.items.length, 1);
});

test('watch: initial ADDED at resourceVersion 0, replay from a known version, then live', async () => {
  const first = await t.json<Obj>('POST', CMS, { metadata: { name: 'w-a', labels: { watch: 'me' } } });
  const rv = first.body.metadata.resourceVersion;
  await t.json('POST', CMS, { metadata: { name: 'w-b', labels: { watch: 'me' } } });
  const initial = await watchEvents(
    `${CMS}?watch=true&resourceVersion=0&labelSelector=watch%3Dme`,
    (e) => e.length >= 2,
  );
  assert.deepEqual(initial.map((e) => `${e.type}:${e.object.metadata.name}`).sort(), [
    'ADDED:w-a',
    'ADDED:w-b',
  ]);
  const replay = watchEvents(
    `/api/v1/watch/namespaces/default/configmaps?resourceVersion=${rv}&labelSelector=watch%3Dme`,
    (e) => e.length >= 3,
  );
  await new Promise((r) => setTimeout(r, 100));
  await t.json('DELETE', `${CMS}/w-a`);
  await t.json(
    'PATCH',
    `${CMS}/w-b`,
    { metadata: { labels: { watch: 'no' } } },
    'application/merge-patch+json',
  );
  const events = await replay;
  assert.deepEqual(
    events.map((e) => `${e.type}:${e.object.metadata.name}`),
    ['ADDED:w-b', 'DELETED:w-a', 'DELETED:w-b'],
  );
  assert.equal(events[2]!.object.metadata.labels.watch, 'me', 'leaving the selector carries the old content');
});

test('watch: a compacted resourceVersion is one ERROR event with 410 Expired; bookmarks and timeoutSeconds', async () => {
  for (let i = 0; i < 60; i++) await t.json('POST', CMS, { metadata: { name: `churn-${i}` } });
  const gone = await watchEvents(`${CMS}?watch=true&resourceVersion=1`, () => false);
  assert.equal(gone.length, 1);
  assert.equal(gone[0]!.type, 'ERROR');
  assert.equal(gone[0]!.object.code, 410);
  assert.equal(gone[0]!.object.reason, 'Expired');
  const started = Date.now();
  const bookmarks = await watchEvents(
    `${PODS}?watch=true&allowWatchBookmarks=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=1&labelSelector=none%3Dx`,
    () => false,
  );
  assert.ok(Date.now() - started < 4000, 'the watch ended by timeoutSeconds');
  assert.equal(bookmarks[0]!.type, 'BOOKMARK');
  assert.equal(bookmarks[0]!.object.metadata.annotations['k8s.io/initial-events-end'], 'true');
  assert.equal(serverInternals(t.server).api.store.watcherCount(), 0);
});

test('pod logs: the kubelet file, tailLines, and follow until the container terminates', async () => {
  const created = await t.json<Obj>('POST', PODS, pod('logger'));
  const uid = created.body.metadata.uid;
  const file = containerLogPath(join(t.dir, 'data'), 'default', 'logger', uid, 'main', 0);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, 'one\ntwo\nthree\n');
  await t.json(
    'PATCH',
    `${PODS}/logger/status`,
    {
      status: {
        phase: 'Running',
        containerStatuses: [
          {
            name: 'main',
            restartCount: 0,
            ready: true,
            image: 'busybox',
            imageID: '',
            state: { running: { startedAt: '2026-01-01T00:00:00Z' } },
          },
        ],
      },
    },
    'application/merge-patch+json',
  );
  assert.equal(await (await t.req('GET', `${PODS}/logger/log`)).text(), 'one\ntwo\nthree\n');
  assert.equal(await (await t.req('GET', `${PODS}/logger/log?tailLines=1`)).text(), 'three\n');
  const follow = t.req('GET', `${PODS}/logger/log?follow=true&container=main`).then((r) => r.text());
  await new Promise((r) => setTimeout(r, 300));
  appendFileSync(file, 'four\n');
  await new Promise((r) => setTimeout(r, 300));
  await t.json(
    'PATCH',
    `${PODS}/logger/status`,
    {
      status: {
        phase: 'Succeeded',
        containerStatuses: [
          {
            name: 'main',
            restartCount: 0,
            ready: false,
            image: 'busybox',
            imageID: '',
            state: { terminated: { exitCode: 0, reason: 'Completed' } },
          },
        ],
      },
    },
    'application/merge-patch+json',
  );
  assert.equal(await follow, 'one\ntwo\nthree\nfour\n');
  const wrong = await t.json<Obj>('GET', `${PODS}/logger/log?container=nope`);
  assert.equal(wrong.status, 400);
});

test('a restarted server with persistence keeps its objects and CRDs', async () => {
  const p = await startTestApiServer({ persist: true });
  try {
    await p.json('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', widgetCrd());
    await p.json('POST', W, {
      apiVersion: 'test.btx.ai/v1',
      kind: 'Widget',
      metadata: { name: 'kept' },
      spec: { parts: [{ name: 'p' }] },
    });
    await p.restartApiServer();
    const res = await p.json<Obj>('GET', `${W}/kept`);
    assert.equal(res.status, 200);
    assert.equal(res.body.spec.size, 3);
  } finally {
    await p.stop();
  }
});
