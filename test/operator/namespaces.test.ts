// --namespace: an operator that watches some namespaces acts on runs there and leaves the others alone.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startOperator, type RunningOperator } from '../../src/operator/operator.js';
import { TWO_DOMAINS, createRun, getRun, podsOf, startCluster, type TestCluster } from './cluster.js';
import { waitFor } from '../support/waitFor.js';

let c: TestCluster;
let op: RunningOperator;
before(async () => {
  c = await startCluster({ kubelet: false, jobController: false });
  await c.core.createNamespace({ body: { metadata: { name: 'team-a' } } });
  op = await startOperator({ kubeConfig: c.kc, namespaces: ['team-a'] });
});
after(async () => {
  await op?.stop();
  await c?.stop();
});

async function jobsOf(run: string, namespace: string) {
  return (await c.batch.listNamespacedJob({ namespace, labelSelector: `btx.ai/run=${run}` })).items;
}

test('runs in watched namespaces get children; runs elsewhere are not touched', async () => {
  await createRun(c, 'watched', TWO_DOMAINS, 'team-a');
  await createRun(c, 'ignored', TWO_DOMAINS, 'default');
  // Its first stage: one tokenize Job per domain (no Job controller here: they stay Jobs).
  await waitFor(
    'the watched run to get its tokenize Jobs',
    async () => ((await jobsOf('watched', 'team-a')).length === 2 ? true : undefined),
    20_000,
  );
  const watched = await getRun(c, 'watched', 'team-a');
  assert.equal(watched.status?.phase, 'Tokenizing');
  const ignored = await getRun(c, 'ignored', 'default');
  assert.equal(ignored.status, undefined);
  assert.equal((await podsOf(c, 'ignored', 'default')).length, 0);
  assert.equal((await jobsOf('ignored', 'default')).length, 0);
});
