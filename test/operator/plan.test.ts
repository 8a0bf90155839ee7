import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Pod } from '@kubernetes/client-node';
import { at, env, eventReasons, kinds, makeRun, World } from './fixtures.js';
import type { Action } from '../../src/operator/plan.js';
import type { Condition } from '../../src/api/types.js';

const cond = (w: World, type: string): Condition | undefined =>
  w.run.status?.conditions?.find((c) => c.type === type);
const expert = (w: World, name: string) => w.run.status?.experts?.find((e) => e.name === name);
const createdPods = (actions: Action[]) =>
  actions.flatMap((a) => (a.kind === 'createPod' ? [a.pod.metadata?.name] : []));

test('once tokenized, a run with seed.train starts the seed Job only, phase Seeding', () => {
  const w = new World(makeRun());
  w.throughTokenize();
  const p = w.step();
  assert.deepEqual(
    p.actions
      .filter((a) => a.kind !== 'event')
      .map((a) => (a.kind === 'createJob' ? a.job.metadata?.name : a.kind)),
    ['demo-seed'],
  );
  assert.equal(p.status.phase, 'Seeding');
  assert.equal(p.status.expertsReady, '0/3');
  const job = w.job('demo-seed');
  assert.equal(env(job).BTX_STAGE, 'seed');
  assert.equal(env(job).BTX_OUTPUT, '/btx/runs/ml/demo/seed');
  assert.deepEqual(JSON.parse(env(job).BTX_MODEL_CONFIG ?? '{}').dModel, 16);
  assert.equal(job.spec?.backoffLimit, 2);
  assert.equal(job.metadata?.ownerReferences?.[0]?.controller, true);
  // Same world, again: nothing new (deterministic names; the Job exists).
  assert.equal(kinds(w.step(), 'createJob').length, 0);
});

test('the seed finishing starts one expert pod per domain from the seed checkpoint, following the stage contract', () => {
  const w = new World(makeRun({ podLabels: { 'kueue.x-k8s.io/queue-name': 'gpus' } }));
  w.throughTokenize();
  w.step();
  w.completeJob('demo-seed', { checkpoint: '/btx/runs/ml/demo/seed/step-4' });
  const p = w.step();
  assert.deepEqual(createdPods(p.actions), [
    'demo-expert-code-1',
    'demo-expert-math-1',
    'demo-expert-prose-1',
  ]);
  assert.equal(p.status.phase, 'TrainingExperts');
  assert.equal(p.status.seed?.phase, 'Succeeded');
  const pod = w.pod('demo-expert-math-1');
  const e = env(pod);
  assert.equal(e.BTX_STAGE, 'expert');
  assert.equal(e.BTX_DOMAIN, 'math');
  assert.equal(e.BTX_INPUT, '/btx/runs/ml/demo/seed/step-4');
  assert.equal(e.BTX_OUTPUT, '/btx/runs/ml/demo/experts/math');
  assert.equal(e.BTX_ATTEMPT, '1');
  assert.equal(e.BTX_STEPS, '6');
  const downward = pod.spec?.containers[0]?.env?.find((x) => x.name === 'BTX_POD_NAME');
  assert.equal(downward?.valueFrom?.fieldRef?.fieldPath, 'metadata.name');
  assert.equal(pod.spec?.restartPolicy, 'Never');
  assert.equal(pod.spec?.containers[0]?.terminationMessagePolicy, 'FallbackToLogsOnError');
  assert.deepEqual(pod.spec?.volumes?.[0]?.persistentVolumeClaim, { claimName: 'btx-data' });
  assert.equal(pod.spec?.containers[0]?.volumeMounts?.[0]?.mountPath, '/btx');
  assert.equal(pod.metadata?.labels?.['kueue.x-k8s.io/queue-name'], 'gpus');
  assert.equal(pod.metadata?.labels?.['btx.ai/expert'], 'math');
  assert.equal(pod.metadata?.labels?.['btx.ai/attempt'], '1');
  assert.equal(pod.metadata?.labels?.['app.kubernetes.io/managed-by'], 'btx-operator');
  assert.deepEqual(pod.metadata?.ownerReferences?.[0], {
    apiVersion: 'btx.ai/v1alpha1',
    kind: 'BTXRun',
    name: 'demo',
    uid: 'uid-1',
    controller: true,
    blockOwnerDeletion: true,
  });
});

