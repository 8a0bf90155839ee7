// The process runner on its own (no API server): a PodWorker runs a pod's containers as local processes.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { containerLogPath } from '../../src/cluster/podLogs.js';
import { PodWorker, type PodWorkerConfig } from '../../src/cluster/kubelet/podWorker.js';
import { computePodStatus, nowRfc3339 } from '../../src/cluster/kubelet/podStatus.js';
import { nodeContainer, testPod } from '../support/pods.js';
import { waitFor } from '../support/waitFor.js';

const dataDir = mkdtempSync(join(tmpdir(), 'btx-kubelet-proc-'));
after(() => rmSync(dataDir, { recursive: true, force: true }));

const config: PodWorkerConfig = {
  dataDir,
  nodeName: 'btx-local',
  hostPathPrefixes: [],
  baseEnv: { PATH: process.env.PATH ?? '' },
  // The caller's images: this one runs a tiny "CLI" that prints its args; others are unknown.
  imageCommands: (image) =>
    image === 'registry.example/tools/greeter:2'
      ? [process.execPath, '-e', 'console.log("greeter", process.argv.slice(1).join(" "))']
      : undefined,
  pathMapVariable: 'LOCAL_PATHS',
  restartBackoffBaseMs: 50,
  restartBackoffMaxMs: 200,
  managesGpus: false,
  sources: {
    configMapKey: async () => undefined,
    secretKey: async () => undefined,
    configMapData: async () => undefined,
    secretData: async () => undefined,
  },
};

let n = 0;
function pod(spec: V1Pod['spec']): V1Pod {
  n++;
  return testPod(`p${n}`, spec, { namespace: 'ns', uid: `uid-${n}`, labels: { team: 'a' } });
}

/** The log file of `pod`'s main container, run `restart` (0 the first). */
function mainLog(pod: V1Pod, restart = 0): string {
  const { name = '', uid = '' } = pod.metadata ?? {};
  return readFileSync(containerLogPath(dataDir, 'ns', name, uid, 'main', restart), 'utf8');
}

async function runToEnd(p: V1Pod): Promise<PodWorker> {
  const w = new PodWorker(p, config, [], () => {});
  w.start();
  await w.done();
  return w;
}

test('a container that prints and exits 3 fails with exit code 3, reason Error, its log and termination message', async () => {
  const p = pod({
    restartPolicy: 'Never',
    containers: [
      {
        name: 'main',
        image: 'node',
        command: [process.execPath, '-e'],
        args: [
          `const m = JSON.parse(process.env.LOCAL_PATHS); require('fs').writeFileSync(m['/dev/termination-log'], 'bad input'); console.log('hello ' + process.env.ME); process.exit(3)`,
        ],
        env: [{ name: 'ME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }],
      },
    ],
  });
  const w = await runToEnd(p);
  const status = computePodStatus(p, w.record, nowRfc3339());
  assert.equal(status.phase, 'Failed');
  const term = status.containerStatuses?.[0]?.state?.terminated;
  assert.equal(term?.exitCode, 3);
  assert.equal(term?.reason, 'Error');
  assert.equal(term?.message, 'bad input');
  assert.equal(mainLog(p), `hello ${p.metadata?.name}\n`);
});

test('FallbackToLogsOnError uses the log tail when the message file is empty and the container failed', async () => {
  const p = pod({
    restartPolicy: 'Never',
    containers: [
      nodeContainer('for (let i = 0; i < 100; i++) console.log("line " + i); process.exit(1)', {
        terminationMessagePolicy: 'FallbackToLogsOnError',
      }),
    ],
  });
  const w = await runToEnd(p);
  const term = w.record.containers[0]?.state;
  assert.equal(term?.kind, 'terminated');
  const message = term?.kind === 'terminated' ? (term.message ?? '') : '';
  assert.match(message, /line 99\n$/);
  assert.doesNotMatch(message, /line 5\n/);
  assert.ok(message.split('\n').length <= 81);
});

test('a PVC mount reaches the process through the path map variable and lands under the data dir', async () => {
  const p = pod({
    restartPolicy: 'Never',
    volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'shared' } }],
    containers: [
      nodeContainer(
        `const m = JSON.parse(process.env.LOCAL_PATHS); require('fs').writeFileSync(m['/btx'] + '/out.txt', 'written')`,
        { volumeMounts: [{ name: 'data', mountPath: '/btx' }] },
      ),
    ],
  });
  const w = await runToEnd(p);
  assert.equal(w.record.containers[0]?.state.kind, 'terminated');
  assert.equal(readFileSync(join(dataDir, 'volumes', 'pvc', 'ns', 'shared', 'out.txt'), 'utf8'), 'written');
});

