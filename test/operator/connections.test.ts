// The operator's API calls share kept connections: once warm, a run's status writes, creates and
// Events open no new TCP/TLS connection (client-node alone opens one per call, 64 ms against 8.5 ms
// per call measured on the embedded API server). Connections are counted by a TCP relay between the
// operator and the API server (test/support/countingRelay.ts).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { kubeconfigYaml } from '../../src/cluster/apiserver/kubeconfig.js';
import { startOperator, type RunningOperator } from '../../src/operator/operator.js';
import { TWO_DOMAINS, createRun, getRun, startCluster, type TestCluster } from './cluster.js';
import { countingRelay, type CountingRelay } from '../support/countingRelay.js';
import { waitFor } from '../support/waitFor.js';

let c: TestCluster;
let op: RunningOperator;
let relay: CountingRelay;
let writes = 0;
before(async () => {
  c = await startCluster({ kubelet: false, jobController: false });
  relay = await countingRelay(Number(new URL(c.url).port));
  const kc = new KubeConfig();
  const caCert = c.kc.getCurrentCluster()?.caData ?? '';
  kc.loadFromString(
    kubeconfigYaml(
      `http://127.0.0.1:${relay.port}`,
      c.token,
      'relay',
      Buffer.from(caCert, 'base64').toString(),
    ),
  );
  op = await startOperator({ kubeConfig: kc, workers: 1, countWrite: () => writes++ });
});
after(async () => {
  await op?.stop();
  relay?.server.close();
  await c?.stop();
});

/** Creates a run and waits until the operator has started its tokenize Jobs and gone quiet. */
async function tokenizing(name: string): Promise<void> {
  await createRun(c, name, TWO_DOMAINS);
  await waitFor(
    `run ${name} to reach Tokenizing with its Jobs`,
    async () => {
      const jobs = await c.batch.listNamespacedJob({
        namespace: 'default',
        labelSelector: `btx.ai/run=${name}`,
      });
      return jobs.items.length === 2 && (await getRun(c, name)).status?.phase === 'Tokenizing'
        ? true
        : undefined;
    },
    20_000,
  );
  // Quiet: no write for 300 ms (its Events are posted in the background after the creates).
  let last = -1;
  await waitFor(
    'the operator to stop writing',
    () => {
      const settled = writes === last;
      last = writes;
      return settled;
    },
    20_000,
    300,
  );
}

test('once warm, a second run makes its API writes over the connections the first one opened', async () => {
  await tokenizing('first');
  const connectionsBefore = relay.connections();
  const writesBefore = writes;
  await tokenizing('second');
  const runWrites = writes - writesBefore;
  assert.ok(runWrites >= 4, `the second run made ${runWrites} writes (status, 2 Jobs, Events)`);
  assert.equal(relay.connections() - connectionsBefore, 0, `${runWrites} writes opened new connections`);
});