test('a run with a seed checkpoint skips the seed stage', () => {
  const w = new World(makeRun({ seed: { checkpoint: '/btx/models/llama' } }));
  w.throughTokenize();
  const p = w.step();
  assert.equal(createdPods(p.actions).length, 3);
  assert.equal(env(w.pod('demo-expert-code-1')).BTX_INPUT, '/btx/models/llama');
  assert.equal(p.status.seed, undefined);
});

test('progress annotations land in experts[] (step, totalSteps, loss, checkpoint)', () => {
  const w = new World(makeRun({ seed: { checkpoint: '/btx/s' } }));
  w.throughTokenize();
  w.step();
  const progress = {
    step: 3,
    totalSteps: 6,
    loss: 4.25,
    tokensPerSecond: 10,
    checkpoint: '/btx/runs/ml/demo/experts/code/step-2',
    time: 'x',
  };
  w.setPod('demo-expert-code-1', {
    phase: 'Running',
    annotations: { 'btx.ai/progress': JSON.stringify(progress) },
  });
  w.setPod('demo-expert-math-1', { phase: 'Running', annotations: { 'btx.ai/progress': 'not json' } });
  const p = w.step();
  assert.deepEqual(
    { ...expert(w, 'code'), startTime: undefined },
    {
      name: 'code',
      phase: 'Running',
      attempt: 1,
      restarts: 0,
      pod: 'demo-expert-code-1',
      step: 3,
      totalSteps: 6,
      loss: 4.25,
      checkpoint: progress.checkpoint,
      startTime: undefined,
    },
  );
  assert.equal(expert(w, 'math')?.step, undefined);
  assert.equal(kinds(p, 'createPod').length, 0);
});

test('the whole pipeline: experts -> mix -> finetune -> eval -> Succeeded, with results and routing', () => {
  const w = new World(makeRun());
  w.throughExperts();
  assert.equal(w.run.status?.phase, 'Mixing');
  assert.equal(cond(w, 'ExpertsReady')?.status, 'True');
  assert.equal(cond(w, 'ExpertsReady')?.reason, 'AllExpertsSucceeded');
  const mix = env(w.job('demo-mix'));
  assert.equal(
    mix.BTX_EXPERTS,
    ['code', 'math', 'prose'].map((d) => `/btx/runs/ml/demo/experts/${d}/step-6`).join(','),
  );
  assert.equal(mix.BTX_ROUTER, 'topK');
  assert.equal(mix.BTX_TOP_K, '2');
  assert.equal(mix.BTX_GENERALIST, undefined);
  w.completeJob('demo-mix', { checkpoint: '/btx/runs/ml/demo/mixed' });
  w.step();
  assert.equal(w.run.status?.phase, 'Finetuning');
  const ft = env(w.job('demo-finetune'));
  assert.equal(ft.BTX_INPUT, '/btx/runs/ml/demo/mixed');
  assert.equal(ft.BTX_DATA, 'code=/btx/data/code.txt,math=/btx/data/math.txt,prose=/btx/data/prose.txt');
  w.completeJob('demo-finetune', { checkpoint: '/btx/runs/ml/demo/finetuned/step-2' });
  w.step();
  assert.equal(w.run.status?.phase, 'Evaluating');
  const ev = env(w.job('demo-eval'));
  assert.match(
    ev.BTX_CHECKPOINTS ?? '',
    /^btx=\/btx\/runs\/ml\/demo\/finetuned\/step-2,seed=\/btx\/runs\/ml\/demo\/seed\/step-4,code=/,
  );
  const results = [{ model: 'btx', domain: 'code', loss: 1.5, perplexity: 4.48 }];
  const routing = [{ domain: 'code', expert: 'code', share: 0.9 }];
  w.completeJob('demo-eval', { results, routing });
  const p = w.step(at(200));
  assert.equal(p.status.phase, 'Succeeded');
  assert.deepEqual(p.status.results, results);
  assert.deepEqual(p.status.routing, routing);
  for (const type of ['ExpertsReady', 'Mixed', 'Finetuned', 'Evaluated', 'Succeeded'])
    assert.equal(cond(w, type)?.status, 'True', type);
  assert.equal(cond(w, 'Failed'), undefined);
  assert.ok(p.status.completionTime);
  assert.ok(eventReasons(p).includes('RunSucceeded'));
  assert.equal(p.status.mix?.checkpoint, '/btx/runs/ml/demo/mixed');
  // A terminal run stays terminal even when every child vanishes.
  w.pods.clear();
  w.jobs.clear();
  const again = w.step(at(300));
  assert.equal(again.status.phase, 'Succeeded');
  assert.deepEqual(again.actions, []);
  assert.deepEqual(again.status, p.status);
});

