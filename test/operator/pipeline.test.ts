// The whole pipeline on the embedded control plane with the REAL trainer at tiny size: tokenize -> seed ->
// three experts -> mix -> finetune -> eval. Midway one expert's process is killed (only it restarts,
// at attempt 2, resuming from its checkpoint) and the operator itself is replaced by a new one; the
// run still finishes with no duplicate pods or Jobs, and `kubectl wait` sees it succeed. Then a
// domain is appended to the finished run: round 2 trains that one expert and mixes all four again.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { startOperator, type RunningOperator } from '../../src/operator/operator.js';
import { kubectlPath, repoRoot } from '../support/tools.js';
import { createRun, podsOf, startCluster, waitForRun, type TestCluster } from './cluster.js';
import { waitFor } from '../support/waitFor.js';

const exec = promisify(execFile);
let c: TestCluster;
let op: RunningOperator | undefined;

before(async () => {
  c = await startCluster();
  const volume = join(c.dataDir, 'volumes', 'pvc', 'default', 'btx-data', 'data');
  mkdirSync(volume, { recursive: true });
  cpSync(join(repoRoot, 'data', 'samples'), volume, { recursive: true });
  op = await startOperator({ kubeConfig: c.kc, workers: 2 });
});

after(async () => {
  await op?.stop();
  await c?.stop();
});

const EXPERT_STEPS = 120;

test('the whole pipeline completes through an expert kill and an operator restart, with no duplicates', async () => {
  await createRun(c, 'tiny', {
    storage: { persistentVolumeClaim: { claimName: 'btx-data' } },
    model: { dModel: 16, layers: 1, heads: 2, ffnHidden: 32, seqLen: 16 },
    seed: { train: { data: '/btx/data', steps: 4, batchSize: 2 } },
    domains: [
      { name: 'math', data: '/btx/data/math' },
      { name: 'code', data: '/btx/data/code' },
      { name: 'prose', data: '/btx/data/prose' },
    ],
    expert: { steps: EXPERT_STEPS, batchSize: 2, checkpointEvery: 4, maxRestarts: 2, backoffSeconds: 0 },
    mix: { includeSeedAsExpert: true, router: { type: 'topK', k: 2 } },
    finetune: { steps: 4, batchSize: 2, checkpointEvery: 2 },
    eval: { batches: 1 },
  });

  // Kill the code expert once its pod reports a checkpoint (the annotation; status writes are throttled).
  const checkpointStep = await waitFor(
    'the code expert to report a checkpoint',
    async () => {
      const pod = (await podsOf(c, 'tiny')).find((p) => p.metadata?.name === 'tiny-expert-code-1');
      const progress = JSON.parse(pod?.metadata?.annotations?.['btx.ai/progress'] ?? '{}') as {
        checkpoint?: string;
      };
      const step = Number(/step-(\d+)$/.exec(progress.checkpoint ?? '')?.[1] ?? 0);
      return pod?.status?.phase === 'Running' && step > 0 ? step : undefined;
    },
    180_000,
  );
  const before = await podsOf(c, 'tiny');
  const uidOf = (pods: typeof before, name: string) =>
    pods.find((p) => p.metadata?.name === name)?.metadata?.uid;
  await c.plane.kubelet.killPod('default', 'tiny-expert-code-1', 'SIGKILL');
  const restarted = await waitForRun(
    c,
    'tiny',
    (r) => r.status?.experts?.find((e) => e.name === 'code')?.attempt === 2,
    'code at attempt 2',
  );
  const code = restarted.status?.experts?.find((e) => e.name === 'code');
  assert.equal(code?.restarts, 1);
  assert.equal(code?.lastFailure?.exitCode, 137);

  // Replace the operator while the experts train.
  await op?.stop();
  op = await startOperator({ kubeConfig: c.kc, workers: 2 });

  // Attempt 2 resumes after the checkpoint: its first reported step is past it, never back at 0.
  const resumed = await waitForRun(
    c,
    'tiny',
    (r) => {
      const e = r.status?.experts?.find((x) => x.name === 'code');
      return e?.attempt === 2 && e.pod === 'tiny-expert-code-2' && (e.step ?? 0) > 0;
    },
    'attempt 2 reporting progress',
    180_000,
  );
  const step2 = resumed.status?.experts?.find((x) => x.name === 'code')?.step ?? 0;
  assert.ok(step2 >= checkpointStep, `attempt 2 at step ${step2}, checkpoint was step-${checkpointStep}`);
  const during = await podsOf(c, 'tiny');
  for (const name of ['tiny-expert-math-1', 'tiny-expert-prose-1']) {
    if (uidOf(before, name)) assert.equal(uidOf(during, name), uidOf(before, name), `${name} untouched`);
  }

  const done = await waitForRun(
    c,
    'tiny',
    (r) => r.status?.phase === 'Succeeded' || r.status?.phase === 'Failed',
    'the end',
    240_000,
  );
  assert.equal(done.status?.phase, 'Succeeded', JSON.stringify(done.status?.conditions));
  for (const stage of ['tokenize', 'seed', 'mix', 'finetune', 'eval'] as const)
    assert.equal(done.status?.[stage]?.phase, 'Succeeded', stage);
  // Every domain and the seed's data tokenized once, with their counts from the tokenize pods.
  const tokenized = done.status?.tokenize?.domains ?? [];
  assert.deepEqual(
    tokenized.map((d) => d.name),
    ['math', 'code', 'prose', '_seed'],
  );
  for (const d of tokenized) {
    assert.ok((d.tokens ?? 0) > (d.heldOutTokens ?? 0) && (d.heldOutTokens ?? 0) > 0, JSON.stringify(d));
    assert.ok((d.documents ?? 0) > 0 && (d.bytes ?? 0) > 0, JSON.stringify(d));
  }
  assert.equal(done.status?.expertsReady, '3/3');
  assert.ok(done.status?.experts?.every((e) => e.checkpoint?.includes('/step-')));
  assert.ok(
    (done.status?.results ?? []).some((r) => r.model === 'btx'),
    'results for the BTX model',
  );
  assert.ok((done.status?.routing ?? []).length > 0, 'routing shares');
  for (const type of ['Tokenized', 'ExpertsReady', 'Mixed', 'Finetuned', 'Evaluated', 'Succeeded']) {
    assert.equal(done.status?.conditions?.find((x) => x.type === type)?.status, 'True', type);
  }

  // No duplicates: one pod per expert attempt, one Job per stage.
  const pods = (await podsOf(c, 'tiny')).filter((p) => p.metadata?.labels?.['btx.ai/stage'] === 'expert');
  const names = pods.map((p) => p.metadata?.name).sort();
  assert.deepEqual(names, [
    'tiny-expert-code-1',
    'tiny-expert-code-2',
    'tiny-expert-math-1',
    'tiny-expert-prose-1',
  ]);
  const jobs = await c.batch.listNamespacedJob({ namespace: 'default', labelSelector: 'btx.ai/run=tiny' });
  assert.deepEqual(jobs.items.map((j) => j.metadata?.name).sort(), [
    'tiny-eval',
    'tiny-finetune',
    'tiny-mix',
    'tiny-seed',
    'tiny-seed-tokenize-1',
    'tiny-tokenize-code-1',
    'tiny-tokenize-math-1',
    'tiny-tokenize-prose-1',
  ]);

  const kubectl = (...args: string[]) =>
    exec(kubectlPath(), ['--kubeconfig', c.plane.kubeconfigPath, ...args], { timeout: 30_000 });
  const waited = await kubectl('wait', '--for=condition=Succeeded', 'btx/tiny', '--timeout=20s');
  assert.match(waited.stdout, /btxrun.btx.ai\/tiny condition met/);
  const table = await kubectl('get', 'btx');
  assert.match(table.stdout, /tiny\s+Succeeded\s+3\/3\s+1\s/);
});

