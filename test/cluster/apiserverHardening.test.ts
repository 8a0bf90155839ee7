// The API server refuses what the real one refuses where accepting it would hurt the host: pod
// subPaths that leave their volume, bodies nested deep enough to exhaust the stack, integers a float64
// cannot hold; and its snapshot (every Secret) is readable by its own user only.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { type TestApiServer, startTestApiServer } from '../support/controlPlane.js';
import { widgetCrd } from './widgetCrd.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const PODS = '/api/v1/namespaces/default/pods';
const JOBS = '/apis/batch/v1/namespaces/default/jobs';
const CMS = '/api/v1/namespaces/default/configmaps';
const W = '/apis/test.btx.ai/v1/namespaces/default/widgets';

let t: TestApiServer;

before(async () => {
  t = await startTestApiServer();
  const crd = await t.json('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', widgetCrd());
  assert.equal(crd.status, 201, JSON.stringify(crd.body));
});

after(async () => {
  await t?.stop();
});

function podSpec(subPath: string): Obj {
  return {
    containers: [
      {
        name: 'main',
        image: 'busybox',
        volumeMounts: [
          { name: 'data', mountPath: '/data', subPath: 'ok/inside' },
          { name: 'data', mountPath: '/escape', subPath },
        ],
      },
    ],
    volumes: [{ name: 'data', emptyDir: {} }],
  };
}

test('a pod whose volumeMount subPath climbs out with .. or is absolute is a 422 naming the field', async () => {
  for (const [subPath, detail] of [
    ['../../../etc', "must not contain '..'"],
    ['a/../../b', "must not contain '..'"],
    ['/etc', 'must be a relative path'],
  ]) {
    const res = await t.json<Obj>('POST', PODS, { metadata: { name: 'escape' }, spec: podSpec(subPath!) });
    assert.equal(res.status, 422, subPath);
    assert.equal(res.body.reason, 'Invalid');
    assert.deepEqual(res.body.details.causes, [
      {
        reason: 'FieldValueInvalid',
        message: `Invalid value: ${JSON.stringify(subPath)}: ${detail}`,
        field: 'spec.containers[0].volumeMounts[1].subPath',
      },
    ]);
  }
  const job = await t.json<Obj>('POST', JOBS, {
    metadata: { name: 'escape' },
    spec: { template: { spec: { ...podSpec('..'), restartPolicy: 'Never' } } },
  });
  assert.equal(job.status, 422);
  assert.match(
    job.body.message,
    /spec\.template\.spec\.containers\[0\]\.volumeMounts\[1\]\.subPath: Invalid value: "\.\.": must not contain '\.\.'/,
  );
  // A name that merely contains dots stays inside the volume.
  const fine = await t.json<Obj>('POST', PODS, { metadata: { name: 'fine' }, spec: podSpec('a..b/..c') });
  assert.equal(fine.status, 201, JSON.stringify(fine.body));
});

function nested(depth: number): string {
  let s = '1';
  for (let i = 0; i < depth; i++) s = `{"a":${s}}`;
  return s;
}

test('bodies nested thousands of levels deep are a 400 BadRequest, not a 500 stack overflow', async () => {
  const deep = nested(5000);
  const create = await t.req('POST', CMS, `{"metadata":{"name":"deep"},"x":${deep}}`);
  const createBody = (await create.json()) as Obj;
  assert.equal(create.status, 400, JSON.stringify(createBody).slice(0, 200));
  assert.equal(createBody.reason, 'BadRequest');
  assert.match(createBody.message, /exceeded max depth/);
  const cr = await t.req(
    'POST',
    W,
    `{"metadata":{"name":"deep"},"spec":{"parts":[{"name":"p"}],"x":${deep}}}`,
  );
  assert.equal(cr.status, 400);
  const yaml = `metadata:\n  name: deep\nx: ${'['.repeat(5000)}${']'.repeat(5000)}\n`;
  assert.equal((await t.req('POST', CMS, yaml, 'application/yaml')).status, 400);
  assert.equal((await t.json('POST', CMS, { metadata: { name: 'shallow' } })).status, 201);
  for (const type of ['application/merge-patch+json', 'application/strategic-merge-patch+json']) {
    const patch = await t.req('PATCH', `${CMS}/shallow`, `{"x":${deep}}`, type);
    const body = (await patch.json()) as Obj;
    assert.equal(patch.status, 400, type);
    assert.match(body.message, /error decoding patch: exceeded max depth/);
  }
  // Nesting a real object could have is fine.
  const ok = await t.req('POST', CMS, `{"metadata":{"name":"nested"},"x":${nested(200)}}`);
  assert.equal(ok.status, 201);
});

test('an integer field refuses numbers beyond 2^53 as kube-openapi does ("number", not "integer")', async () => {
  const widget = (count: number): Obj => ({
    apiVersion: 'test.btx.ai/v1',
    kind: 'Widget',
    metadata: { name: `w-${String(count).replace(/\W/g, '')}` },
    spec: { parts: [{ name: 'p', count }] },
  });
  const huge = await t.json<Obj>('POST', W, widget(1e30));
  assert.equal(huge.status, 422, JSON.stringify(huge.body));
  assert.deepEqual(huge.body.details.causes, [
    {
      reason: 'FieldValueTypeInvalid',
      message: 'Invalid value: "number": spec.parts[0].count in body must be of type integer: "number"',
      field: 'spec.parts[0].count',
    },
  ]);
  assert.equal((await t.json('POST', W, widget(2 ** 53 + 2))).status, 422);
  // 2^53 itself and integers written as floats (1e3) are integers, as in Kubernetes.
  assert.equal((await t.json('POST', W, widget(2 ** 53))).status, 201);
  assert.equal(
    (await t.req('POST', W, JSON.stringify(widget(7)).replace('"count":7', '"count":1e3'))).status,
    201,
  );
});

async function createSecret(server: TestApiServer): Promise<void> {
  const res = await server.json('POST', '/api/v1/namespaces/default/secrets', {
    metadata: { name: 's' },
    stringData: { password: 'hunter2' },
  });
  assert.equal(res.status, 201);
}

/** A persisting API server on `dataDir`, a folder under `t.dir` that outlives it (to look at after stop). */
const persistingServer = (dataDir: string) => startTestApiServer({ persist: true }, { dataDir });

test('the snapshot (every Secret) is 0600 in a 0700 data dir, and an old open data dir is closed at start', async () => {
  const fresh = join(t.dir, 'fresh');
  const first = await persistingServer(fresh);
  await createSecret(first);
  await first.stop();
  assert.equal(statSync(fresh).mode & 0o777, 0o700);
  assert.equal(statSync(join(fresh, 'apiserver.json')).mode & 0o777, 0o600);

  // A data dir from before: open folder, world-readable snapshot.
  const dir = join(t.dir, 'modes');
  mkdirSync(dir, { mode: 0o755 });
  chmodSync(dir, 0o755);
  const snapshot = join(dir, 'apiserver.json');
  writeFileSync(snapshot, JSON.stringify({ resourceVersion: 1, objects: [] }), { mode: 0o644 });
  chmodSync(snapshot, 0o644);
  const server = await persistingServer(dir);
  try {
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.equal(statSync(snapshot).mode & 0o777, 0o600);
    await createSecret(server);
  } finally {
    await server.stop();
  }
  assert.equal(statSync(snapshot).mode & 0o777, 0o600);
});