function running(): World {
  const w = new World(makeRun({ seed: { checkpoint: '/btx/s' } }));
  w.throughTokenize();
  w.step();
  for (const d of ['code', 'math', 'prose']) w.setPod(`demo-expert-${d}-1`, { phase: 'Running' });
  w.step();
  return w;
}

const disruptions: [string, Parameters<World['setPod']>[1], string][] = [
  [
    'eviction (DisruptionTarget)',
    {
      phase: 'Failed',
      exitCode: 137,
      condition: { type: 'DisruptionTarget', reason: 'EvictionByEvictionAPI' },
    },
    'Evicted',
  ],
  [
    'preemption',
    {
      phase: 'Failed',
      exitCode: 137,
      condition: { type: 'DisruptionTarget', reason: 'PreemptionByScheduler' },
    },
    'Preempted',
  ],
  ['pod reason Evicted', { phase: 'Failed', reason: 'Evicted' }, 'Evicted'],
  ['node loss', { phase: 'Failed', reason: 'NodeLost' }, 'NodeLost'],
  ['node shutdown', { phase: 'Failed', reason: 'Shutdown', exitCode: 143 }, 'NodeLost'],
];
for (const [what, patch, reason] of disruptions) {
  test(`${what} restarts the expert at attempt 2 without spending budget, touching no other expert`, () => {
    const w = running();
    const others = ['demo-expert-math-1', 'demo-expert-prose-1'].map((n) => structuredClone(w.pod(n)));
    w.setPod('demo-expert-code-1', patch);
    const p = w.step(at(101));
    assert.deepEqual(createdPods(p.actions), ['demo-expert-code-2']);
    assert.equal(kinds(p, 'deletePod').length, 0, 'the failed pod stays for kubectl logs; others untouched');
    const e = expert(w, 'code');
    assert.equal(e?.attempt, 2);
    assert.equal(e?.restarts, 0);
    assert.equal(e?.totalRestarts, 1);
    assert.equal(e?.lastFailure?.reason, reason);
    assert.equal(e?.lastFailure?.countsAgainstBudget, false);
    assert.equal(env(w.pod('demo-expert-code-2')).BTX_ATTEMPT, '2');
    assert.equal(env(w.pod('demo-expert-code-2')).BTX_OUTPUT, '/btx/runs/ml/demo/experts/code');
    assert.deepEqual(
      ['demo-expert-math-1', 'demo-expert-prose-1'].map((n) => w.pod(n)),
      others,
    );
    assert.equal(p.status.restarts, 0, 'the Restarts column counts budget');
    assert.equal(cond(w, 'Restarting')?.status, 'True', 'Restarting until the new pod runs');
  });
}

