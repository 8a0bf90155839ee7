// The kubelet on the real embedded API server: pods run as processes; status, logs (kubectl logs),
// termination messages, env, volumes and GPU capacity as Kubernetes reports them.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import type { CoreV1Api, V1Pod } from '@kubernetes/client-node';
import type { ControlPlane } from '../../src/cluster/controlPlane.js';
import { startTestControlPlane, type TestControlPlane } from '../support/controlPlane.js';
import { nodeContainer, testPod, waitForPod } from '../support/pods.js';
import { kubectlPath } from '../support/tools.js';

const run = promisify(execFile);
const NS = 'default';
let plane: ControlPlane;
let core: CoreV1Api;
let dataDir: string;
let cluster: TestControlPlane;
/** What the caller's image registry.example/greeter runs: it writes its args to the pod's volume. */
const GREETER = `const m = JSON.parse(process.env.LOCAL_PATHS); require('fs').writeFileSync(m['/out'] + '/greeting.txt', process.argv.slice(1).join(' '))`;

before(async () => {
  cluster = await startTestControlPlane({
    name: 'kubelet-pods',
    controllers: {
      gpus: 1,
      cpu: '4',
      memory: '8Gi',
      restartBackoffBaseMs: 100,
      stopGraceSeconds: 2,
      imageCommands: (image) =>
        image.startsWith('registry.example/greeter:') ? [process.execPath, '-e', GREETER] : undefined,
      pathMapVariable: 'LOCAL_PATHS',
    },
  });
  plane = cluster.plane!;
  core = cluster.core;
  dataDir = cluster.dataDir;
});

after(async () => {
  await cluster?.stop();
});

async function createPod(name: string, spec: V1Pod['spec'], labels?: Record<string, string>): Promise<void> {
  await core.createNamespacedPod({ namespace: NS, body: testPod(name, spec, { labels }) });
}

const phaseIs = (phase: string) => (p: V1Pod) => p.status?.phase === phase;

test('a pod that prints and exits 3 shows exit code 3, reason Error, its logs and its termination message', async () => {
  await createPod('exit3', {
    containers: [
      nodeContainer(
        `const m = JSON.parse(process.env.LOCAL_PATHS); console.log('hello from', process.env.HOSTNAME); require('fs').writeFileSync(m['/dev/termination-log'], '{"reason":"bad"}'); process.exit(3)`,
      ),
    ],
  });
  const pod = await waitForPod(core, 'exit3', phaseIs('Failed'), 'phase Failed');
  const cs = pod.status?.containerStatuses?.[0];
  assert.equal(cs?.state?.terminated?.exitCode, 3);
  assert.equal(cs?.state?.terminated?.reason, 'Error');
  assert.equal(cs?.state?.terminated?.message, '{"reason":"bad"}');
  assert.equal(pod.spec?.nodeName, 'btx-local');
  assert.equal(pod.status?.podIP, '127.0.0.1');
  assert.equal(pod.status?.conditions?.find((c) => c.type === 'PodScheduled')?.status, 'True');
  const { stdout } = await run(kubectlPath(), ['--kubeconfig', plane.kubeconfigPath, 'logs', 'exit3']);
  assert.equal(stdout, 'hello from exit3\n');
});

test('FallbackToLogsOnError puts the end of the log in the termination message of a failed container', async () => {
  await createPod('fallback', {
    containers: [
      nodeContainer(`console.error('something broke'); process.exit(2)`, {
        terminationMessagePolicy: 'FallbackToLogsOnError',
      }),
    ],
  });
  const pod = await waitForPod(core, 'fallback', phaseIs('Failed'), 'phase Failed');
  assert.equal(pod.status?.containerStatuses?.[0]?.state?.terminated?.message, 'something broke\n');
});

