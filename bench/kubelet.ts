// The embedded kubelet's overhead: a pod from create to Succeeded against the same process spawned
// directly, a burst of pods, and a Job, measured side by side on one control plane.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BatchV1Api, CoreV1Api, makeInformer, type V1Pod } from '@kubernetes/client-node';
import { startControlPlane } from '../src/cluster/controlPlane.js';

const SCRIPT = 'process.exit(0)';

function spawnOnce(): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', SCRIPT], { stdio: 'ignore' });
    child.once('exit', () => resolve());
    child.once('error', reject);
  });
}

export async function bench(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'btx-bench-kubelet-'));
  const plane = await startControlPlane({ dataDir, podEnv: { BTX_LOG_LEVEL: 'warn' } });
  try {
    const kc = plane.kubeConfig();
    const core = kc.makeApiClient(CoreV1Api);
    const batch = kc.makeApiClient(BatchV1Api);
    const succeeded = new Map<string, () => void>();
    const informer = makeInformer<V1Pod>(kc, '/api/v1/namespaces/default/pods', () =>
      core.listNamespacedPod({ namespace: 'default' }),
    );
    informer.on('update', (p) => {
      if (p.status?.phase === 'Succeeded') succeeded.get(p.metadata?.name ?? '')?.();
    });
    await informer.start();
    const podDone = (name: string) => new Promise<void>((resolve) => succeeded.set(name, resolve));
    const pod = (name: string) =>
      core.createNamespacedPod({
        namespace: 'default',
        body: {
          metadata: { name },
          spec: {
            restartPolicy: 'Never',
            containers: [{ name: 'main', image: 'node', command: [process.execPath, '-e', SCRIPT] }],
          },
        },
      });

    const N = 10;
    let t = performance.now();
    for (let i = 0; i < N; i++) await spawnOnce();
    const spawnMs = (performance.now() - t) / N;
    t = performance.now();
    for (let i = 0; i < N; i++) {
      const done = podDone(`seq-${i}`);
      await pod(`seq-${i}`);
      await done;
    }
    const podMs = (performance.now() - t) / N;
    console.log(`process spawn to exit (node -e):        ${spawnMs.toFixed(0)} ms`);
    console.log(
      `pod create to Succeeded (same process):  ${podMs.toFixed(0)} ms  (${(podMs / spawnMs).toFixed(2)}x, control plane overhead ${(podMs - spawnMs).toFixed(0)} ms)`,
    );

    const B = 20;
    t = performance.now();
    await Promise.all(Array.from({ length: B }, () => spawnOnce()));
    const bareBurstS = (performance.now() - t) / 1000;
    t = performance.now();
    await Promise.all(
      Array.from({ length: B }, async (_, i) => {
        const done = podDone(`burst-${i}`);
        await pod(`burst-${i}`);
        await done;
      }),
    );
    const burstS = (performance.now() - t) / 1000;
    console.log(
      `burst of ${B} bare processes:            ${bareBurstS.toFixed(2)} s  (${(B / bareBurstS).toFixed(1)} processes/s)`,
    );
    console.log(
      `burst of ${B} pods to Succeeded:          ${burstS.toFixed(2)} s  (${(B / burstS).toFixed(1)} pods/s, ${(burstS / bareBurstS).toFixed(2)}x)`,
    );

    // The same work as the Job below, as bare processes: 10 runs, at most 5 at a time.
    t = performance.now();
    await Promise.all(
      Array.from({ length: 5 }, async () => {
        await spawnOnce();
        await spawnOnce();
      }),
    );
    const bareJobS = (performance.now() - t) / 1000;
    t = performance.now();
    await batch.createNamespacedJob({
      namespace: 'default',
      body: {
        metadata: { name: 'bench' },
        spec: {
          completions: 10,
          parallelism: 5,
          template: {
            spec: {
              restartPolicy: 'Never',
              containers: [{ name: 'main', image: 'node', command: [process.execPath, '-e', SCRIPT] }],
            },
          },
        },
      },
    });
    for (;;) {
      const job = await batch.readNamespacedJob({ name: 'bench', namespace: 'default' });
      if (job.status?.conditions?.some((c) => c.type === 'Complete' && c.status === 'True')) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const jobS = (performance.now() - t) / 1000;
    console.log(`10 bare processes, 5 at a time:          ${bareJobS.toFixed(2)} s`);
    console.log(
      `Job completions=10 parallelism=5:        ${jobS.toFixed(2)} s  (${(jobS / bareJobS).toFixed(2)}x)`,
    );
    await informer.stop();
  } finally {
    await plane.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