test('a pod that vanishes (deleted by someone, node gone) restarts without budget', () => {
  const w = running();
  w.pods.delete('demo-expert-math-1');
  const p = w.step(at(5));
  assert.deepEqual(createdPods(p.actions), ['demo-expert-math-2']);
  assert.equal(expert(w, 'math')?.lastFailure?.reason, 'PodDeleted');
  assert.equal(expert(w, 'math')?.restarts, 0);
});

test('an ordinary crash spends budget and waits backoffSeconds * 2^(restarts-1) before the next attempt', () => {
  const w = running();
  w.setPod('demo-expert-code-1', { phase: 'Failed', exitCode: 1, message: 'loading\nError: boom' });
  let p = w.step(at(101));
  const e = expert(w, 'code');
  assert.equal(e?.restarts, 1);
  assert.equal(e?.attempt, 2);
  assert.equal(e?.phase, 'Restarting');
  assert.equal(e?.lastFailure?.exitCode, 1);
  assert.match(e?.lastFailure?.message ?? '', /exited with code 1: Error: boom/);
  assert.equal(e?.nextAttemptTime, at(110).toISOString()); // finishedAt (100) + 10 s
  assert.equal(createdPods(p.actions).length, 0);
  assert.equal(p.requeueAfterMs, 9000);
  p = w.step(at(110));
  assert.deepEqual(createdPods(p.actions), ['demo-expert-code-2']);
  w.setPod('demo-expert-code-2', { phase: 'Failed', exitCode: 1 });
  p = w.step(at(111));
  assert.equal(expert(w, 'code')?.nextAttemptTime, at(120).toISOString()); // 10 * 2^1 after finishedAt 100
  assert.equal(expert(w, 'code')?.restarts, 2);
});

test('exhausting maxRestarts fails the run with a reason naming the expert, and stops the other experts', () => {
  const w = running();
  for (let attempt = 1; attempt <= 3; attempt++) {
    w.setPod(`demo-expert-code-${attempt}`, { phase: 'Failed', exitCode: 1 });
    w.step(at(1000 * attempt));
    if (attempt < 3) w.step(at(1000 * attempt + 500)); // after the backoff: the next attempt is created
  }
  const p = w.last!;
  assert.equal(p.status.phase, 'Failed');
  const failed = cond(w, 'Failed');
  assert.equal(failed?.reason, 'ExpertFailed');
  assert.match(failed?.message ?? '', /expert code failed for good after 2 restarts/);
  assert.equal(expert(w, 'code')?.phase, 'Failed');
  assert.equal(
    expert(w, 'math')?.phase,
    'Stopped',
    'a healthy expert stopped with the run is not shown Running',
  );
  assert.equal(expert(w, 'prose')?.phase, 'Stopped');
  assert.deepEqual(
    kinds(p, 'deletePod').map((a) => (a.kind === 'deletePod' ? a.name : '')),
    ['demo-expert-math-1', 'demo-expert-prose-1'],
  );
  assert.equal(kinds(p, 'createPod').length, 0);
  assert.ok(w.pods.has('demo-expert-code-3'), 'failed pods are kept for kubectl logs');
});

test('an exit code in a FailExpert rule fails the expert at once; Ignore rules restart without budget', () => {
  const rules = [
    { action: 'FailExpert' as const, onExitCodes: [42] },
    { action: 'Ignore' as const, onExitCodes: [75] },
  ];
  const w = new World(makeRun({ seed: { checkpoint: '/btx/s' }, failurePolicy: { rules, minExperts: 2 } }));
  w.throughTokenize();
  w.step();
  w.setPod('demo-expert-math-1', { phase: 'Failed', exitCode: 75 });
  let p = w.step(at(101));
  assert.deepEqual(createdPods(p.actions), ['demo-expert-math-2']);
  assert.equal(expert(w, 'math')?.restarts, 0);
  assert.equal(expert(w, 'math')?.lastFailure?.reason, 'IgnoredByRule');
  w.setPod('demo-expert-code-1', { phase: 'Failed', exitCode: 42 });
  p = w.step(at(102));
  assert.equal(expert(w, 'code')?.phase, 'Failed');
  assert.equal(expert(w, 'code')?.attempt, 1);
  assert.equal(expert(w, 'code')?.lastFailure?.reason, 'FailedByRule');
  assert.equal(p.status.phase, 'TrainingExperts', 'minExperts 2 of 3: the others go on');
  assert.ok(eventReasons(p).includes('ExpertFailed'));
});

