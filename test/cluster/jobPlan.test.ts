import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import { planJob, type JobPlanOptions } from '../../src/cluster/jobs/jobPlan.js';
import { formatIndexes, parseIndexes } from '../../src/cluster/jobs/completionIndexes.js';
import { testPod } from '../support/pods.js';

const opts: JobPlanOptions = { backoffBaseMs: 1000, backoffMaxMs: 60_000 };
const T0 = Date.parse('2026-01-01T00:00:00Z');

function job(spec: Partial<NonNullable<V1Job['spec']>> = {}, status: V1Job['status'] = {}): V1Job {
  return {
    metadata: { name: 'j', namespace: 'ns', uid: 'job-uid' },
    spec: {
      completions: 1,
      parallelism: 1,
      backoffLimit: 6,
      template: { spec: { restartPolicy: 'Never', containers: [] } },
      ...spec,
    },
    status,
  };
}

let n = 0;
function pod(
  phase: string,
  opts: { exitCode?: number; finishedMs?: number; conditions?: { type: string; status: string }[] } = {},
): V1Pod {
  n++;
  return {
    ...testPod(`j-${n}`, {}, { namespace: 'ns', uid: `p${n}`, creationTimestamp: new Date(T0) }),
    status: {
      phase,
      conditions: opts.conditions,
      containerStatuses:
        opts.exitCode !== undefined
          ? [
              {
                name: 'main',
                image: 'i',
                imageID: '',
                ready: false,
                restartCount: 0,
                state: {
                  terminated: { exitCode: opts.exitCode, finishedAt: new Date(opts.finishedMs ?? T0) },
                },
              },
            ]
          : [],
    },
  };
}

const cond = (plan: ReturnType<typeof planJob>, type: string) =>
  (
    plan.status.conditions as
      { type: string; status: string; reason?: string; message?: string }[] | undefined
  )?.find((c) => c.type === type);

test('a new Job creates parallelism pods and records its start time', () => {
  const plan = planJob(job({ parallelism: 2, completions: 3 }), [], T0, opts);
  assert.equal(plan.createPods, 2);
  assert.equal(plan.status.startTime, '2026-01-01T00:00:00Z');
  assert.equal(plan.status.active, 0);
});

test('a failed pod is replaced only after the back-off delay', () => {
  const failed = pod('Failed', { exitCode: 1, finishedMs: T0 });
  const early = planJob(job({}, { startTime: new Date(T0) }), [failed], T0 + 500, opts);
  assert.equal(early.createPods, 0);
  assert.equal(early.requeueAfterMs, 500);
  assert.equal(early.status.failed, 1);
  assert.equal(planJob(job({}, { startTime: new Date(T0) }), [failed], T0 + 1000, opts).createPods, 1);
});

test('backoffLimit 2: the third failure fails the Job with BackoffLimitExceeded (FailureTarget first, Failed when no pod runs)', () => {
  const failures = [1, 2, 3].map(() => pod('Failed', { exitCode: 1 }));
  const plan = planJob(job({ backoffLimit: 2 }, { startTime: new Date(T0) }), failures, T0 + 60_000, opts);
  assert.equal(plan.createPods, 0);
  assert.equal(cond(plan, 'FailureTarget')?.reason, 'BackoffLimitExceeded');
  assert.equal(cond(plan, 'Failed')?.reason, 'BackoffLimitExceeded');
  assert.equal(cond(plan, 'Failed')?.message, 'Job has reached the specified backoff limit');
  assert.equal(plan.status.completionTime, undefined);
  assert.equal(planJob(job({ backoffLimit: 2 }), failures.slice(0, 2), T0 + 60_000, opts).createPods, 1);
});

test('enough successes complete the Job with SuccessCriteriaMet, Complete and completionTime', () => {
  const plan = planJob(
    job({ completions: 2, parallelism: 2 }, { startTime: new Date(T0) }),
    [pod('Succeeded'), pod('Succeeded')],
    T0 + 5000,
    opts,
  );
  assert.equal(cond(plan, 'SuccessCriteriaMet')?.status, 'True');
  assert.equal(cond(plan, 'Complete')?.status, 'True');
  assert.equal(plan.status.completionTime, '2026-01-01T00:00:05Z');
  assert.equal(plan.status.succeeded, 2);
  const partial = planJob(
    job({ completions: 3, parallelism: 2 }, { startTime: new Date(T0) }),
    [pod('Succeeded'), pod('Running')],
    T0,
    opts,
  );
  assert.equal(partial.createPods, 1);
  assert.equal(cond(partial, 'Complete'), undefined);
});

test('activeDeadlineSeconds fails the Job with DeadlineExceeded and deletes its running pods', () => {
  const running = pod('Running');
  const plan = planJob(
    job({ activeDeadlineSeconds: 10 }, { startTime: new Date(T0) }),
    [running],
    T0 + 10_000,
    opts,
  );
  assert.equal(cond(plan, 'FailureTarget')?.reason, 'DeadlineExceeded');
  assert.equal(cond(plan, 'Failed'), undefined, 'not Failed while a pod still runs');
  assert.deepEqual(plan.deletePods, [running]);
  const before = planJob(
    job({ activeDeadlineSeconds: 10 }, { startTime: new Date(T0) }),
    [running],
    T0 + 4000,
    opts,
  );
  assert.equal(before.requeueAfterMs, 6000);
});