test("OnFailure restarts a failing container with back-off until it succeeds, keeping each run's log", async () => {
  const marker = join(dataDir, 'attempts');
  const p = pod({
    restartPolicy: 'OnFailure',
    containers: [
      nodeContainer(
        `const fs = require('fs'); const n = fs.existsSync('${marker}') ? Number(fs.readFileSync('${marker}', 'utf8')) : 0; fs.writeFileSync('${marker}', String(n + 1)); console.log('attempt ' + n); process.exit(n < 2 ? 1 : 0)`,
      ),
    ],
  });
  const w = await runToEnd(p);
  const c = w.record.containers[0];
  assert.equal(c?.restartCount, 2);
  assert.equal(c?.state.kind === 'terminated' && c.state.exitCode, 0);
  assert.equal(c?.lastTerminated?.exitCode, 1);
  const logs = [0, 1, 2].map((i) => mainLog(p, i));
  assert.deepEqual(logs, ['attempt 0\n', 'attempt 1\n', 'attempt 2\n']);
});

test("an image without a command runs what the caller's image command map says, with the args; other images wait with ErrImagePull", async () => {
  const p = pod({
    restartPolicy: 'Never',
    containers: [{ name: 'main', image: 'registry.example/tools/greeter:2', args: ['hello', 'world'] }],
  });
  const w = await runToEnd(p);
  assert.equal(
    w.record.containers[0]?.state.kind === 'terminated' && w.record.containers[0].state.exitCode,
    0,
  );
  assert.equal(mainLog(p), 'greeter hello world\n');

  // The project's own image means nothing to a kubelet that was not told about it.
  const other = pod({
    restartPolicy: 'Never',
    containers: [{ name: 'main', image: 'ghcr.io/btx-ai/btx-trainer:0.1.0' }],
  });
  const ow = new PodWorker(other, config, [], () => {});
  ow.start();
  await new Promise((r) => setTimeout(r, 50));
  const state = ow.record.containers[0]?.state;
  assert.equal(state?.kind === 'waiting' && state.reason, 'ErrImagePull');
  await ow.terminate(1);
});

test('terminate sends SIGTERM to the process group and SIGKILL after the grace period; init containers run first', async () => {
  const grandchild = join(dataDir, 'grandchild.pid');
  const p = pod({
    restartPolicy: 'Always',
    initContainers: [nodeContainer('console.log("init")', { name: 'init' })],
    containers: [
      // SIGTERM is ignored before the pid file says "ready" (else a loaded machine can deliver it first).
      nodeContainer(
        `process.on('SIGTERM', () => {}); const c = require('child_process').spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' }); require('fs').writeFileSync('${grandchild}', String(c.pid)); setInterval(() => {}, 1000)`,
      ),
    ],
  });
  const w = new PodWorker(p, config, [], () => {});
  w.start();
  await waitFor('the container to start its grandchild', () => existsSync(grandchild), 10_000, 20);
  assert.equal(
    w.record.initContainers[0]?.state.kind === 'terminated' && w.record.initContainers[0].state.exitCode,
    0,
  );
  await w.terminate(0.3);
  const main = w.record.containers[0]?.state;
  // It ignored SIGTERM, so SIGKILL ended it: 128 + 9.
  assert.equal(main?.kind === 'terminated' && main.exitCode, 137);
  const pid = Number(readFileSync(grandchild, 'utf8'));
  assert.throws(() => process.kill(pid, 0), /ESRCH/);
});

test('a sidecar (init container with restartPolicy Always) runs beside the container and is stopped when it is done', async () => {
  const beat = join(dataDir, 'sidecar.beat');
  const p = pod({
    restartPolicy: 'Never',
    terminationGracePeriodSeconds: 2,
    initContainers: [
      nodeContainer(`require('fs').writeFileSync('${beat}', 'up'); setInterval(() => {}, 1000)`, {
        name: 'sidecar',
        restartPolicy: 'Always',
      }),
    ],
    containers: [
      nodeContainer(
        `const fs = require('fs'); const t = setInterval(() => { if (fs.existsSync('${beat}')) { clearInterval(t); console.log('saw sidecar'); } }, 20)`,
      ),
    ],
  });
  const w = await runToEnd(p);
  const status = computePodStatus(p, w.record, nowRfc3339());
  assert.equal(status.phase, 'Succeeded');
  const sidecar = status.initContainerStatuses?.[0]?.state?.terminated;
  assert.ok(sidecar, 'the sidecar was stopped');
  assert.equal(sidecar?.exitCode, 143, 'by SIGTERM');
  assert.equal(mainLog(p), 'saw sidecar\n');
});