test('with minExperts, the mix goes on with the experts that succeeded and says which were dropped', () => {
  const w = new World(
    makeRun({
      seed: { checkpoint: '/btx/s' },
      failurePolicy: { minExperts: 2, rules: [{ action: 'FailExpert', onExitCodes: [3] }] },
    }),
  );
  w.throughTokenize();
  w.step();
  w.setPod('demo-expert-math-1', { phase: 'Failed', exitCode: 3 });
  for (const d of ['code', 'prose'])
    w.setPod(`demo-expert-${d}-1`, {
      phase: 'Succeeded',
      exitCode: 0,
      message: JSON.stringify({ checkpoint: `/ck/${d}` }),
    });
  const p = w.step(at(101));
  assert.equal(p.status.phase, 'Mixing');
  assert.equal(cond(w, 'ExpertsReady')?.reason, 'MinExpertsSucceeded');
  assert.match(cond(w, 'ExpertsReady')?.message ?? '', /2\/3 experts succeeded.*without math/);
  assert.ok(eventReasons(p).includes('ExpertsDropped'));
  assert.equal(env(w.job('demo-mix')).BTX_EXPERTS, '/ck/code,/ck/prose');
  assert.equal(p.status.expertsReady, '2/3');
});

test('suspend stops running stage pods, keeps progress, and resuming starts attempt 2 without spending budget', () => {
  const w = running();
  w.setPod('demo-expert-code-1', {
    phase: 'Running',
    annotations: { 'btx.ai/progress': JSON.stringify({ step: 4, totalSteps: 6, loss: 3 }) },
  });
  w.step(at(2));
  w.run = {
    ...w.run,
    spec: { ...w.run.spec, suspend: true },
    metadata: { ...w.run.metadata, generation: 2 },
  };
  let p = w.step(at(3));
  assert.equal(p.status.phase, 'Suspended');
  assert.equal(cond(w, 'Suspended')?.status, 'True');
  assert.equal(kinds(p, 'deletePod').length, 3);
  assert.equal(kinds(p, 'createPod').length, 0);
  assert.equal(expert(w, 'code')?.step, 4);
  p = w.step(at(4));
  assert.equal(kinds(p, 'deletePod').length + kinds(p, 'createPod').length, 0, 'suspended and stable');
  w.run = {
    ...w.run,
    spec: { ...w.run.spec, suspend: false },
    metadata: { ...w.run.metadata, generation: 3 },
  };
  p = w.step(at(5));
  assert.deepEqual(createdPods(p.actions), [
    'demo-expert-code-2',
    'demo-expert-math-2',
    'demo-expert-prose-2',
  ]);
  assert.equal(cond(w, 'Suspended')?.status, 'False');
  assert.ok(w.run.status?.experts?.every((e) => e.restarts === 0 && e.attempt === 2));
  assert.equal(p.status.phase, 'TrainingExperts');
  assert.equal(p.status.observedGeneration, 3);
});

test('suspending a running Job stage deletes the Job; resuming creates <run>-<stage>-2', () => {
  const w = new World(makeRun());
  w.throughTokenize();
  w.step();
  w.run = { ...w.run, spec: { ...w.run.spec, suspend: true } };
  const p = w.step();
  assert.deepEqual(
    kinds(p, 'deleteJob').map((a) => (a.kind === 'deleteJob' ? a.name : '')),
    ['demo-seed'],
  );
  w.run = { ...w.run, spec: { ...w.run.spec, suspend: false } };
  w.step();
  assert.ok(w.jobs.has('demo-seed-2'));
  assert.equal(w.run.status?.seed?.attempt, 2);
});

