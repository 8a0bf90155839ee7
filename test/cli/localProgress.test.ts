import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BTXRun } from '../../src/api/types.js';
import {
  failureReason,
  formatDuration,
  progressBar,
  ProgressView,
  renderCheckpoints,
  renderProgress,
  renderCompute,
  renderResults,
  renderRouting,
  renderSummary,
} from '../../src/cli/progressView.js';
import { parseManifests } from '../../src/cli/manifests.js';
import { parseLocalArgs } from '../../src/cli/localArgs.js';

const t0 = Date.parse('2026-01-01T00:00:00Z');

function run(status: BTXRun['status']): BTXRun {
  return {
    apiVersion: 'btx.ai/v1alpha1',
    kind: 'BTXRun',
    metadata: { name: 'tiny', namespace: 'default', creationTimestamp: new Date(t0) },
    spec: {
      seed: { train: { data: '/btx/data', steps: 10 } },
      domains: [
        { name: 'math', data: '/btx/data/math' },
        { name: 'code', data: '/btx/data/code' },
      ],
      eval: { enabled: true },
    } as unknown as BTXRun['spec'],
    status,
  };
}

const training = run({
  phase: 'TrainingExperts',
  expertsReady: '1/2',
  restarts: 1,
  tokenize: {
    phase: 'Succeeded',
    startTime: '2026-01-01T00:00:00Z',
    completionTime: '2026-01-01T00:00:04Z',
    tokens: '/btx/tokens/0123456789abcdef',
    domains: [
      { name: 'math', phase: 'Succeeded', tokens: 3000, reused: true },
      { name: 'code', phase: 'Succeeded', tokens: 1000, parts: 2 },
      { name: '_seed', phase: 'Succeeded', tokens: 4000 },
    ],
  },
  seed: { phase: 'Succeeded', startTime: '2026-01-01T00:00:04Z', completionTime: '2026-01-01T00:00:24Z' },
  experts: [
    { name: 'math', phase: 'Succeeded', attempt: 1, restarts: 0, step: 150, totalSteps: 150, loss: 1.234 },
    {
      name: 'code',
      phase: 'Running',
      attempt: 2,
      restarts: 1,
      step: 75,
      totalSteps: 150,
      loss: 2.5,
      lastFailure: { attempt: 1, reason: 'Error', message: 'exit 1', countsAgainstBudget: true, time: '' },
    },
  ],
});

test('progressBar fills in proportion and stays inside its width', () => {
  assert.equal(progressBar(5, 10, 10), '[#####-----]');
  assert.equal(progressBar(20, 10, 4), '[####]');
  assert.equal(progressBar(0, 0, 4), '[----]');
});

test('formatDuration reads as seconds, minutes, hours', () => {
  assert.equal(formatDuration(4_500), '4s');
  assert.equal(formatDuration(125_000), '2m05s');
  assert.equal(formatDuration(3_720_000), '1h02m');
});

