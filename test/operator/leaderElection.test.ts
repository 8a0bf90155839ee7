// Two operator replicas against one embedded control plane: exactly one leads (and acts); when the
// leader stops, the standby takes over within the lease duration and carries runs on without duplicates.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CoordinationV1Api } from '@kubernetes/client-node';
import { startOperator, type RunningOperator } from '../../src/operator/operator.js';
import { LeaderElector } from '../../src/operator/leaderElection.js';
import { GROUP, PLURAL, VERSION } from '../../src/api/types.js';
import {
  createRun,
  fakeExpertTemplate,
  podsOf,
  startCluster,
  writeTinyVolume,
  waitForRun,
  type TestCluster,
} from './cluster.js';
import { waitFor } from '../support/waitFor.js';

let c: TestCluster;
before(async () => {
  c = await startCluster();
  writeTinyVolume(c, 'data', ['code', 'math']);
});
after(async () => {
  await c?.stop();
});

const election = (identity: string) => ({
  namespace: 'default',
  name: 'btx-test',
  identity,
  leaseDurationSeconds: 2,
  renewDeadlineSeconds: 1.5,
  retryPeriodSeconds: 0.2,
});

test('two replicas: one leads; stopping it hands over to the other within the lease time', async () => {
  const a: RunningOperator = await startOperator({ kubeConfig: c.kc, leaderElection: election('replica-a') });
  const b: RunningOperator = await startOperator({ kubeConfig: c.kc, leaderElection: election('replica-b') });
  try {
    const first = await waitFor(
      'a leader',
      async () => (a.isLeader() || b.isLeader() ? true : undefined),
      10_000,
    );
    assert.ok(first);
    await new Promise((r) => setTimeout(r, 600)); // a few renew periods: still exactly one
    assert.equal(Number(a.isLeader()) + Number(b.isLeader()), 1, 'exactly one leader');
    const [leader, standby, standbyId] = a.isLeader() ? [a, b, 'replica-b'] : [b, a, 'replica-a'];
    const lease = await c.kc
      .makeApiClient(CoordinationV1Api)
      .readNamespacedLease({ name: 'btx-test', namespace: 'default' });
    assert.notEqual(lease.spec?.holderIdentity, standbyId);
    assert.equal(lease.spec?.leaseDurationSeconds, 2);
    const stoppedAt = Date.now();
    await leader.stop();
    await waitFor('the standby to lead', async () => (standby.isLeader() ? true : undefined), 2000 + 1500);
    const took = Date.now() - stoppedAt;
    const after = await c.kc
      .makeApiClient(CoordinationV1Api)
      .readNamespacedLease({ name: 'btx-test', namespace: 'default' });
    assert.equal(after.spec?.holderIdentity, standbyId);
    assert.ok((after.spec?.leaseTransitions ?? 0) >= 1);
    assert.ok(took < 3500, `took ${took} ms`);
  } finally {
    await a.stop();
    await b.stop();
  }
});

test('a leader that dies without releasing is replaced once the lease expires', async () => {
  let aLeads = false;
  let bLeads = false;
  const a = new LeaderElector({
    kubeConfig: c.kc,
    ...election('dead'),
    name: 'btx-crash',
    onStartedLeading: () => (aLeads = true),
    onStoppedLeading: () => (aLeads = false),
  });
  a.start();
  await waitFor('a to lead', async () => (aLeads ? true : undefined), 5000);
  // Freeze a (no renewals, no release), as if its process had been killed.
  (a as unknown as { stopped: boolean }).stopped = true;
  const b = new LeaderElector({
    kubeConfig: c.kc,
    ...election('alive'),
    name: 'btx-crash',
    onStartedLeading: () => (bLeads = true),
    onStoppedLeading: () => (bLeads = false),
  });
  b.start();
  try {
    await new Promise((r) => setTimeout(r, 800));
    assert.equal(bLeads, false, 'no takeover while the lease is fresh');
    await waitFor('b to take over after expiry', async () => (bLeads ? true : undefined), 5000);
  } finally {
    await b.stop();
    (a as unknown as { stopped: boolean }).stopped = false;
    await a.stop();
  }
});

test('a leader failover in the middle of a run finishes it with no duplicate pods or Jobs', async () => {
  const a = await startOperator({ kubeConfig: c.kc, leaderElection: election('mid-a'), workers: 2 });
  const b = await startOperator({ kubeConfig: c.kc, leaderElection: election('mid-b'), workers: 2 });
  try {
    await waitFor('a leader', async () => (a.isLeader() || b.isLeader() ? true : undefined), 10_000);
    await createRun(c, 'failover', {
      storage: { persistentVolumeClaim: { claimName: 'data' } },
      seed: { checkpoint: '/btx/seed' },
      domains: [
        { name: 'code', data: '/btx/data/code.txt' },
        { name: 'math', data: '/btx/data/math.txt' },
      ],
      expert: {
        steps: 3,
        template: fakeExpertTemplate({ FAKE_EXIT_CODE: 'after:1500', FAKE_EXIT_MATH: 'after:3000' }),
      },
      mix: { includeSeedAsExpert: false },
    });
    await waitForRun(
      c,
      'failover',
      (r) => r.status?.experts?.some((e) => e.phase === 'Running') ?? false,
      'an expert running',
    );
    const [leader, standby] = a.isLeader() ? [a, b] : [b, a];
    await leader.stop();
    await waitFor('the standby to lead', async () => (standby.isLeader() ? true : undefined), 5000);
    const run = await waitForRun(
      c,
      'failover',
      (r) => r.status?.mix?.job !== undefined,
      'the mix Job',
      30_000,
    );
    assert.equal(run.status?.expertsReady, '2/2');
    const pods = (await podsOf(c, 'failover')).filter(
      (p) => p.metadata?.labels?.['btx.ai/stage'] === 'expert',
    );
    assert.deepEqual(pods.map((p) => p.metadata?.name).sort(), [
      'failover-expert-code-1',
      'failover-expert-math-1',
    ]);
    const jobs = await c.batch.listNamespacedJob({
      namespace: 'default',
      labelSelector: 'btx.ai/run=failover',
    });
    assert.deepEqual(jobs.items.map((j) => j.metadata?.name).sort(), [
      'failover-mix',
      'failover-tokenize-code-1',
      'failover-tokenize-math-1',
    ]);
    await c.custom.deleteNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: 'default',
      plural: PLURAL,
      name: 'failover',
    });
  } finally {
    await a.stop();
    await b.stop();
  }
});
