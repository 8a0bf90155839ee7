// Fault injection and deletion on the real embedded API server, on a node without GPUs.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { CoreV1Api, V1Pod, V1PodSpec } from '@kubernetes/client-node';
import type { ControlPlane } from '../../src/cluster/controlPlane.js';
import { startTestControlPlane, type TestControlPlane } from '../support/controlPlane.js';
import { nodeContainer as container, testPod, waitForPod, waitForPodGone } from '../support/pods.js';
import { waitFor } from '../support/waitFor.js';

const NS = 'default';
let plane: ControlPlane;
let core: CoreV1Api;
let dataDir: string;
let cluster: TestControlPlane;

before(async () => {
  cluster = await startTestControlPlane({
    name: 'kubelet-faults',
    controllers: { restartBackoffBaseMs: 100, stopGraceSeconds: 2 },
  });
  plane = cluster.plane!;
  core = cluster.core;
  dataDir = cluster.dataDir;
});

after(async () => {
  await cluster?.stop();
});

const SLEEPER = `setInterval(() => {}, 1000)`;

async function createPod(name: string, spec: Partial<V1PodSpec>): Promise<void> {
  await core.createNamespacedPod({ namespace: NS, body: testPod(name, spec) });
}

const running = (p: V1Pod) => p?.status?.phase === 'Running';
const failed = (p: V1Pod) => p?.status?.phase === 'Failed';

test('a pod requesting nvidia.com/gpu on a 0-GPU node stays Pending with PodScheduled=False, Unschedulable', async () => {
  await createPod('wants-gpu', {
    containers: [container('0', { resources: { limits: { 'nvidia.com/gpu': '1' } } })],
  });
  const pod = await waitForPod(
    core,
    'wants-gpu',
    (p) => p?.status?.conditions?.some((c) => c.type === 'PodScheduled') ?? false,
    'a PodScheduled condition',
  );
  const cond = pod?.status?.conditions?.find((c) => c.type === 'PodScheduled');
  assert.equal(cond?.status, 'False');
  assert.equal(cond?.reason, 'Unschedulable');
  assert.match(cond?.message ?? '', /^0\/1 nodes are available: 1 Insufficient nvidia\.com\/gpu\./);
  assert.equal(pod?.status?.phase, 'Pending');
  assert.equal(pod?.spec?.nodeName, undefined);
});

test('killPod fails the pod with exit code 137 and reason Error', async () => {
  await createPod('victim', { containers: [container(SLEEPER)] });
  await waitForPod(core, 'victim', running, 'phase Running');
  await plane.kubelet.killPod(NS, 'victim');
  const pod = await waitForPod(core, 'victim', failed, 'phase Failed');
  const term = pod?.status?.containerStatuses?.[0]?.state?.terminated;
  assert.equal(term?.exitCode, 137);
  assert.equal(term?.reason, 'Error');
});

test('loseNode fails the pod with a DisruptionTarget condition, even with restartPolicy Always', async () => {
  await createPod('stranded', { restartPolicy: 'Always', containers: [container(SLEEPER)] });
  await waitForPod(core, 'stranded', running, 'phase Running');
  await plane.kubelet.loseNode(NS, 'stranded');
  const pod = await waitForPod(core, 'stranded', failed, 'phase Failed');
  const cond = pod?.status?.conditions?.find((c) => c.type === 'DisruptionTarget');
  assert.equal(cond?.status, 'True');
  assert.equal(cond?.reason, 'DeletionByTaintManager');
  assert.equal(pod?.status?.reason, 'NodeLost');
  assert.equal(pod?.status?.containerStatuses?.[0]?.state?.terminated?.exitCode, 137);
});

test('delete sends SIGTERM, waits for the process, then the pod is gone', async () => {
  const marker = join(dataDir, 'sigterm.txt');
  const ready = join(dataDir, 'ready.txt');
  await createPod('graceful', {
    terminationGracePeriodSeconds: 10,
    containers: [
      container(
        `process.on('SIGTERM', () => { require('fs').writeFileSync(${JSON.stringify(marker)}, 'SIGTERM'); process.exit(0) }); require('fs').writeFileSync(${JSON.stringify(ready)}, ''); ${SLEEPER}`,
      ),
    ],
  });
  await waitForPod(core, 'graceful', running, 'phase Running');
  // The handler is installed once the script runs: like a real app, it is ready a little after Running.
  await waitFor('the SIGTERM handler to be installed', () => existsSync(ready), 10_000, 50);
  await core.deleteNamespacedPod({ name: 'graceful', namespace: NS });
  await waitForPodGone(core, 'graceful');
  assert.ok(existsSync(marker), 'the process saw SIGTERM');
  assert.equal(readFileSync(marker, 'utf8'), 'SIGTERM');
});

test('a pod past its activeDeadlineSeconds is stopped and fails with reason DeadlineExceeded', async () => {
  await createPod('overdue', { activeDeadlineSeconds: 1, containers: [container(SLEEPER)] });
  const pod = await waitForPod(core, 'overdue', failed, 'phase Failed');
  assert.equal(pod?.status?.reason, 'DeadlineExceeded');
  assert.ok(pod?.status?.containerStatuses?.[0]?.state?.terminated, 'the container was stopped');
});

test('pods deleted while the scheduler binds them (binding 404) never stop later pods from being scheduled', async () => {
  // Each create is followed at once by a delete, so scheduling passes race with deletions and some
  // bindings answer 404. The pod created afterwards must still be bound and run to completion.
  await Promise.all(
    Array.from({ length: 25 }, async (_, i) => {
      const name = `churn-${i}`;
      await createPod(name, { containers: [container(SLEEPER)] });
      await core.deleteNamespacedPod({ name, namespace: NS, gracePeriodSeconds: 0 }).catch(() => undefined);
    }),
  );
  await createPod('after-churn', { containers: [container('process.exit(0)')] });
  await waitForPod(core, 'after-churn', (p) => p?.status?.phase === 'Succeeded', 'Succeeded');
});
