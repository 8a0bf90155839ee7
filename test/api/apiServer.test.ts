// The generated CRD on the embedded API server, driven by the real kubectl: it installs, the schema
// rejects what it can express with a message naming the field, `kubectl get btx` shows the printer
// columns and `kubectl explain` the descriptions.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { startTestApiServer, type TestApiServer } from '../support/controlPlane.js';
import { kubectlPath, repoRoot } from '../support/tools.js';
import { invalidManifests } from './invalidManifests.js';

const run = promisify(execFile);
let api: TestApiServer;

async function kubectl(...args: string[]): Promise<{ ok: boolean; out: string }> {
  try {
    const { stdout, stderr } = await run(kubectlPath(), ['--kubeconfig', api.kubeconfigPath, ...args], {
      timeout: 30_000,
    });
    return { ok: true, out: stdout + stderr };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    return { ok: false, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

before(async () => {
  api = await startTestApiServer();
  const applied = await kubectl('apply', '-f', join(repoRoot, 'crds', 'btx.ai_btxruns.yaml'));
  assert.ok(applied.ok, applied.out);
  const established = await kubectl(
    'wait',
    '--for=condition=Established',
    '--timeout=30s',
    'crd/btxruns.btx.ai',
  );
  assert.ok(established.ok, established.out);
});

after(async () => {
  await api?.stop();
});

for (const m of invalidManifests().filter((f) => f.apiserver !== undefined)) {
  test(`the API server rejects ${m.file} naming the problem`, async () => {
    const result = await kubectl('create', '-f', m.path);
    assert.equal(result.ok, false, `accepted: ${result.out}`);
    assert.ok(
      result.out.includes(m.apiserver ?? ''),
      `expected ${JSON.stringify(m.apiserver)} in: ${result.out}`,
    );
  });
}

test('the example is accepted, defaulted, and listed with the printer columns', async () => {
  const created = await kubectl('create', '-f', join(repoRoot, 'examples', 'btxrun-local.yaml'));
  assert.ok(created.ok, created.out);
  const got = await kubectl('get', 'btx', 'tiny', '-n', 'default');
  assert.ok(got.ok, got.out);
  assert.match(got.out.split('\n')[0] ?? '', /^NAME\s+PHASE\s+EXPERTS\s+RESTARTS\s+AGE/);
  const spec = await kubectl(
    'get',
    'btxrun',
    'tiny',
    '-n',
    'default',
    '-o',
    'jsonpath={.spec.finetune.loadBalancingCoef} {.spec.mix.routerInit}',
  );
  assert.equal(spec.out, '0.01 normal');
});

test('kubectl explain shows the field descriptions', async () => {
  const explained = await kubectl('explain', 'btxrun.spec.expert.maxRestarts');
  assert.ok(explained.ok, explained.out);
  assert.match(explained.out, /Restarts per expert that spend budget/);
});
