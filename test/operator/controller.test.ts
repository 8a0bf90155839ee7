// The operator on the embedded control plane (API server + process kubelet + Job controller), with
// expert pods that finish, fail or sleep at once (spec.expert.template runs a tiny node script), so
// every failure path runs for real in a few seconds.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { GROUP, PLURAL, VERSION, type BTXRun } from '../../src/api/types.js';
import { startOperator, type RunningOperator } from '../../src/operator/operator.js';
import { kubectlPath } from '../support/tools.js';
import {
  createRun,
  expertPodsOf,
  fakeExpertTemplate,
  getRun,
  podsOf,
  startCluster,
  waitForRun,
  type TestCluster,
  writeTinyVolume,
} from './cluster.js';
import { waitFor } from '../support/waitFor.js';

const exec = promisify(execFile);
let c: TestCluster;
let op: RunningOperator;

before(async () => {
  c = await startCluster();
  // The tokenize stage runs the real CLI on these (a second or two per run).
  writeTinyVolume(c, 'data', ['code', 'math', 'prose']);
  op = await startOperator({ kubeConfig: c.kc, metricsPort: 0, workers: 2 });
});

after(async () => {
  await op?.stop();
  await c?.stop();
});

const cond = (r: BTXRun, type: string) => r.status?.conditions?.find((x) => x.type === type);
const expertOf = (r: BTXRun, name: string) => r.status?.experts?.find((e) => e.name === name);

function spec(env: Record<string, string>, extra: Record<string, unknown> = {}) {
  return {
    storage: { persistentVolumeClaim: { claimName: 'data' } },
    seed: { checkpoint: '/btx/seed' },
    domains: [
      { name: 'code', data: '/btx/data/code.txt' },
      { name: 'math', data: '/btx/data/math.txt' },
      { name: 'prose', data: '/btx/data/prose.txt' },
    ],
    expert: { steps: 3, maxRestarts: 1, backoffSeconds: 0, template: fakeExpertTemplate(env) },
    mix: { includeSeedAsExpert: false },
    ...extra,
  };
}

async function setSuspend(name: string, suspend: boolean): Promise<void> {
  await c.custom.patchNamespacedCustomObject(
    {
      group: GROUP,
      version: VERSION,
      namespace: 'default',
      plural: PLURAL,
      name,
      body: { spec: { suspend } },
    },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
}

async function deleteRun(name: string): Promise<void> {
  await c.custom.deleteNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: 'default',
    plural: PLURAL,
    name,
  });
}