test('env fieldRefs and the path map reach the process: it writes under a PVC mountPath and the file is under dataDir', async () => {
  await createPod(
    'writer',
    {
      volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'shared' } }],
      containers: [
        nodeContainer(
          `const m = JSON.parse(process.env.LOCAL_PATHS); require('fs').writeFileSync(m['/btx'] + '/who.json', JSON.stringify({ name: process.env.POD, ns: process.env.NS, app: process.env.APP, arg: process.argv[1], kube: !!process.env.KUBECONFIG }))`,
          {
            args: ['$(POD)'],
            volumeMounts: [{ name: 'data', mountPath: '/btx' }],
            env: [
              { name: 'POD', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
              { name: 'NS', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
              { name: 'APP', valueFrom: { fieldRef: { fieldPath: "metadata.labels['app']" } } },
            ],
          },
        ),
      ],
    },
    { app: 'demo' },
  );
  const pod = await waitForPod(core, 'writer', phaseIs('Succeeded'), 'phase Succeeded');
  assert.equal(pod.status?.containerStatuses?.[0]?.state?.terminated?.reason, 'Completed');
  const written = JSON.parse(readFileSync(join(dataDir, 'volumes', 'pvc', NS, 'shared', 'who.json'), 'utf8'));
  assert.deepEqual(written, { name: 'writer', ns: NS, app: 'demo', arg: 'writer', kube: true });
});

test("an image without a command runs what the control plane's image command map gives it; an unknown one waits with ErrImagePull", async () => {
  await createPod('greeter', {
    volumes: [{ name: 'out', persistentVolumeClaim: { claimName: 'greetings' } }],
    containers: [
      {
        name: 'main',
        image: 'registry.example/greeter:2',
        args: ['hello', '$(WHO)'],
        env: [{ name: 'WHO', value: 'kubelet' }],
        volumeMounts: [{ name: 'out', mountPath: '/out' }],
      },
    ],
  });
  await waitForPod(core, 'greeter', phaseIs('Succeeded'), 'phase Succeeded');
  assert.equal(
    readFileSync(join(dataDir, 'volumes', 'pvc', NS, 'greetings', 'greeting.txt'), 'utf8'),
    'hello kubelet',
  );
  // The project's own image is nothing special to the kubelet: only its caller could map it.
  await createPod('unknown-image', {
    containers: [{ name: 'main', image: 'ghcr.io/btx-ai/btx-trainer:0.1.0' }],
  });
  const waiting = await waitForPod(
    core,
    'unknown-image',
    (p) => p.status?.containerStatuses?.[0]?.state?.waiting?.reason === 'ErrImagePull',
    'ErrImagePull',
  );
  assert.match(
    waiting.status?.containerStatuses?.[0]?.state?.waiting?.message ?? '',
    /set the container's command/,
  );
  await core.deleteNamespacedPod({ name: 'unknown-image', namespace: NS, gracePeriodSeconds: 0 });
});

test('two 1-GPU pods on a 1-GPU node: the second stays Unschedulable until the first ends', async () => {
  const gpu = { resources: { limits: { 'nvidia.com/gpu': '1' } } };
  await createPod('gpu-a', {
    containers: [
      nodeContainer(`setTimeout(() => {}, 1500); console.log(process.env.CUDA_VISIBLE_DEVICES)`, gpu),
    ],
  });
  await waitForPod(core, 'gpu-a', phaseIs('Running'), 'phase Running');
  await createPod('gpu-b', {
    containers: [nodeContainer(`console.log(process.env.CUDA_VISIBLE_DEVICES)`, gpu)],
  });
  const waiting = await waitForPod(
    core,
    'gpu-b',
    (p) => p.status?.conditions?.some((c) => c.type === 'PodScheduled' && c.status === 'False') ?? false,
    'PodScheduled=False',
  );
  const cond = waiting.status?.conditions?.find((c) => c.type === 'PodScheduled');
  assert.equal(cond?.reason, 'Unschedulable');
  assert.match(cond?.message ?? '', /^0\/1 nodes are available: 1 Insufficient nvidia\.com\/gpu\./);
  assert.equal(waiting.status?.phase, 'Pending');
  const a = await waitForPod(core, 'gpu-a', phaseIs('Succeeded'), 'phase Succeeded');
  const b = await waitForPod(core, 'gpu-b', phaseIs('Succeeded'), 'phase Succeeded');
  assert.ok(
    new Date(b.status?.startTime ?? 0) >=
      new Date(a.status?.containerStatuses?.[0]?.state?.terminated?.finishedAt ?? 0),
  );
  const { stdout } = await run(kubectlPath(), ['--kubeconfig', plane.kubeconfigPath, 'logs', 'gpu-b']);
  assert.equal(stdout, '0\n');
});

