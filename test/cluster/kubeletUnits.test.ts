import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { isProjectImage, TRAINER_IMAGE, OPERATOR_IMAGE } from '../../src/api/images.js';
import { expand } from '../../src/cluster/kubelet/expand.js';
import { containerEnv, expandCommand, type EnvSources } from '../../src/cluster/kubelet/podEnv.js';
import { computePodStatus, podPhase, type PodRecord } from '../../src/cluster/kubelet/podStatus.js';
import {
  insufficientResources,
  parseQuantity,
  podRequests,
  unschedulableMessage,
} from '../../src/cluster/kubelet/resources.js';
import { containerPathMap, podVolumeFolders } from '../../src/cluster/kubelet/volumes.js';
import { matchesNode } from '../../src/cluster/kubelet/nodeAffinity.js';
import { podManifest } from '../support/pods.js';

const noSources: EnvSources = {
  configMapKey: async () => undefined,
  secretKey: async () => undefined,
  configMapData: async () => undefined,
  secretData: async () => undefined,
};

test('isProjectImage accepts any tag, digest or registry of the project images and nothing else', () => {
  for (const img of [
    TRAINER_IMAGE,
    OPERATOR_IMAGE,
    'btx-trainer',
    'btx-ai/btx-trainer:dev',
    'localhost:5000/btx-ai/btx-operator@sha256:abc',
    'ghcr.io/btx-ai/btx-trainer',
  ]) {
    assert.equal(isProjectImage(img), true, img);
  }
  for (const img of [
    'busybox',
    'node:20',
    'ghcr.io/someone/btx-trainer:1',
    'ghcr.io/btx-ai/other:1',
    'btx-trainer-x',
  ]) {
    assert.equal(isProjectImage(img), false, img);
  }
});

test('$(VAR) expansion follows Kubernetes: defined vars replaced, unknown kept, $$ escapes', () => {
  const env: Record<string, string> = { A: 'x', B: 'y' };
  const look = (n: string) => env[n];
  assert.equal(expand('$(A)-$(B)', look), 'x-y');
  assert.equal(expand('$(C) stays', look), '$(C) stays');
  assert.equal(expand('$$(A) is escaped', look), '$(A) is escaped');
  assert.equal(expand('$(A', look), '$(A');
  assert.equal(expand('cost $5', look), 'cost $5');
});

test('quantities parse with Kubernetes suffixes', () => {
  assert.equal(parseQuantity('500m'), 0.5);
  assert.equal(parseQuantity('2'), 2);
  assert.equal(parseQuantity('1Gi'), 2 ** 30);
  assert.equal(parseQuantity('1G'), 1e9);
  assert.equal(parseQuantity('1e3'), 1000);
  assert.throws(() => parseQuantity('abc'), /invalid resource quantity/);
});

test('pod requests: limits stand in for missing requests, init containers take the max', () => {
  const pod: V1Pod = {
    spec: {
      containers: [
        { name: 'a', resources: { requests: { cpu: '250m' }, limits: { 'nvidia.com/gpu': '1' } } },
        { name: 'b', resources: { requests: { cpu: '250m', memory: '1Gi' } } },
      ],
      initContainers: [{ name: 'i', resources: { requests: { cpu: '2' } } }],
    },
  };
  assert.deepEqual(podRequests(pod), { cpu: 2, 'nvidia.com/gpu': 1, memory: 2 ** 30 });
  assert.deepEqual(
    insufficientResources({ cpu: 1, 'nvidia.com/gpu': 1 }, { cpu: 4, 'nvidia.com/gpu': 0 }, {}),
    ['nvidia.com/gpu'],
  );
  assert.deepEqual(insufficientResources({ cpu: 1 }, { cpu: 4 }, { cpu: 3.5 }), ['cpu']);
  assert.match(
    unschedulableMessage(['Insufficient nvidia.com/gpu']),
    /^0\/1 nodes are available: 1 Insufficient nvidia\.com\/gpu\./,
  );
});

test('env from ConfigMap and Secret keys: found keys are set, a missing key fails naming it unless optional', async () => {
  const pod = podManifest('p', {}, { namespace: 'ns' });
  const sources: EnvSources = {
    ...noSources,
    configMapKey: async (ns, name, key) => (`${ns}/${name}/${key}` === 'ns/cm/a' ? 'from-cm' : undefined),
    secretKey: async (ns, name, key) => (`${ns}/${name}/${key}` === 'ns/sec/b' ? 'from-secret' : undefined),
  };
  const envOf = (env: NonNullable<V1Pod['spec']>['containers'][number]['env']) =>
    containerEnv(pod, { name: 'c', env }, '127.0.0.1', sources);
  assert.deepEqual(
    await envOf([
      { name: 'A', valueFrom: { configMapKeyRef: { name: 'cm', key: 'a' } } },
      { name: 'B', valueFrom: { secretKeyRef: { name: 'sec', key: 'b' } } },
      { name: 'C', valueFrom: { configMapKeyRef: { name: 'cm', key: 'none', optional: true } } },
      { name: 'D', valueFrom: { secretKeyRef: { name: 'sec', key: 'none', optional: true } } },
    ]),
    { A: 'from-cm', B: 'from-secret' },
  );
  await assert.rejects(
    envOf([{ name: 'X', valueFrom: { configMapKeyRef: { name: 'cm', key: 'none' } } }]),
    /^Error: couldn't find key none in ConfigMap ns\/cm$/,
  );
  await assert.rejects(
    envOf([{ name: 'X', valueFrom: { secretKeyRef: { name: 'sec', key: 'none' } } }]),
    /^Error: couldn't find key none in Secret ns\/sec$/,
  );
});

