// `btx local` end to end with the real control plane, operator and trainer at tiny size: the run
// succeeds, the results table, routing, a sample per model and checkpoints are printed, the cluster
// answers kubectl while --keep-running holds it, and Ctrl-C then stops everything.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { kubectlPath } from '../support/tools.js';
import { startLocal } from './localRun.js';

const dir = mkdtempSync(join(tmpdir(), 'btx-local-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const TINY = `apiVersion: btx.ai/v1alpha1
kind: BTXRun
metadata:
  name: tiny
spec:
  storage: {persistentVolumeClaim: {claimName: btx-data}}
  model: {dModel: 32, layers: 1, heads: 2, ffnHidden: 64, seqLen: 32}
  seed: {train: {data: /btx/data, steps: 6, batchSize: 4}}
  domains:
    - {name: math, data: /btx/data/math}
    - {name: code, data: /btx/data/code}
    - {name: prose, data: /btx/data/prose}
  expert: {steps: 6, batchSize: 4, checkpointEvery: 3, backoffSeconds: 1}
  finetune: {steps: 3, batchSize: 4, checkpointEvery: 3}
  eval: {batches: 1}
`;

test('btx local runs a tiny BTX run to Succeeded and prints results, routing and checkpoints', async () => {
  const manifest = join(dir, 'tiny.yaml');
  writeFileSync(manifest, TINY);
  const dataDir = join(dir, 'data');
  const local = startLocal(
    ['-f', manifest, '--data-dir', dataDir, '--timeout', '170', '--keep-running'],
    200_000,
  );
  try {
    await local.waitForOutput('The cluster keeps running', 190_000);
    // Another terminal: kubectl with the printed kubeconfig sees the finished run.
    const kubeconfig = join(dataDir, 'kubeconfig');
    const { stdout } = await promisify(execFile)(kubectlPath(), ['--kubeconfig', kubeconfig, 'get', 'btx'], {
      timeout: 30_000,
    });
    assert.match(stdout, /^tiny\s+Succeeded\s+3\/3\s+0\s+/m);
  } finally {
    local.child.kill('SIGINT');
  }
  const result = await local.done;
  assert.equal(result.code, 0, `exit ${result.code} ${result.signal}\n${result.stdout}\n${result.stderr}`);
  const out = result.stdout;
  assert.match(out, new RegExp(`kubectl --kubeconfig ${join(dataDir, 'kubeconfig')} get btx -w`));
  assert.match(out, /metrics {4}http:\/\/127\.0\.0\.1:\d+\/metrics/);
  assert.match(out, /Succeeded/);
  const table = out.slice(out.indexOf('Held-out perplexity'));
  assert.match(table, /^model\s+math\s+code\s+prose\s+mean\s*$/m);
  for (const model of ['seed', 'math', 'code', 'prose', 'btx']) {
    assert.match(table, new RegExp(`^${model}(\\s+\\d+\\.\\d\\d[* ]?){4}\\s*$`, 'm'), `row ${model}`);
  }
  const marks = (table.split('Routing')[0]?.match(/\*/g) ?? []).length - 1;
  assert.equal(marks, 4, 'one best mark per domain and for the mean');
  assert.match(out, /Routing: share of each domain's tokens per expert/);
  // One sample per model, after the tables and before the checkpoints.
  const samples = out.slice(out.indexOf('Samples ('), out.indexOf('Checkpoints:'));
  assert.ok(out.indexOf('Routing:') < out.indexOf('Samples ('), 'samples after the results');
  for (const model of ['seed', 'math', 'code', 'prose', 'btx']) {
    assert.match(samples, new RegExp(`^ {2}${model}\\s+"(?:[^"\\\\]|\\\\.)*"$`, 'm'), `sample ${model}`);
  }
  const finetuned = /^ {2}finetuned\s+(\S+)$/m.exec(out)?.[1];
  assert.ok(
    finetuned && existsSync(join(finetuned, 'config.json')),
    `finetuned checkpoint on disk: ${finetuned}`,
  );
  assert.doesNotMatch(result.stderr, /^\s+at /m, 'no stack trace');
});
