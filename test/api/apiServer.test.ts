// The generated CRD on the embedded API server, driven by the real kubectl: it installs, the schema
// rejects what it can express with a message naming the field, its transition rules allow exactly
// the changes of spec.domains a Succeeded run may make, `kubectl get btx` shows the printer columns
// and `kubectl explain` the descriptions.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { parse, stringify } from 'yaml';
import type { BTXRun } from '../../src/api/types.js';
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

test('spec.domains: appending or removing domains is allowed only once the run has Succeeded; any other change is refused naming the field', async () => {
  const manifest = parse(await readFile(join(repoRoot, 'examples', 'btxrun-local.yaml'), 'utf8')) as BTXRun;
  manifest.metadata.name = 'rounds';
  const dir = await mkdtemp(join(tmpdir(), 'btx-rounds-'));
  const file = join(dir, 'run.yaml');
  await writeFile(file, stringify(manifest));
  const created = await kubectl('create', '-f', file);
  await rm(dir, { recursive: true, force: true });
  assert.ok(created.ok, created.out);
  const patch = (ops: object[], ...extra: string[]) =>
    kubectl('patch', 'btxrun', 'rounds', '-n', 'default', '--type=json', '-p', JSON.stringify(ops), ...extra);
  const names = async () =>
    (await kubectl('get', 'btxrun', 'rounds', '-n', 'default', '-o', 'jsonpath={.spec.domains[*].name}')).out;
  const law = { name: 'law', data: '/btx/data/law' };
  const append = [{ op: 'add', path: '/spec/domains/-', value: law }];
  const transition =
    /spec\.domains: Invalid value: "object": domains can change only once the run has Succeeded/;

  // Not Succeeded yet: even an append is refused.
  let r = await patch(append);
  assert.equal(r.ok, false, r.out);
  assert.match(r.out, transition);
  r = await patch([{ op: 'add', path: '/status', value: { phase: 'Succeeded' } }], '--subresource=status');
  assert.ok(r.ok, r.out);

  const refused: [string, object[], RegExp][] = [
    [
      'a reorder',
      [
        { op: 'replace', path: '/spec/domains/0', value: { name: 'code', data: '/btx/data/code' } },
        { op: 'replace', path: '/spec/domains/1', value: { name: 'math', data: '/btx/data/math' } },
      ],
      transition,
    ],
    ['a rename', [{ op: 'replace', path: '/spec/domains/1/name', value: 'cpp' }], transition],
    ['an insert before the end', [{ op: 'add', path: '/spec/domains/1', value: law }], transition],
    ['a remove and an add at once', [{ op: 'replace', path: '/spec/domains/2', value: law }], transition],
    [
      'changed data of an existing domain',
      [{ op: 'replace', path: '/spec/domains/1/data', value: '/btx/data/other' }],
      /spec\.domains\[1\]: Invalid value: "object": an existing domain is immutable/,
    ],
  ];
  for (const [what, ops, message] of refused) {
    r = await patch(ops);
    assert.equal(r.ok, false, `${what} accepted: ${r.out}`);
    assert.match(r.out, message, what);
  }
  assert.equal(await names(), 'math code prose');

  r = await patch(append);
  assert.ok(r.ok, r.out);
  assert.equal(await names(), 'math code prose law');
  r = await patch([{ op: 'remove', path: '/spec/domains/1' }]);
  assert.ok(r.ok, r.out);
  assert.equal(await names(), 'math prose law');
  // Storage stays immutable on a Succeeded run too.
  r = await patch([{ op: 'replace', path: '/spec/storage/persistentVolumeClaim/claimName', value: 'other' }]);
  assert.equal(r.ok, false, r.out);
  assert.match(r.out, /spec\.storage: Invalid value: "object": storage is immutable/);
});