test('suspend deletes active pods and sets Suspended; resuming starts the clock again', () => {
  const running = pod('Running');
  const plan = planJob(job({ suspend: true }, { startTime: new Date(T0) }), [running], T0, opts);
  assert.deepEqual(plan.deletePods, [running]);
  assert.equal(cond(plan, 'Suspended')?.status, 'True');
  assert.equal(plan.status.startTime, undefined);
  const stopped = {
    ...pod('Failed', { exitCode: 143 }),
    metadata: { name: 'x', uid: 'x', deletionTimestamp: new Date(T0) },
  };
  const whileSuspended = planJob(
    job({ suspend: true, backoffLimit: 0 }, { conditions: plan.status.conditions as never }),
    [stopped],
    T0,
    opts,
  );
  assert.equal(whileSuspended.status.failed, 0, 'pods stopped by suspension are not failures');
  const resumed = planJob(
    job({ suspend: false }, { conditions: plan.status.conditions as never }),
    [],
    T0 + 1000,
    opts,
  );
  assert.equal(cond(resumed, 'Suspended')?.status, 'False');
  assert.equal(resumed.createPods, 1);
});

test('podFailurePolicy: Ignore does not count a disruption, FailJob fails on a matching exit code', () => {
  const rules = [
    { action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] },
    { action: 'FailJob', onExitCodes: { operator: 'In', values: [42] } },
  ];
  const disrupted = pod('Failed', {
    exitCode: 137,
    conditions: [{ type: 'DisruptionTarget', status: 'True' }],
  });
  const ignored = planJob(
    job({ backoffLimit: 0, podFailurePolicy: { rules } }, { startTime: new Date(T0) }),
    [disrupted],
    T0,
    opts,
  );
  assert.equal(ignored.status.failed, 0);
  assert.equal(ignored.createPods, 1);
  const fatal = planJob(
    job({ backoffLimit: 5, podFailurePolicy: { rules } }, { startTime: new Date(T0) }),
    [pod('Failed', { exitCode: 42 })],
    T0,
    opts,
  );
  assert.equal(cond(fatal, 'Failed')?.reason, 'PodFailurePolicy');
  assert.match(
    cond(fatal, 'Failed')?.message ?? '',
    /failed with exit code 42 matching FailJob rule at index 1/,
  );
});

test('ttlSecondsAfterFinished deletes a finished Job once the TTL has passed', () => {
  const finished = job(
    { ttlSecondsAfterFinished: 5 },
    { conditions: [{ type: 'Complete', status: 'True', lastTransitionTime: new Date(T0) }], succeeded: 1 },
  );
  assert.equal(planJob(finished, [], T0 + 2000, opts).requeueAfterMs, 3000);
  assert.equal(planJob(finished, [], T0 + 5000, opts).deleteJob, true);
});

test('Indexed: pods are created for the lowest indexes neither done nor running; completedIndexes is compressed', () => {
  const indexedPod = (phase: string, index: number): V1Pod => {
    const p = pod(phase);
    return {
      ...p,
      metadata: { ...p.metadata, annotations: { 'batch.kubernetes.io/job-completion-index': String(index) } },
    };
  };
  const j = job(
    { completionMode: 'Indexed', completions: 4, parallelism: 2 },
    { startTime: new Date(T0), completedIndexes: '3' },
  );
  const plan = planJob(j, [indexedPod('Succeeded', 0), indexedPod('Running', 1)], T0, opts);
  assert.deepEqual(plan.createIndexes, [2]);
  assert.equal(plan.createPods, 1);
  assert.equal(plan.status.completedIndexes, '0,3');
  assert.equal(plan.status.succeeded, 2);
  const done = planJob(
    j,
    [0, 1, 2].map((i) => indexedPod('Succeeded', i)),
    T0,
    opts,
  );
  assert.equal(done.status.completedIndexes, '0-3');
  assert.equal(cond(done, 'Complete')?.status, 'True');
  assert.equal(formatIndexes(parseIndexes('7,1-3,5')), '1-3,5,7');
});

test('podReplacementPolicy: TerminatingOrFailed replaces a terminating pod at once, Failed waits until it is terminal', () => {
  const terminating: V1Pod = {
    ...pod('Running'),
    metadata: { name: 't', uid: 't', deletionTimestamp: new Date(T0) },
  };
  const start = { startTime: new Date(T0) };
  assert.equal(
    planJob(job({ podReplacementPolicy: 'TerminatingOrFailed' }, start), [terminating], T0, opts).createPods,
    1,
  );
  assert.equal(
    planJob(job({ podReplacementPolicy: 'Failed' }, start), [terminating], T0, opts).createPods,
    0,
  );
  assert.equal(
    planJob(job({ podFailurePolicy: { rules: [] } }, start), [terminating], T0, opts).createPods,
    0,
  );
});