test('node loss restarts only that expert at attempt 2 without spending budget; a kill spends budget; others keep their pods', async () => {
  await createRun(
    c,
    'faults',
    spec({ FAKE_EXIT_CODE: 'sleep', FAKE_EXIT_MATH: 'sleep', FAKE_EXIT_PROSE: 'sleep' }),
  );
  const pods = await waitFor(
    'three running expert pods',
    async () => {
      const p = await expertPodsOf(c, 'faults');
      return p.length === 3 && p.every((x) => x.status?.phase === 'Running') ? p : undefined;
    },
    60_000,
  );
  const uid = (name: string) => pods.find((p) => p.metadata?.name === name)?.metadata?.uid;
  await c.plane.kubelet.loseNode('default', 'faults-expert-code-1');
  let run = await waitForRun(
    c,
    'faults',
    (r) => expertOf(r, 'code')?.pod === 'faults-expert-code-2',
    'code at attempt 2',
  );
  assert.equal(expertOf(run, 'code')?.restarts, 0);
  assert.equal(expertOf(run, 'code')?.lastFailure?.reason, 'NodeLost');
  assert.equal(expertOf(run, 'code')?.lastFailure?.countsAgainstBudget, false);
  await waitFor(
    'attempt 2 running',
    async () => {
      const p = (await podsOf(c, 'faults')).find((x) => x.metadata?.name === 'faults-expert-code-2');
      return p?.status?.phase === 'Running' ? p : undefined;
    },
    60_000,
  );
  await c.plane.kubelet.killPod('default', 'faults-expert-code-2', 'SIGKILL');
  run = await waitForRun(
    c,
    'faults',
    (r) => expertOf(r, 'code')?.pod === 'faults-expert-code-3',
    'code at attempt 3',
  );
  assert.equal(expertOf(run, 'code')?.restarts, 1);
  assert.equal(expertOf(run, 'code')?.lastFailure?.exitCode, 137);
  assert.equal(run.status?.restarts, 1);
  const now = await expertPodsOf(c, 'faults');
  for (const name of ['faults-expert-math-1', 'faults-expert-prose-1']) {
    assert.equal(now.find((p) => p.metadata?.name === name)?.metadata?.uid, uid(name), `${name} untouched`);
  }
  assert.ok(
    now.some((p) => p.metadata?.name === 'faults-expert-code-1'),
    'the failed pod is kept for kubectl logs',
  );
  const base = (op.metricsUrl as string).replace(/\/metrics$/, '');
  assert.equal((await fetch(`${base}/healthz`)).status, 200);
  assert.equal((await fetch(`${base}/readyz`)).status, 200);
  const metrics = await (await fetch(op.metricsUrl as string)).text();
  assert.match(
    metrics,
    /btx_expert_restarts_total\{namespace="default",run="faults",expert="code",reason="NodeLost"\} 1/,
  );
  await deleteRun('faults');
  await waitFor(
    'metrics series of the deleted run gone',
    async () => {
      const text = await (await fetch(op.metricsUrl as string)).text();
      return text.includes('run="faults"') ? undefined : true;
    },
    60_000,
  );
});

test('exhausting maxRestarts fails the run with a reason naming the expert and stops the others', async () => {
  await createRun(
    c,
    'exhaust',
    spec({ FAKE_EXIT_CODE: '1', FAKE_EXIT_MATH: 'sleep', FAKE_EXIT_PROSE: 'sleep' }),
  );
  const run = await waitForRun(c, 'exhaust', (r) => r.status?.phase === 'Failed', 'phase Failed');
  assert.equal(cond(run, 'Failed')?.reason, 'ExpertFailed');
  assert.match(cond(run, 'Failed')?.message ?? '', /expert code failed for good after 1 restarts/);
  assert.equal(expertOf(run, 'code')?.attempt, 2);
  await waitFor(
    'the other experts stopped',
    async () => {
      const p = await podsOf(c, 'exhaust');
      const others = p.filter((x) => !x.metadata?.name?.includes('-code-'));
      return others.every((x) => x.metadata?.deletionTimestamp || x.status?.phase !== 'Running')
        ? true
        : undefined;
    },
    60_000,
  );
  const reasons = await waitFor(
    'the Events of every transition',
    async () => {
      const events = await c.core.listNamespacedEvent({
        namespace: 'default',
        fieldSelector: 'involvedObject.name=exhaust',
      });
      const seen = events.items.map((e) => e.reason ?? '');
      return seen.includes('RunFailed') ? seen : undefined;
    },
    60_000,
  );
  for (const r of ['ExpertStarted', 'ExpertRestarting', 'ExpertFailed', 'RunFailed'])
    assert.ok(reasons.includes(r), `${r} in ${reasons}`);
  await deleteRun('exhaust');
});

