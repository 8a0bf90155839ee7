// The kubelet and the Job controller survive their API server going away and coming back (same port,
// same data dir): informers restart, the work queue retries, and new pods and Jobs run afterwards.
import { test } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { startTestApiServer } from '../support/controlPlane.js';
import { nodeContainer, testPod, waitForPod } from '../support/pods.js';
import { waitFor } from '../support/waitFor.js';

test('after an API server restart the kubelet and the Job controller carry on', async () => {
  const t = await startTestApiServer(
    { persist: true },
    { name: 'resilience', nodeAgents: { stopGraceSeconds: 1, jobBackoffBaseMs: 100 } },
  );
  try {
    const { core, batch } = t;
    const podBody = (name: string): V1Pod => testPod(name, { containers: [nodeContainer('0')] });
    // The server may be down for a moment: waitForPod reads again when a read throws.
    const succeeded = (name: string) =>
      waitForPod(core, name, (p) => p.status?.phase === 'Succeeded', 'phase Succeeded', 30_000);

    await core.createNamespacedPod({ namespace: 'default', body: podBody('before') });
    await succeeded('before');

    await t.restartApiServer(1500); // watches fail, restarts are refused meanwhile

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
    await t.stop();
  }
});