test('OnFailure restarts a failing container: restartCount, lastState, and kubectl logs --previous', async () => {
  const counter = join(dataDir, 'restarts');
  await createPod('flaky', {
    restartPolicy: 'OnFailure',
    containers: [
      nodeContainer(
        `const fs = require('fs'); const n = fs.existsSync(${JSON.stringify(counter)}) ? Number(fs.readFileSync(${JSON.stringify(counter)}, 'utf8')) : 0; fs.writeFileSync(${JSON.stringify(counter)}, String(n + 1)); console.log('run ' + n); process.exit(n < 1 ? 4 : 0)`,
      ),
    ],
  });
  const pod = await waitForPod(core, 'flaky', phaseIs('Succeeded'), 'phase Succeeded');
  const cs = pod.status?.containerStatuses?.[0];
  assert.equal(cs?.restartCount, 1);
  assert.equal(cs?.lastState?.terminated?.exitCode, 4);
  assert.equal(cs?.state?.terminated?.exitCode, 0);
  const kubectl = (...args: string[]) => run(kubectlPath(), ['--kubeconfig', plane.kubeconfigPath, ...args]);
  assert.equal((await kubectl('logs', 'flaky', '--previous')).stdout, 'run 0\n');
  assert.equal((await kubectl('logs', 'flaky')).stdout, 'run 1\n');
});

test('ConfigMaps and Secrets reach the process as env (keyRef, envFrom) and as files under a mountPath', async () => {
  await core.createNamespacedConfigMap({
    namespace: NS,
    body: { metadata: { name: 'settings' }, data: { mode: 'fast', 'app.conf': 'x=1' } },
  });
  await core.createNamespacedSecret({
    namespace: NS,
    body: { metadata: { name: 'creds' }, data: { token: Buffer.from('s3cret').toString('base64') } },
  });
  await createPod('configured', {
    volumes: [
      { name: 'out', persistentVolumeClaim: { claimName: 'shared' } },
      { name: 'conf', configMap: { name: 'settings' } },
    ],
    containers: [
      nodeContainer(
        `const fs = require('fs'); const m = JSON.parse(process.env.LOCAL_PATHS); fs.writeFileSync(m['/out'] + '/configured.json', JSON.stringify({ mode: process.env.MODE, token: process.env.TOKEN, prefixed: process.env.CFG_mode, file: fs.readFileSync(m['/etc/app'] + '/app.conf', 'utf8') }))`,
        {
          volumeMounts: [
            { name: 'out', mountPath: '/out' },
            { name: 'conf', mountPath: '/etc/app' },
          ],
          envFrom: [{ prefix: 'CFG_', configMapRef: { name: 'settings' } }],
          env: [
            { name: 'MODE', valueFrom: { configMapKeyRef: { name: 'settings', key: 'mode' } } },
            { name: 'TOKEN', valueFrom: { secretKeyRef: { name: 'creds', key: 'token' } } },
          ],
        },
      ),
    ],
  });
  await waitForPod(core, 'configured', phaseIs('Succeeded'), 'phase Succeeded');
  const written = JSON.parse(
    readFileSync(join(dataDir, 'volumes', 'pvc', NS, 'shared', 'configured.json'), 'utf8'),
  );
  assert.deepEqual(written, { mode: 'fast', token: 's3cret', prefixed: 'fast', file: 'x=1' });
});