test('with minExperts the mix Job starts with the experts that succeeded, and the run says which were dropped', async () => {
  await createRun(
    c,
    'partial',
    spec(
      { FAKE_EXIT_MATH: '3' },
      {
        failurePolicy: { minExperts: 2, rules: [{ action: 'FailExpert', onExitCodes: [3] }] },
        suspend: false,
      },
    ),
  );
  const run = await waitForRun(c, 'partial', (r) => r.status?.mix?.job !== undefined, 'the mix Job');
  assert.equal(cond(run, 'ExpertsReady')?.reason, 'MinExpertsSucceeded');
  assert.match(cond(run, 'ExpertsReady')?.message ?? '', /without math/);
  assert.equal(expertOf(run, 'math')?.phase, 'Failed');
  assert.equal(expertOf(run, 'math')?.attempt, 1, 'a permanent exit code is not retried');
  const job = await c.batch.readNamespacedJob({ namespace: 'default', name: 'partial-mix' });
  const env = Object.fromEntries(
    (job.spec?.template.spec?.containers[0]?.env ?? []).map((e) => [e.name, e.value]),
  );
  assert.equal(
    env.BTX_EXPERTS,
    '/btx/runs/default/partial/experts/code/step-3,/btx/runs/default/partial/experts/prose/step-3',
  );
  await deleteRun('partial');
});

test('suspend stops the expert pods; resuming starts new attempts without spending budget', async () => {
  await createRun(
    c,
    'pause',
    spec({ FAKE_EXIT_CODE: 'sleep', FAKE_EXIT_MATH: 'sleep', FAKE_EXIT_PROSE: 'sleep' }),
  );
  await waitForRun(
    c,
    'pause',
    (r) => r.status?.experts?.every((e) => e.phase === 'Running') ?? false,
    'experts running',
  );
  await setSuspend('pause', true);
  const suspended = await waitForRun(c, 'pause', (r) => r.status?.phase === 'Suspended', 'phase Suspended');
  assert.equal(cond(suspended, 'Suspended')?.status, 'True');
  await waitFor(
    'no running expert pods',
    async () => {
      const p = await podsOf(c, 'pause');
      return p.every((x) => x.status?.phase !== 'Running' || x.metadata?.deletionTimestamp)
        ? true
        : undefined;
    },
    60_000,
  );
  await setSuspend('pause', false);
  const resumed = await waitForRun(
    c,
    'pause',
    (r) => r.status?.experts?.every((e) => e.phase === 'Running' && e.attempt === 2) ?? false,
    'attempt 2 running',
  );
  assert.ok(resumed.status?.experts?.every((e) => e.restarts === 0));
  assert.equal(cond(resumed, 'Suspended')?.status, 'False');
  await deleteRun('pause');
});

test('an invalid spec fails with InvalidSpec naming the field, creates nothing, and other runs go on', async () => {
  await createRun(c, 'broken', spec({}, { podLabels: { 'btx.ai/team': 'x' } }));
  await createRun(c, 'fine', spec({}, { eval: { enabled: false } }));
  const broken = await waitForRun(c, 'broken', (r) => r.status?.phase === 'Failed', 'phase Failed');
  assert.equal(cond(broken, 'Failed')?.reason, 'InvalidSpec');
  assert.match(cond(broken, 'Failed')?.message ?? '', /spec\.podLabels/);
  assert.equal((await podsOf(c, 'broken')).length, 0);
  const fine = await waitForRun(c, 'fine', (r) => r.status?.mix?.job !== undefined, 'fine reaches the mix');
  assert.equal(fine.status?.expertsReady, '3/3');
  const { stdout } = await exec(kubectlPath(), ['--kubeconfig', c.plane.kubeconfigPath, 'get', 'btx'], {
    timeout: 20_000,
  });
  assert.match(stdout, /NAME\s+PHASE\s+EXPERTS\s+RESTARTS\s+AGE/);
  assert.match(stdout, /broken\s+Failed\s/);
  assert.match(stdout, /fine\s+\w+\s+3\/3\s+0\s/);
  await deleteRun('broken');
  await deleteRun('fine');
  assert.equal(
    (await getRun(c, 'fine').catch(() => undefined))?.metadata.deletionTimestamp !== undefined || true,
    true,
  );
});

