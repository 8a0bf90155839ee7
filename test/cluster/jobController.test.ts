// The Job controller on the real embedded API server and kubelet, checked with client-node and kubectl.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import type { BatchV1Api, CoreV1Api, V1Job } from '@kubernetes/client-node';
import type { ControlPlane } from '../../src/cluster/controlPlane.js';
import { startTestControlPlane, type TestControlPlane } from '../support/controlPlane.js';
import { kubectlPath } from '../support/tools.js';
import { nodeContainer } from '../support/pods.js';
import { waitFor, waitForState } from '../support/waitFor.js';

const run = promisify(execFile);
const NS = 'default';
let plane: ControlPlane;
let batch: BatchV1Api;
let core: CoreV1Api;
let dataDir: string;
let cluster: TestControlPlane;

before(async () => {
  cluster = await startTestControlPlane({
    name: 'jobs',
    controllers: { jobBackoffBaseMs: 100, restartBackoffBaseMs: 100, stopGraceSeconds: 2 },
  });
  plane = cluster.plane!;
  batch = cluster.batch;
  core = cluster.core;
  dataDir = cluster.dataDir;
});

after(async () => {
  await cluster?.stop();
});

function jobOf(name: string, script: string, spec: Partial<NonNullable<V1Job['spec']>> = {}): V1Job {
  return {
    metadata: { name },
    spec: {
      ...spec,
      template: { spec: { restartPolicy: 'Never', containers: [nodeContainer(script)] } },
    },
  };
}

async function waitForJob(
  name: string,
  ok: (j: V1Job) => boolean,
  what: string,
  timeoutMs = 30_000,
): Promise<V1Job> {
  return waitForState(
    `job ${name} to get ${what}`,
    () => batch.readNamespacedJob({ name, namespace: NS }),
    ok,
    timeoutMs,
  );
}

const hasCondition = (type: string) => (j: V1Job) =>
  j.status?.conditions?.some((c) => c.type === type && c.status === 'True') ?? false;

test('a Job with backoffLimit 2 whose pod always fails creates 3 pods, then Failed with BackoffLimitExceeded', async () => {
  await batch.createNamespacedJob({
    namespace: NS,
    body: jobOf('always-fails', 'process.exit(1)', { backoffLimit: 2 }),
  });
  const job = await waitForJob('always-fails', hasCondition('Failed'), 'condition Failed');
  const failedCond = job.status?.conditions?.find((c) => c.type === 'Failed');
  assert.equal(failedCond?.reason, 'BackoffLimitExceeded');
  assert.equal(job.status?.failed, 3);
  assert.equal(job.status?.active ?? 0, 0);
  const pods = await core.listNamespacedPod({ namespace: NS, labelSelector: 'job-name=always-fails' });
  assert.equal(pods.items.length, 3);
  for (const p of pods.items) {
    assert.equal(p.status?.phase, 'Failed');
    const owner = p.metadata?.ownerReferences?.[0];
    assert.equal(owner?.kind, 'Job');
    assert.equal(owner?.uid, job.metadata?.uid);
    assert.equal(owner?.controller, true);
    assert.equal(owner?.blockOwnerDeletion, true);
    assert.equal(p.metadata?.labels?.['batch.kubernetes.io/controller-uid'], job.metadata?.uid);
    assert.match(p.metadata?.name ?? '', /^always-fails-/);
  }
});

test('a Job whose pod succeeds is Complete (kubectl wait --for=condition=complete), with counts and times', async () => {
  await batch.createNamespacedJob({
    namespace: NS,
    body: jobOf('succeeds', 'console.log("done")', { completions: 2, parallelism: 1 }),
  });
  const { stdout } = await run(kubectlPath(), [
    '--kubeconfig',
    plane.kubeconfigPath,
    'wait',
    '--for=condition=complete',
    'job/succeeds',
    '--timeout=60s',
  ]);
  assert.match(stdout, /job\.batch\/succeeds condition met/);
  const job = await batch.readNamespacedJob({ name: 'succeeds', namespace: NS });
  assert.equal(job.status?.succeeded, 2);
  assert.ok(job.status?.startTime);
  assert.ok(job.status?.completionTime);
  assert.equal(job.status?.conditions?.find((c) => c.type === 'SuccessCriteriaMet')?.status, 'True');
});

test('activeDeadlineSeconds kills the running pod and fails the Job with DeadlineExceeded', async () => {
  await batch.createNamespacedJob({
    namespace: NS,
    body: jobOf('too-slow', 'setInterval(() => {}, 1000)', { activeDeadlineSeconds: 1 }),
  });
  const job = await waitForJob('too-slow', hasCondition('Failed'), 'condition Failed');
  assert.equal(job.status?.conditions?.find((c) => c.type === 'Failed')?.reason, 'DeadlineExceeded');
  await waitFor(
    'the pod to be stopped',
    async () => {
      const pods = await core.listNamespacedPod({ namespace: NS, labelSelector: 'job-name=too-slow' });
      return pods.items.every((p) => p.status?.phase === 'Failed' || p.status?.phase === 'Succeeded');
    },
    20_000,
  );
});