// Continues from the run the test above finished: the real trainer mixes round 1's experts with one
// new expert (a few steps, on the math corpus under a new name) and evaluates it.
test('appending a domain to the finished run trains exactly one new expert pod, then mixes, finetunes and evaluates all four as round 2', async () => {
  const before = await podsOf(c, 'tiny');
  await c.kubectl([
    'patch',
    'btxrun',
    'tiny',
    '--type=json',
    '-p',
    JSON.stringify([
      { op: 'add', path: '/spec/domains/-', value: { name: 'algebra', data: '/btx/data/math', steps: 4 } },
    ]),
  ]);
  const done = await waitForRun(
    c,
    'tiny',
    (r) => r.status?.round === 2 && (r.status.phase === 'Succeeded' || r.status.phase === 'Failed'),
    'round 2 to end',
    240_000,
  );
  assert.equal(done.status?.phase, 'Succeeded', JSON.stringify(done.status?.conditions));
  assert.equal(done.status?.expertsReady, '4/4');
  assert.deepEqual(
    done.status?.rounds?.map((r) => [r.round, r.domains]),
    [[1, ['math', 'code', 'prose']]],
  );
  assert.ok((done.status?.rounds?.[0]?.results ?? []).length > 0, 'round 1 results kept');
  assert.ok(
    (done.status?.results ?? []).some((r) => r.model === 'algebra'),
    "round 2's eval includes the new expert",
  );
  assert.match(done.status?.finetune?.checkpoint ?? '', /\/runs\/default\/tiny\/rounds\/2\/finetuned\//);
  const expertPods = (pods: typeof before) =>
    pods.filter((p) => p.metadata?.labels?.['btx.ai/stage'] === 'expert').map((p) => p.metadata?.name);
  assert.deepEqual(
    expertPods(await podsOf(c, 'tiny')).sort(),
    [...expertPods(before), 'tiny-expert-algebra-1'].sort(),
    'one new expert pod and no other',
  );
  const jobs = await c.batch.listNamespacedJob({ namespace: 'default', labelSelector: 'btx.ai/run=tiny' });
  assert.deepEqual(jobs.items.map((j) => j.metadata?.name).sort(), [
    'tiny-eval',
    'tiny-eval-r2',
    'tiny-finetune',
    'tiny-finetune-r2',
    'tiny-mix',
    'tiny-mix-r2',
    'tiny-seed',
    'tiny-seed-tokenize-1',
    'tiny-tokenize-algebra-1',
    'tiny-tokenize-code-1',
    'tiny-tokenize-math-1',
    'tiny-tokenize-prose-1',
  ]);
  // Only the new domain was tokenized, into the folder the others' shards are in.
  const algebra = done.status?.tokenize?.domains?.find((d) => d.name === 'algebra');
  assert.equal(algebra?.phase, 'Succeeded');
  assert.ok((algebra?.tokens ?? 0) > 0, JSON.stringify(algebra));
});
