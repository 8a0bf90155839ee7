// An operator newer than the CRD installed in the cluster (Helm never upgrades a chart's CRDs): the
// API server prunes a status field the operator writes, so the operator's status differs from the
// stored one on every reconcile and the write changes nothing. A no-op write keeps the
// resourceVersion and sends no watch event; the controller must not then wait for the cache to move
// past it (it used to: every later reconcile was skipped, with a 2 s requeue, for good).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { PatchStrategy, setHeaderOptions, type V1CustomResourceDefinition } from '@kubernetes/client-node';
import { btxRunCRD } from '../../src/api/crd.js';
import { startOperator, type RunningOperator } from '../../src/operator/operator.js';
import { startTestControlPlane } from '../support/controlPlane.js';
import { TWO_DOMAINS, createRun, waitForRun, type TestCluster } from './cluster.js';
import { waitFor } from '../support/waitFor.js';

/** The BTXRun CRD of an older release: its status schema lacks `expertsReady`, which plan() always writes. */
function crdWithoutExpertsReady(): V1CustomResourceDefinition {
  const crd = btxRunCRD();
  for (const v of crd.spec.versions) {
    const status = v.schema?.openAPIV3Schema?.properties?.status;
    assert.ok(status?.properties?.expertsReady, 'the CRD has status.expertsReady to drop');
    delete status.properties.expertsReady;
  }
  return crd;
}

let c: TestCluster;
let op: RunningOperator;
before(async () => {
  const cp = await startTestControlPlane({
    name: 'operator',
    controllers: { kubelet: false, jobController: false },
  });
  c = { ...cp, plane: cp.plane! };
  const res = await c.req(
    'POST',
    '/apis/apiextensions.k8s.io/v1/customresourcedefinitions',
    crdWithoutExpertsReady(),
  );
  if (!res.ok) throw new Error(`CRD install failed: ${res.status} ${await res.text()}`);
  op = await startOperator({ kubeConfig: c.kc });
});
after(async () => {
  await op?.stop();
  await c?.stop();
});

test('a run whose status writes change nothing (the CRD prunes a field) still reacts to its children', async () => {
  await createRun(c, 'pruned', TWO_DOMAINS);
  const job = await waitFor(
    'the tokenize Job',
    async () =>
      (await c.batch.listNamespacedJob({ namespace: 'default', labelSelector: 'btx.ai/run=pruned' }))
        .items[0],
    20_000,
  );
  // The pruning is real: the stored status never holds the field the operator writes.
  const tokenizing = await waitForRun(
    c,
    'pruned',
    (r) => r.status?.phase === 'Tokenizing',
    'phase Tokenizing',
  );
  assert.equal(tokenizing.status?.expertsReady, undefined);
  // Let the operator make its no-op writes (each reconcile of the unchanged run makes one).
  await new Promise((r) => setTimeout(r, 1000));

  await c.batch.patchNamespacedJobStatus(
    {
      name: job.metadata?.name ?? '',
      namespace: 'default',
      body: {
        status: {
          failed: 1,
          conditions: [
            { type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded', message: 'the job failed' },
          ],
        },
      },
    },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
  const failed = await waitForRun(c, 'pruned', (r) => r.status?.phase === 'Failed', 'phase Failed', 15_000);
  assert.equal(failed.status?.conditions?.find((x) => x.type === 'Failed')?.reason, 'TokenizeFailed');
});
