// The kubelet and the Job controller survive their API server going away and coming back (same port,
// same data dir): informers restart, the work queue retries, and new pods and Jobs run afterwards.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { BatchV1Api, CoreV1Api, KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { startApiServer } from '../../src/cluster/apiserver/server.js';
import { kubeconfigYaml } from '../../src/cluster/apiserver/kubeconfig.js';
import { JobController } from '../../src/cluster/jobs/jobController.js';
import { Kubelet } from '../../src/cluster/kubelet/kubelet.js';
import { testPod } from '../support/pods.js';
import { waitFor } from '../support/waitFor.js';

test('after an API server restart the kubelet and the Job controller carry on', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'btx-resilience-'));
  const token = 'resilience-token';
  let server = await startApiServer({ port: 0, token, dataDir });
  const kc = new KubeConfig();
  kc.loadFromString(kubeconfigYaml(server.url, token, 'btx-local', server.caCert));
  const kubelet = new Kubelet({
    kubeConfig: kc,
    dataDir,
    capacity: { cpu: 2, memory: 2 ** 32, gpus: 0 },
    podKubeconfigPath: join(dataDir, 'kubeconfig'),
    apiUrl: server.url,
    stopGraceSeconds: 1,
  });
  const jobs = new JobController({ kubeConfig: kc, backoffBaseMs: 100 });
  try {
    await kubelet.start();
    await jobs.start();
    const core = kc.makeApiClient(CoreV1Api);
    const batch = kc.makeApiClient(BatchV1Api);
    const podBody = (name: string): V1Pod =>
      testPod(name, {
        containers: [{ name: 'main', image: 'node', command: [process.execPath, '-e', '0'] }],
      });
    // The server may be down for a moment: waitFor asks again when a probe throws.
    const succeeded = (name: string) =>
      waitFor(
        `pod ${name} Succeeded`,
        async () => {
          const p = await core.readNamespacedPod({ name, namespace: 'default' });
          return p.status?.phase === 'Succeeded' ? p : undefined;
        },
        30_000,
      );

    await core.createNamespacedPod({ namespace: 'default', body: podBody('before') });
    await succeeded('before');

    const port = server.port;
    await server.stop();
    await new Promise((r) => setTimeout(r, 1500)); // watches fail, restarts are refused meanwhile
    server = await startApiServer({ port, token, dataDir });

    await core.createNamespacedPod({ namespace: 'default', body: podBody('after') });
    await succeeded('after');
    await batch.createNamespacedJob({
      namespace: 'default',
      body: {
        metadata: { name: 'after' },
        spec: { template: { spec: podBody('x').spec } },
      },
    });
    await waitFor(
      'Job after Complete',
      async () => {
        const j = await batch.readNamespacedJob({ name: 'after', namespace: 'default' });
        return j.status?.conditions?.some((c) => c.type === 'Complete' && c.status === 'True')
          ? j
          : undefined;
      },
      30_000,
    );
  } finally {
    await jobs.stop();
    await kubelet.stop();
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