test('env: values refer to earlier ones, fieldRefs read the pod, command args expand', async () => {
  const pod: V1Pod = {
    metadata: { name: 'p', namespace: 'ns', uid: 'u1', labels: { app: 'x' }, annotations: { note: 'n' } },
    spec: { nodeName: 'btx-local', containers: [] },
  };
  const env = await containerEnv(
    pod,
    {
      name: 'c',
      env: [
        { name: 'A', value: 'a' },
        { name: 'B', value: '$(A)-b' },
        { name: 'NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
        { name: 'NS', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
        { name: 'UID', valueFrom: { fieldRef: { fieldPath: 'metadata.uid' } } },
        { name: 'APP', valueFrom: { fieldRef: { fieldPath: "metadata.labels['app']" } } },
        { name: 'NOTE', valueFrom: { fieldRef: { fieldPath: "metadata.annotations['note']" } } },
        { name: 'NODE', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
        { name: 'IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
      ],
    },
    '127.0.0.1',
    noSources,
    { BASE: '1' },
  );
  assert.deepEqual(env, {
    BASE: '1',
    A: 'a',
    B: 'a-b',
    NAME: 'p',
    NS: 'ns',
    UID: 'u1',
    APP: 'x',
    NOTE: 'n',
    NODE: 'btx-local',
    IP: '127.0.0.1',
  });
  assert.deepEqual(expandCommand(['echo', '$(NAME)', '$(MISSING)'], env), ['echo', 'p', '$(MISSING)']);
});

test('volumes map to folders under the data dir; mounts, subPath, termination path and workingDir reach the path map', () => {
  const pod: V1Pod = {
    metadata: { name: 'p', namespace: 'ns' },
    spec: {
      containers: [],
      volumes: [
        { name: 'data', persistentVolumeClaim: { claimName: 'shared' } },
        { name: 'tmp', emptyDir: {} },
        { name: 'etc', hostPath: { path: '/etc/x' } },
        { name: 'ok', hostPath: { path: '/srv/allowed/y' } },
      ],
    },
  };
  const folders = podVolumeFolders(pod, {
    dataDir: '/d',
    podDir: '/d/pods/ns/p_u',
    hostPathPrefixes: ['/srv/allowed'],
  });
  assert.equal(folders.get('data')?.folder, '/d/volumes/pvc/ns/shared');
  assert.equal(folders.get('tmp')?.folder, '/d/pods/ns/p_u/volumes/empty-dir/tmp');
  assert.equal(folders.get('etc')?.folder, '/d/volumes/hostpath/etc/x');
  assert.equal(folders.get('ok')?.folder, '/srv/allowed/y');
  const map = containerPathMap(
    {
      name: 'c',
      workingDir: '/app',
      volumeMounts: [
        { name: 'data', mountPath: '/btx' },
        { name: 'data', mountPath: '/cache', subPath: 'cache' },
      ],
    },
    folders,
    '/d/pods/ns/p_u/c/termination-log',
    '/d/pods/ns/p_u/c/workdir',
  );
  assert.deepEqual(map, {
    '/btx': '/d/volumes/pvc/ns/shared',
    '/cache': '/d/volumes/pvc/ns/shared/cache',
    '/dev/termination-log': '/d/pods/ns/p_u/c/termination-log',
    '/app': '/d/pods/ns/p_u/c/workdir',
  });
  assert.throws(
    () =>
      containerPathMap({ name: 'c', volumeMounts: [{ name: 'nope', mountPath: '/x' }] }, folders, 't', 'w'),
    /volume "nope" not found/,
  );
  // A pod stored before the API server checked subPaths still cannot reach the host through one.
  assert.throws(
    () =>
      containerPathMap(
        { name: 'c', volumeMounts: [{ name: 'data', mountPath: '/x', subPath: '../../../etc' }] },
        folders,
        't',
        'w',
      ),
    /subPath "..\/..\/..\/etc" of volume "data" leaves the volume/,
  );
});

function record(
  states: PodRecord['containers'][number]['state'][],
  init: PodRecord['initContainers'] = [],
): PodRecord {
  return {
    initContainers: init,
    containers: states.map((state, i) => ({ name: `c${i}`, image: 'img', state, restartCount: 0 })),
    startTime: '2026-01-01T00:00:00Z',
  };
}

const t = '2026-01-01T00:00:00Z';
const exit = (exitCode: number) => ({
  kind: 'terminated' as const,
  exitCode,
  reason: exitCode ? 'Error' : 'Completed',
  startedAt: t,
  finishedAt: t,
});

test('pod phase follows the kubelet: waiting is Pending, any running is Running, restart policy decides the end', () => {
  assert.equal(podPhase(record([{ kind: 'waiting', reason: 'ContainerCreating' }]), 'Never'), 'Pending');
  assert.equal(podPhase(record([{ kind: 'running', startedAt: t }, exit(0)]), 'Never'), 'Running');
  assert.equal(podPhase(record([exit(0), exit(0)]), 'Never'), 'Succeeded');
  assert.equal(podPhase(record([exit(0), exit(3)]), 'Never'), 'Failed');
  assert.equal(podPhase(record([exit(3)]), 'OnFailure'), 'Running');
  assert.equal(podPhase(record([exit(0)]), 'Always'), 'Running');
  const deleted = record([exit(143)]);
  deleted.deleted = true;
  assert.equal(
    podPhase(deleted, 'Always'),
    'Failed',
    'a deleted pod ends terminal whatever its restart policy',
  );
  const deletedOk = record([exit(0)]);
  deletedOk.deleted = true;
  assert.equal(podPhase(deletedOk, 'OnFailure'), 'Succeeded');
  const failedInit = [{ name: 'i', image: 'img', state: exit(1), restartCount: 0 }];
  assert.equal(
    podPhase(record([{ kind: 'waiting', reason: 'PodInitializing' }], failedInit), 'Never'),
    'Failed',
  );
  assert.equal(
    podPhase(record([{ kind: 'waiting', reason: 'PodInitializing' }], failedInit), 'OnFailure'),
    'Pending',
  );
});

test('status: exit code, reason and message per container; Ready conditions; DisruptionTarget when the node is lost', () => {
  const pod: V1Pod = { metadata: { name: 'p' }, spec: { restartPolicy: 'Never', containers: [] } };
  const r = record([{ ...exit(3), message: 'bye' }]);
  const s = computePodStatus(pod, r, t);
  assert.equal(s.phase, 'Failed');
  assert.deepEqual(s.containerStatuses?.[0]?.state?.terminated?.exitCode, 3);
  assert.equal(s.containerStatuses?.[0]?.state?.terminated?.reason, 'Error');
  assert.equal(s.containerStatuses?.[0]?.state?.terminated?.message, 'bye');
  assert.equal(s.conditions?.find((c) => c.type === 'Ready')?.reason, 'PodCompleted');
  assert.equal(s.podIP, '127.0.0.1');

  const running = computePodStatus(pod, record([{ kind: 'running', startedAt: t }]), t);
  assert.equal(running.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
  assert.equal(running.containerStatuses?.[0]?.ready, true);

  const lost = record([exit(137)]);
  lost.nodeLost = { at: t, nodeName: 'btx-local' };
  const ls = computePodStatus({ ...pod, spec: { restartPolicy: 'Always', containers: [] } }, lost, t);
  assert.equal(ls.phase, 'Failed');
  const dt = ls.conditions?.find((c) => c.type === 'DisruptionTarget');
  assert.equal(dt?.status, 'True');
  assert.equal(dt?.reason, 'DeletionByTaintManager');
  assert.equal(ls.reason, 'NodeLost');
});

test('node affinity: nodeSelector and required terms (OR of ANDed expressions) decide whether a pod fits the node', () => {
  const labels = {
    'kubernetes.io/hostname': 'btx-local',
    'nvidia.com/gpu.present': 'true',
    'nvidia.com/gpu.count': '2',
  };
  const pod = (spec: Partial<NonNullable<V1Pod['spec']>>): V1Pod => podManifest('scheduled', spec);
  assert.equal(
    matchesNode(pod({ nodeSelector: { 'nvidia.com/gpu.present': 'true' } }), 'btx-local', labels),
    true,
  );
  assert.equal(matchesNode(pod({ nodeSelector: { disk: 'ssd' } }), 'btx-local', labels), false);
  const affinity = (
    terms: {
      matchExpressions?: { key: string; operator: string; values?: string[] }[];
      matchFields?: { key: string; operator: string; values?: string[] }[];
    }[],
  ) =>
    pod({
      affinity: {
        nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: terms } },
      },
    });
  assert.equal(
    matchesNode(
      affinity([{ matchExpressions: [{ key: 'nvidia.com/gpu.count', operator: 'Gt', values: ['1'] }] }]),
      'btx-local',
      labels,
    ),
    true,
  );
  assert.equal(
    matchesNode(
      affinity([{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] }]),
      'btx-local',
      labels,
    ),
    false,
  );
  assert.equal(
    matchesNode(
      affinity([
        { matchExpressions: [{ key: 'zone', operator: 'Exists' }] },
        { matchFields: [{ key: 'metadata.name', operator: 'In', values: ['btx-local'] }] },
      ]),
      'btx-local',
      labels,
    ),
    true,
  );
  assert.equal(
    matchesNode(
      affinity([
        {
          matchExpressions: [
            { key: 'zone', operator: 'DoesNotExist' },
            { key: 'kubernetes.io/hostname', operator: 'NotIn', values: ['btx-local'] },
          ],
        },
      ]),
      'btx-local',
      labels,
    ),
    false,
  );
});