test('an invalid spec fails the run with InvalidSpec naming the field, an Event, and no children', () => {
  const w = new World(makeRun());
  const p = w.step(at(0), [
    { field: 'spec.mix.router.k', message: 'must be at most the number of experts (3)' },
  ]);
  assert.equal(p.status.phase, 'Failed');
  assert.equal(cond(w, 'Failed')?.reason, 'InvalidSpec');
  assert.match(cond(w, 'Failed')?.message ?? '', /spec\.mix\.router\.k: must be at most/);
  assert.ok(eventReasons(p).includes('InvalidSpec'));
  assert.equal(kinds(p, 'createPod').length + kinds(p, 'createJob').length, 0);
});

test('changing an immutable field after the start is reported (ImmutableFieldChanged) and not applied', () => {
  const w = running();
  w.run = { ...w.run, spec: { ...w.run.spec, domains: [{ name: 'law', data: '/btx/law' }] } };
  const p = w.step(at(1));
  const c = cond(w, 'SpecApplied');
  assert.equal(c?.status, 'False');
  assert.equal(c?.reason, 'ImmutableFieldChanged');
  assert.match(c?.message ?? '', /spec\.domains/);
  assert.deepEqual(
    p.status.experts?.map((e) => e.name),
    ['code', 'math', 'prose'],
  );
  assert.equal(kinds(p, 'createPod').length + kinds(p, 'deletePod').length, 0);
  assert.ok(eventReasons(p).includes('ImmutableFieldChanged'));
  assert.ok(!eventReasons(w.step(at(2))).includes('ImmutableFieldChanged'), 'one Event per transition');
});

test('ttlSecondsAfterFinished deletes the children once the time has passed', () => {
  const w = running();
  w.run = {
    ...w.run,
    spec: { ...w.run.spec, ttlSecondsAfterFinished: 60 },
    status: { ...w.run.status, phase: 'Failed', completionTime: at(10).toISOString() },
  };
  let p = w.step(at(20));
  assert.equal(p.requeueAfterMs, 50_000);
  p = w.step(at(71));
  assert.equal(w.pods.size, 0);
  assert.equal(p.status.phase, 'Failed');
});

test('a pod of a newer attempt from a previous operator is adopted, never duplicated', () => {
  const w = running();
  // The old operator created attempt 2 but crashed before recording it.
  const second: V1Pod = structuredClone(w.pod('demo-expert-code-1'));
  second.metadata = {
    ...second.metadata,
    name: 'demo-expert-code-2',
    labels: { ...second.metadata?.labels, 'btx.ai/attempt': '2' },
  };
  w.setPod('demo-expert-code-1', { phase: 'Failed', exitCode: 1 });
  w.pods.set('demo-expert-code-2', second);
  const p = w.step(at(500));
  assert.equal(expert(w, 'code')?.attempt, 2);
  assert.equal(kinds(p, 'createPod').length, 0);
});

test('a failed stage Job fails the run with the stage reason', () => {
  const w = new World(makeRun());
  w.throughExperts();
  const mix = w.job('demo-mix');
  w.jobs.set('demo-mix', {
    ...mix,
    status: {
      conditions: [
        {
          type: 'Failed',
          status: 'True',
          reason: 'BackoffLimitExceeded',
          message: 'Job has reached the specified backoff limit',
        },
      ],
    },
  });
  const p = w.step(at(1));
  assert.equal(p.status.phase, 'Failed');
  assert.equal(cond(w, 'Failed')?.reason, 'MixFailed');
  assert.match(cond(w, 'Failed')?.message ?? '', /BackoffLimitExceeded/);
  assert.equal(cond(w, 'Mixed')?.status, 'False');
});

test('conditions keep lastTransitionTime while their status does not change', () => {
  const w = running();
  const first = cond(w, 'ExpertsReady')?.lastTransitionTime;
  w.step(at(50));
  assert.equal(cond(w, 'ExpertsReady')?.lastTransitionTime, first);
});