test('podFailurePolicy Ignore on DisruptionTarget: a pod lost with its node is replaced without spending backoffLimit', async () => {
  // The first pod runs until its node is lost; the replacement exits 0 at once. (A first pod that
  // ended by itself could finish before loseNode on a loaded machine and be counted a success.)
  const marker = join(dataDir, 'survives-node-loss.started');
  const script = `const fs = require('fs'); const m = ${JSON.stringify(marker)}; if (!fs.existsSync(m)) { fs.writeFileSync(m, ''); setInterval(() => {}, 1000); }`;
  await batch.createNamespacedJob({
    namespace: NS,
    body: jobOf('survives-node-loss', script, {
      backoffLimit: 0,
      podFailurePolicy: {
        rules: [{ action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] }],
      },
    }),
  });
  const first = await waitFor(
    'the first pod to run',
    async () => {
      const pods = await core.listNamespacedPod({
        namespace: NS,
        labelSelector: 'job-name=survives-node-loss',
      });
      return existsSync(marker) && pods.items.find((p) => p.status?.phase === 'Running')?.metadata?.name;
    },
    20_000,
    50,
  );
  await plane.kubelet.loseNode(NS, first);
  const job = await waitForJob('survives-node-loss', hasCondition('Complete'), 'condition Complete');
  assert.equal(job.status?.failed ?? 0, 0);
  assert.equal(job.status?.succeeded, 1);
  const pods = await core.listNamespacedPod({ namespace: NS, labelSelector: 'job-name=survives-node-loss' });
  assert.deepEqual(pods.items.map((p) => p.status?.phase).sort(), ['Failed', 'Succeeded']);
});

test('kubectl delete job cascades: the garbage collector deletes the pod and the kubelet stops its process', async () => {
  const pidFile = join(dataDir, 'cascade.pid');
  await batch.createNamespacedJob({
    namespace: NS,
    body: jobOf(
      'cascade',
      `require('fs').writeFileSync(${JSON.stringify(pidFile)}, String(process.pid)); setInterval(() => {}, 1000)`,
    ),
  });
  await waitFor('the pod to run', () => existsSync(pidFile), 20_000, 50);
  const pid = Number(readFileSync(pidFile, 'utf8'));
  await run(kubectlPath(), ['--kubeconfig', plane.kubeconfigPath, 'delete', 'job', 'cascade', '--wait=true']);
  const isAlive = () => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  await waitFor(
    'the pod and its process to go with the Job',
    async () => {
      const pods = await core.listNamespacedPod({ namespace: NS, labelSelector: 'job-name=cascade' });
      return pods.items.length === 0 && !isAlive();
    },
    20_000,
  );
});

test('an Indexed Job runs one pod per completion index with JOB_COMPLETION_INDEX and reports completedIndexes', async () => {
  const job = jobOf(
    'indexed',
    `require('fs').writeFileSync(${JSON.stringify(join(dataDir, 'index-'))} + process.env.JOB_COMPLETION_INDEX, process.env.HOSTNAME)`,
    { completionMode: 'Indexed', completions: 3, parallelism: 2 },
  );
  await batch.createNamespacedJob({ namespace: NS, body: job });
  const done = await waitForJob('indexed', hasCondition('Complete'), 'condition Complete');
  assert.equal(done.status?.completedIndexes, '0-2');
  assert.equal(done.status?.succeeded, 3);
  for (const i of [0, 1, 2]) assert.equal(readFileSync(join(dataDir, `index-${i}`), 'utf8'), `indexed-${i}`);
});

test("the kubelet and the Job controller make a Job's API calls over kept connections, not a TLS handshake each", async () => {
  // The CommonJS tls module (an ES namespace import is frozen): https agents call its connect.
  const tls = createRequire(import.meta.url)('node:tls') as { connect: (...args: unknown[]) => unknown };
  const connect = tls.connect;
  let handshakes = 0;
  tls.connect = (...args: unknown[]) => {
    handshakes++;
    return connect.apply(tls, args);
  };
  try {
    await batch.createNamespacedJob({
      namespace: NS,
      body: jobOf('kept-connections', 'console.log("done")'),
    });
    await waitForJob('kept-connections', hasCondition('Complete'), 'condition Complete');
  } finally {
    tls.connect = connect;
  }
  // The pod's create and its status writes, the Job's status writes and their Events made one
  // handshake each before (client-node builds a new agent per call); a watch that happens to
  // reconnect in between may still open one.
  assert.ok(handshakes <= 1, `${handshakes} TLS connections opened for one Job`);
});