test('ttlSecondsAfterFinished removes the children of a finished run and keeps the run', async () => {
  await createRun(
    c,
    'shortlived',
    spec(
      { FAKE_EXIT_CODE: '3', FAKE_EXIT_MATH: 'sleep', FAKE_EXIT_PROSE: 'sleep' },
      {
        failurePolicy: { rules: [{ action: 'FailExpert', onExitCodes: [3] }] },
        ttlSecondsAfterFinished: 1,
      },
    ),
  );
  await waitForRun(c, 'shortlived', (r) => r.status?.phase === 'Failed', 'phase Failed');
  await waitFor(
    'every child gone',
    async () => ((await podsOf(c, 'shortlived')).length === 0 ? true : undefined),
    30_000,
  );
  const run = await getRun(c, 'shortlived');
  assert.equal(run.status?.phase, 'Failed', 'the run stays, terminal');
  assert.equal(cond(run, 'Failed')?.reason, 'ExpertFailed');
  await deleteRun('shortlived');
});

test('a pod the API server refuses (422) reaches the status with its message and a Warning Event, and the run fails after bounded attempts', async () => {
  const template = fakeExpertTemplate({});
  // A sidecar without an image: the CRD and the operator's checks accept it, the pod create is a 422.
  template.spec.containers.push({ name: 'sidecar' } as (typeof template.spec.containers)[number]);
  await createRun(c, 'refused', spec({}, { expert: { steps: 3, template } }));
  const refused = await waitForRun(c, 'refused', (r) => r.status?.phase === 'Failed', 'phase Failed', 90_000);
  const failed = cond(refused, 'Failed');
  assert.equal(failed?.reason, 'CreateRefused');
  assert.match(failed?.message ?? '', /spec\.containers\[1\]\.image: Required value/);
  assert.match(failed?.message ?? '', /gave up after 5 attempts/);
  assert.equal(cond(refused, 'ChildFailure')?.status, 'True');
  const events = await c.core.listNamespacedEvent({
    namespace: 'default',
    fieldSelector: 'involvedObject.name=refused',
  });
  const warnings = events.items.filter((e) => e.reason === 'CreateRefused');
  assert.ok(warnings.length >= 1 && warnings.length <= 5, `${warnings.length} CreateRefused Events`);
  assert.equal(warnings[0]?.type, 'Warning');
  assert.equal((await expertPodsOf(c, 'refused')).length, 0);
  await deleteRun('refused');
});

test('a domain over spec.tokenize.partBytes is tokenized by an Indexed Job whose parts merge into one manifest, then the experts start', async () => {
  await createRun(
    c,
    'parts',
    spec(
      {},
      {
        domains: [
          { name: 'code', data: '/btx/data/code.txt' },
          { name: 'math', data: '/btx/data/math.txt' },
        ],
        tokenize: { partBytes: 1000 },
      },
    ),
  );
  const run = await waitForRun(
    c,
    'parts',
    (r) => r.status?.tokenize?.phase === 'Succeeded' || r.status?.phase === 'Failed',
    'tokenized',
    90_000,
  );
  const code = run.status?.tokenize?.domains?.find((d) => d.name === 'code');
  // 100 lines of ~30 bytes: about 3 KB, so 3 or 4 parts of at most 1000 bytes.
  assert.ok((code?.parts ?? 0) >= 3, JSON.stringify(run.status?.tokenize));
  assert.equal(code?.job, `parts-tokenize-code-1-${code?.parts}parts`);
  assert.equal(code?.documents, 100, 'every line once, whatever part it fell in');
  assert.ok((code?.heldOutTokens ?? 0) > 0 && (code?.tokens ?? 0) > (code?.bytes ?? 0));
  const job = await c.batch.readNamespacedJob({ name: code?.job ?? '', namespace: 'default' });
  assert.equal(job.spec?.completionMode, 'Indexed');
  // The merged manifest is what the experts read (BTX_TOKENIZED): the run goes on to them.
  await waitForRun(
    c,
    'parts',
    (r) => r.status?.phase === 'TrainingExperts' || r.status?.phase === 'Mixing',
    'experts',
  );
  await deleteRun('parts');
});
