// `btx local` when things go wrong: a run that fails exits non-zero with the reason (the Failed
// condition's message), an invalid manifest is refused before anything starts, and Ctrl-C during a
// run stops everything cleanly. No stack traces.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { waitFor } from '../support/waitFor.js';
import { startLocal } from './localRun.js';

const dir = mkdtempSync(join(tmpdir(), 'btx-local-fail-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function manifest(name: string, text: string): string {
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, text);
  return path;
}

const MISSING_DATA = `apiVersion: btx.ai/v1alpha1
kind: BTXRun
metadata:
  name: broken
spec:
  storage: {persistentVolumeClaim: {claimName: btx-data}}
  seed: {checkpoint: /btx/no-seed-here}
  domains:
    - {name: missing, data: /btx/data/does-not-exist}
  expert: {steps: 3, batchSize: 2, maxRestarts: 0}
`;

test('a run that fails exits 1 and prints why, naming the domain and the missing data', async () => {
  const path = manifest('broken', MISSING_DATA);
  const result = await startLocal(['-f', path, '--data-dir', join(dir, 'data'), '--timeout', '100'], 120_000)
    .done;
  assert.equal(result.code, 1, `${result.stdout}\n${result.stderr}`);
  assert.match(result.stdout, /Run failed: \w+: .*missing/);
  // The tokenize stage is the first to read the data (and the seed's tokenizer): it fails, saying why.
  assert.match(result.stdout, /TokenizeFailed: tokenizing missing failed: .*(does-not-exist|no-seed-here)/);
  assert.doesNotMatch(result.stdout + result.stderr, /^\s+at /m, 'no stack trace');
});

test('an invalid manifest is refused with the field named, exit 2, before anything starts', async () => {
  const path = manifest('invalid', MISSING_DATA.replace('name: missing', 'name: Missing_Data'));
  const result = await startLocal(['-f', path, '--data-dir', join(dir, 'never')], 60_000).done;
  assert.equal(result.code, 2);
  assert.match(result.stderr, /spec\.domains\[0\]\.name: Invalid value: "Missing_Data"/);
  assert.equal(result.stdout, '');
  assert.ok(!existsSync(join(dir, 'never')), 'nothing started');
});

test('a manifest that is not YAML is refused in one line, exit 2', async () => {
  const path = manifest('garbled', 'spec: {a: 1\n  b: [\n');
  const result = await startLocal(['-f', path, '--data-dir', join(dir, 'never')], 60_000).done;
  assert.equal(result.code, 2);
  assert.match(result.stderr, /^btx local: .*garbled\.yaml: document 1: /);
  assert.doesNotMatch(result.stderr, /^btx: /m);
});

/** Processes whose environment mentions `text` (pods of the embedded kubelet carry their data dir). */
function processesMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/environ`, 'latin1').includes(text)) pids.push(Number(entry));
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}

test('Ctrl-C during a run stops the pods and the cluster and exits 130', async () => {
  const slow = MISSING_DATA.replace('name: broken', 'name: slow')
    .replace('/btx/data/does-not-exist', '/btx/data/code')
    .replace(
      'seed: {checkpoint: /btx/no-seed-here}',
      'model: {dModel: 32, layers: 1, heads: 2, ffnHidden: 64, seqLen: 32}\n  seed: {train: {data: /btx/data/math, steps: 100000, batchSize: 2}}',
    );
  const dataDir = join(dir, 'data-int');
  const local = startLocal(['-f', manifest('slow', slow), '--data-dir', dataDir], 120_000);
  await local.waitForOutput('Seeding', 90_000);
  // The seed pod is a process of its own by now (or about to be); Ctrl-C must take it down too.
  await waitFor('a pod process of btx local', () => processesMentioning(dataDir).length > 0, 30_000);
  local.child.kill('SIGINT');
  const result = await local.done;
  assert.equal(result.code, 130, `${result.stdout}\n${result.stderr}`);
  assert.match(result.stderr, /stopping/);
  assert.deepEqual(processesMentioning(dataDir), [], 'no pod process outlives btx local');
});