test('the expert template merges under the pod: command override, extra env and labels; the contract wins', () => {
  const template = {
    metadata: { labels: { team: 'a', 'btx.ai/expert': 'hijack' } },
    spec: {
      containers: [
        {
          name: 'trainer',
          command: ['node', '-e', 'process.exit(3)'],
          env: [
            { name: 'EXTRA', value: '1' },
            { name: 'BTX_STAGE', value: 'x' },
          ],
        },
      ],
    },
  };
  const run = makeRun({ seed: { checkpoint: '/btx/s' } });
  run.spec.expert = {
    ...run.spec.expert,
    template,
    nodeSelector: { gpu: 'a100' },
    priorityClassName: 'high',
    schedulerName: 'kueue',
    tolerations: [{ key: 'gpu', operator: 'Exists' }],
    resources: { limits: { 'nvidia.com/gpu': '1' } },
  };
  const w = new World(run);
  w.throughTokenize();
  w.step();
  const pod = w.pod('demo-expert-code-1');
  assert.deepEqual(pod.spec?.containers[0]?.command, ['node', '-e', 'process.exit(3)']);
  assert.equal(env(pod).EXTRA, '1');
  assert.equal(env(pod).BTX_STAGE, 'expert');
  assert.equal(pod.metadata?.labels?.team, 'a');
  assert.equal(pod.metadata?.labels?.['btx.ai/expert'], 'code');
  assert.deepEqual(pod.spec?.nodeSelector, { gpu: 'a100' });
  assert.equal(pod.spec?.priorityClassName, 'high');
  assert.equal(pod.spec?.schedulerName, 'kueue');
  assert.deepEqual(pod.spec?.containers[0]?.resources, { limits: { 'nvidia.com/gpu': '1' } });
  assert.equal(pod.spec?.tolerations?.[0]?.key, 'gpu');
});

test('when the run fails, an expert restarting in the same step starts no new pod', () => {
  const w = new World(
    makeRun({
      seed: { checkpoint: '/btx/s' },
      failurePolicy: { rules: [{ action: 'FailExpert', onExitCodes: [9] }] },
    }),
  );
  w.throughTokenize();
  w.step();
  w.setPod('demo-expert-code-1', {
    phase: 'Failed',
    exitCode: 137,
    condition: { type: 'DisruptionTarget', reason: 'EvictionByEvictionAPI' },
  });
  w.setPod('demo-expert-math-1', { phase: 'Failed', exitCode: 9 });
  const p = w.step(at(101));
  assert.equal(p.status.phase, 'Failed');
  assert.match(
    p.status.conditions?.find((c) => c.type === 'Failed')?.message ?? '',
    /expert math failed for good/,
  );
  assert.equal(kinds(p, 'createPod').length, 0);
  assert.ok(!eventReasons(p).includes('ExpertRestarted'));
  assert.deepEqual(
    kinds(p, 'deletePod').map((a) => (a.kind === 'deletePod' ? a.name : '')),
    ['demo-expert-prose-1'],
  );
});

test('changing seed.checkpoint while experts train is reported naming the field, and later attempts branch from the original seed', () => {
  const w = new World(makeRun({ seed: { checkpoint: '/btx/models/llama' } }));
  w.throughTokenize();
  w.step();
  w.run = { ...w.run, spec: { ...w.run.spec, seed: { checkpoint: '/btx/models/other' } } };
  w.setPod('demo-expert-code-1', { phase: 'Failed', reason: 'Evicted' });
  const p = w.step(at(1));
  const c = cond(w, 'SpecApplied');
  assert.equal(c?.reason, 'ImmutableFieldChanged');
  assert.match(c?.message ?? '', /^spec\.seed\.checkpoint /);
  assert.deepEqual(createdPods(p.actions), ['demo-expert-code-2']);
  assert.equal(env(w.pod('demo-expert-code-2')).BTX_INPUT, '/btx/models/llama');
});