test('the live view has one line per expert with bar, step/total, loss, restarts, attempt', () => {
  const lines = renderProgress(training, t0 + 65_000);
  assert.match(
    lines[0] ?? '',
    /^BTXRun default\/tiny {2}TrainingExperts {2}experts 1\/2 {2}restarts 1 {2}1m05s$/,
  );
  assert.equal(lines[1], '  tokenize  Succeeded (4s)  3/3 tokenized, 8000 tokens, 1 reused, code in 2 parts');
  assert.match(lines[2] ?? '', /seed\s+Succeeded \(20s\)/);
  assert.match(
    lines[3] ?? '',
    /math\s+\[#{24}\]\s+150\/150 {2}loss {2}1\.234 {2}restarts 0 {2}attempt 1 {2}Succeeded/,
  );
  assert.match(
    lines[4] ?? '',
    /code\s+\[#{12}-{12}\]\s+75\/150 {2}loss {2}2\.500 {2}restarts 1 {2}attempt 2 {2}Running {2}last failure: Error/,
  );
  assert.deepEqual(
    lines.slice(5).map((l) => l.trim()),
    ['mix       waiting', 'finetune  waiting', 'eval      waiting'],
  );
});

test('a running seed or finetune stage shows the progress its pod reports', () => {
  const seeding = run({ phase: 'Seeding', seed: { phase: 'Running', startTime: '2026-01-01T00:00:00Z' } });
  const progress = { step: 5, totalSteps: 10, loss: 3.21, tokensPerSecond: null, time: '' };
  const lines = renderProgress(seeding, t0 + 3000, { seed: progress });
  assert.match(lines[2] ?? '', /seed\s+\[#{12}-{12}\] {2}5\/10 {2}loss 3\.210 {2}Running \(3s\)/);
  assert.match(
    renderSummary(seeding, t0 + 3000, { seed: progress }),
    /^\[3s\] Seeding \| seed 5\/10 loss 3\.210/,
  );
});

test('experts without status yet show as waiting', () => {
  const lines = renderProgress(run({}), t0);
  assert.match(lines[0] ?? '', /Pending {2}experts 0\/2/);
  assert.equal(lines[1]?.trim(), 'tokenize  waiting');
  assert.equal(lines[3]?.trim(), 'math      waiting');
});

const done = run({
  phase: 'Succeeded',
  experts: [
    {
      name: 'math',
      phase: 'Succeeded',
      attempt: 1,
      restarts: 0,
      checkpoint: '/btx/runs/default/tiny/experts/math/step-150',
    },
  ],
  mix: { phase: 'Succeeded', checkpoint: '/btx/runs/default/tiny/mixed' },
  results: [
    { model: 'btx', domain: 'math', loss: 1, perplexity: 2.5 },
    { model: 'seed', domain: 'math', loss: 1, perplexity: 4 },
    { model: 'math', domain: 'math', loss: 1, perplexity: 2.2 },
    { model: 'seed', domain: 'code', loss: 1, perplexity: 5 },
    { model: 'math', domain: 'code', loss: 1, perplexity: 6 },
    { model: 'btx', domain: 'code', loss: 1, perplexity: 3 },
  ],
  routing: [
    { domain: 'math', expert: 'math', share: 0.75 },
    { domain: 'math', expert: 'seed', share: 0.25 },
  ],
});

test('the results table lists seed, experts, then the BTX model, and marks the best per domain and mean', () => {
  const lines = renderResults(done);
  assert.match(lines[0] ?? '', /perplexity/);
  // Mean: exp of the mean loss; every loss here is 1, so every mean is e (and every row best).
  assert.deepEqual(lines.slice(1), [
    'model  math   code   mean',
    'seed   4.00   5.00   2.72*',
    'math   2.20*  6.00   2.72*',
    'btx    2.50   3.00*  2.72*',
  ]);
});

test('baselines follow the BTX model; the mean column is status.meanResults', () => {
  const results = ['seed', 'math', 'btx', 'btm', 'sparseUpcycling', 'dense'].flatMap((model, i) =>
    ['math', 'code'].map((domain, j) => ({
      model,
      domain,
      loss: 1 + i / 10 + j / 10,
      perplexity: 9 - i - j,
    })),
  );
  const lines = renderResults(run({ results }));
  assert.deepEqual(
    lines.slice(2).map((l) => l.split(/\s+/)[0]),
    ['seed', 'math', 'btx', 'dense', 'sparseUpcycling', 'btm'],
  );
  assert.match(
    lines[2] ?? '',
    /^seed\s+9\.00\s+8\.00\s+2\.86\*$/,
    'exp(mean of 1.0 and 1.1) = 2.8577, the best mean',
  );
  const given = renderResults(
    run({ results, meanResults: [{ model: 'dense', loss: 0, perplexity: 1.5, domains: 2 }] }),
  );
  assert.match(given.find((l) => l.startsWith('dense')) ?? '', /1\.50\*$/);
  assert.match(given.find((l) => l.startsWith('btx')) ?? '', /-\s*$/, 'no mean given for btx');
});

test('the compute table shows BTX and each trained baseline against it', () => {
  const compute = [
    { model: 'btx' as const, steps: 190, tokens: 97280, flops: 7.2e10, relativeToBtx: 1 },
    { model: 'dense' as const, steps: 245, tokens: 125440, flops: 7.21e10, relativeToBtx: 1.0014 },
  ];
  assert.deepEqual(renderCompute(run({ compute })).slice(1), [
    'model  steps  tokens      FLOPs   of BTX',
    'btx      190   97280  7.200e+10  100.00%',
    'dense    245  125440  7.210e+10  100.14%',
  ]);
  assert.deepEqual(renderCompute(run({})), []);
});

test('routing shares print as percentages per domain and expert', () => {
  assert.deepEqual(renderRouting(done).slice(1), ['domain   math   seed', 'math    75.0%  25.0%']);
  assert.deepEqual(renderRouting(run({})), []);
});

test('checkpoint paths are shown on this machine', () => {
  const lines = renderCheckpoints(done, (p) => p.replace('/btx', '/host/pvc'));
  assert.deepEqual(lines, [
    'Checkpoints:',
    '  expert math  /host/pvc/runs/default/tiny/experts/math/step-150',
    '  mixed        /host/pvc/runs/default/tiny/mixed',
  ]);
});

test('a failed run says why: the Failed condition and each failed expert', () => {
  const failed = run({
    phase: 'Failed',
    conditions: [
      {
        type: 'Failed',
        status: 'True',
        reason: 'ExpertFailed',
        message: 'expert code failed for good',
        lastTransitionTime: '',
      },
    ],
    experts: [
      {
        name: 'code',
        phase: 'Failed',
        attempt: 1,
        restarts: 0,
        lastFailure: {
          attempt: 1,
          reason: 'Error',
          message: 'no data at /btx/data/nope',
          countsAgainstBudget: true,
          time: '',
        },
      },
    ],
  });
  assert.equal(
    failureReason(failed),
    'ExpertFailed: expert code failed for good\n  expert code (attempt 1): Error: no data at /btx/data/nope',
  );
});

test('on a terminal the view redraws in place; otherwise it prints a line per change', () => {
  const tty: string[] = [];
  const view = new ProgressView({ isTTY: true, write: (s) => tty.push(s) });
  view.update(training, t0);
  view.update(training, t0 + 1000);
  assert.ok(!tty[0]?.includes('\x1b[8F'));
  assert.ok(tty[1]?.startsWith('\x1b[8F'), 'moves back up over the 8 lines drawn');

  const plain: string[] = [];
  const log = new ProgressView({ isTTY: false, write: (s) => plain.push(s) }, 10_000);
  log.update(training, t0);
  log.update(training, t0 + 1000); // nothing new
  log.update(done, t0 + 2000); // phase changed
  log.update(done, t0 + 13_000); // periodic
  assert.equal(plain.length, 3);
  assert.ok(plain.every((l) => !l.includes('\x1b')));
});

test('manifests: several documents, empty ones skipped, non-objects named', () => {
  const objs = parseManifests(
    '---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n---\napiVersion: btx.ai/v1alpha1\nkind: BTXRun\n',
  );
  assert.deepEqual(
    objs.map((o) => o.kind),
    ['Namespace', 'BTXRun'],
  );
  assert.throws(() => parseManifests('- 1\n'), /document 1: not a Kubernetes object/);
});

test('btx local flags: defaults, and numbers are checked', () => {
  const opts = parseLocalArgs([]);
  assert.ok(opts !== 'help');
  assert.match(opts.file, /examples\/btxrun-local\.yaml$/);
  assert.ok(opts.dataDir.endsWith('.btx/local'));
  assert.equal(opts.keepRunning, false);
  assert.equal(parseLocalArgs(['-h']), 'help');
  assert.throws(() => parseLocalArgs(['--timeout', 'soon']), /--timeout must be an integer >= 0, got 'soon'/);
});

test("the compute table says what share of BTX's compute its finetune took", () => {
  const compute = [
    {
      model: 'btx' as const,
      steps: 190,
      tokens: 97280,
      flops: 7.2e10,
      relativeToBtx: 1,
      finetuneShare: 0.2627,
    },
  ];
  assert.equal(
    renderCompute(run({ compute })).at(-1),
    "BTX's finetune is 26.3% of its compute (the paper: 23%; finetune.computeShare sets it).",
  );
});
