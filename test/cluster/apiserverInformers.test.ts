// client-node 1.4 informers against the embedded API server, over the TLS kubeconfig that
// kubeconfigYaml writes: list + watch, reconnect after a dropped stream, relist after 410 Gone,
// 409 Conflict on a stale update, and a label-selected informer that sees objects leave.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  ApiException,
  CoreV1Api,
  KubeConfig,
  makeInformer,
  PatchStrategy,
  setHeaderOptions,
  type V1ConfigMap,
} from '@kubernetes/client-node';
import { kubeconfigYaml } from '../../src/cluster/apiserver/kubeconfig.js';
import { serverInternals } from '../../src/cluster/apiserver/server.js';
import { type TestApiServer, startTestApiServer } from '../support/controlPlane.js';
import { waitFor } from '../support/waitFor.js';

let t: TestApiServer;
let core: CoreV1Api;
let kc: KubeConfig;

before(async () => {
  t = await startTestApiServer({ watchHistory: 20 });
  kc = new KubeConfig();
  kc.loadFromString(kubeconfigYaml(t.url, t.token));
  assert.match(kc.getCurrentCluster()!.server, /^https:/);
  core = kc.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: 'inf' } } });
});

after(async () => {
  await t?.stop();
});

function cm(
  name: string,
  labels: Record<string, string> = {},
  data: Record<string, string> = {},
): V1ConfigMap {
  return { metadata: { name, namespace: 'inf', labels }, data };
}

interface Seen {
  type: string;
  name: string;
  value?: string;
}

test('an informer lists, then sees ADDED, MODIFIED and DELETED; it reconnects after the server drops the stream', async () => {
  await core.createNamespacedConfigMap({ namespace: 'inf', body: cm('before', {}, { v: '0' }) });
  const seen: Seen[] = [];
  const informer = makeInformer(kc, '/api/v1/namespaces/inf/configmaps', () =>
    core.listNamespacedConfigMap({ namespace: 'inf' }),
  );
  informer.on('add', (o) => seen.push({ type: 'add', name: o.metadata!.name!, value: o.data?.v }));
  informer.on('update', (o) => seen.push({ type: 'update', name: o.metadata!.name!, value: o.data?.v }));
  informer.on('delete', (o) => seen.push({ type: 'delete', name: o.metadata!.name! }));
  await informer.start();
  try {
    await waitFor(
      'the listed object',
      () => seen.some((s) => s.type === 'add' && s.name === 'before'),
      10_000,
    );
    await core.createNamespacedConfigMap({ namespace: 'inf', body: cm('a', {}, { v: '1' }) });
    await core.patchNamespacedConfigMap(
      { namespace: 'inf', name: 'a', body: { data: { v: '2' } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    await core.deleteNamespacedConfigMap({ namespace: 'inf', name: 'a' });
    await waitFor('the delete event', () => seen.some((s) => s.type === 'delete' && s.name === 'a'), 10_000);
    assert.deepEqual(
      seen.filter((s) => s.name === 'a').map((s) => `${s.type}:${s.value ?? ''}`),
      ['add:1', 'update:2', 'delete:'],
    );
    // Drop every watch; the informer re-watches from its last resourceVersion and misses nothing.
    assert.ok(serverInternals(t.server).closeWatches() >= 1);
    await core.createNamespacedConfigMap({ namespace: 'inf', body: cm('after-drop', {}, { v: '3' }) });
    await waitFor(
      'an event after the dropped stream',
      () => seen.some((s) => s.type === 'add' && s.name === 'after-drop'),
      10_000,
    );
    assert.deepEqual(
      informer
        .list('inf')
        .map((o) => o.metadata!.name)
        .sort(),
      ['after-drop', 'before'],
    );
  } finally {
    await informer.stop();
  }
});

test('an informer whose resourceVersion was compacted gets 410 Gone and relists', async () => {
  let lists = 0;
  const informer = makeInformer(kc, '/api/v1/namespaces/inf/configmaps', () => {
    lists++;
    return core.listNamespacedConfigMap({ namespace: 'inf' });
  });
  const added = new Set<string>();
  informer.on('add', (o) => added.add(o.metadata!.name!));
  await informer.start();
  try {
    await waitFor('the first list', () => added.has('before'), 10_000);
    assert.equal(lists, 1);
    // In one tick: drop the stream and write more than the history holds, so the informer's
    // resourceVersion is compacted before it re-watches.
    const { api } = serverInternals(t.server);
    const info = api.registry.get('', 'configmaps')!;
    serverInternals(t.server).closeWatches();
    for (let i = 0; i < 30; i++) api.create(info, 'v1', 'inf', { metadata: { name: `burst-${i}` } });
    await waitFor('a relist that finds the burst', () => lists >= 2 && added.has('burst-29'), 10_000);
    assert.equal(informer.list('inf').filter((o) => o.metadata!.name!.startsWith('burst-')).length, 30);
  } finally {
    await informer.stop();
  }
});

test('a stale update is refused with 409 Conflict', async () => {
  const created = await core.createNamespacedConfigMap({ namespace: 'inf', body: cm('cas', {}, { v: '1' }) });
  await core.replaceNamespacedConfigMap({
    namespace: 'inf',
    name: 'cas',
    body: { ...created, data: { v: '2' } },
  });
  await assert.rejects(
    core.replaceNamespacedConfigMap({
      namespace: 'inf',
      name: 'cas',
      body: { ...created, data: { v: '3' } },
    }),
    (err: unknown) => {
      assert.ok(err instanceof ApiException);
      assert.equal(err.code, 409);
      const body = typeof err.body === 'string' ? JSON.parse(err.body) : err.body;
      assert.equal(body.reason, 'Conflict');
      assert.equal(
        body.message,
        'Operation cannot be fulfilled on configmaps "cas": the object has been modified; please apply your changes to the latest version and try again',
      );
      return true;
    },
  );
});

test('a label-selected informer sees an object leave the selector as DELETED and come back as ADDED', async () => {
  const seen: string[] = [];
  const informer = makeInformer(
    kc,
    '/api/v1/namespaces/inf/configmaps',
    () => core.listNamespacedConfigMap({ namespace: 'inf', labelSelector: 'team=a' }),
    'team=a',
  );
  informer.on('add', (o) => seen.push(`add:${o.metadata!.name}`));
  informer.on('update', (o) => seen.push(`update:${o.metadata!.name}`));
  informer.on('delete', (o) => seen.push(`delete:${o.metadata!.name}`));
  await informer.start();
  try {
    const obj = await core.createNamespacedConfigMap({ namespace: 'inf', body: cm('sel', { team: 'a' }) });
    await core.createNamespacedConfigMap({ namespace: 'inf', body: cm('other', { team: 'b' }) });
    await waitFor('the selected object', () => seen.includes('add:sel'), 10_000);
    const moved = await core.replaceNamespacedConfigMap({
      namespace: 'inf',
      name: 'sel',
      body: { ...obj, metadata: { ...obj.metadata, labels: { team: 'b' } } },
    });
    await waitFor('the object leaving the selector', () => seen.includes('delete:sel'), 10_000);
    assert.equal(informer.get('sel', 'inf'), undefined);
    await core.replaceNamespacedConfigMap({
      namespace: 'inf',
      name: 'sel',
      body: { ...moved, metadata: { ...moved.metadata, labels: { team: 'a' } } },
    });
    await waitFor('the object coming back', () => seen.filter((s) => s === 'add:sel').length === 2, 10_000);
    assert.ok(!seen.includes('add:other'));
  } finally {
    await informer.stop();
  }
});
