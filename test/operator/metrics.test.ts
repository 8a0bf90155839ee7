import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createMetrics, METRIC_NAMES } from '../../src/operator/metrics.js';
import { makeRun } from './fixtures.js';

test('every name in METRIC_NAMES is registered, with process metrics beside them', async () => {
  const m = createMetrics();
  const names = (await m.registry.getMetricsAsJSON()).map((x) => x.name);
  for (const name of METRIC_NAMES) assert.ok(names.includes(name), name);
  assert.ok(names.includes('process_cpu_seconds_total'));
  assert.notEqual(createMetrics().registry, m.registry, 'a fresh registry per call');
});

test("a run's series appear from its status and all go when the run is deleted", async () => {
  const m = createMetrics();
  const run = makeRun();
  run.status = {
    phase: 'TrainingExperts',
    experts: [{ name: 'code', phase: 'Running', attempt: 2, restarts: 1, step: 3, totalSteps: 6, loss: 2.5 }],
    results: [{ model: 'btx', domain: 'code', loss: 1, perplexity: 2.7 }],
    meanResults: [{ model: 'dense', loss: 1.25, perplexity: 3.49, domains: 3 }],
    compute: [{ model: 'sparseUpcycling', steps: 17, tokens: 544, flops: 26895360, relativeToBtx: 1.03 }],
    routing: [{ domain: 'code', expert: 'code', share: 0.8 }],
    tokenize: {
      phase: 'Succeeded',
      domains: [
        { name: 'code', phase: 'Succeeded', tokens: 4321, documents: 9, bytes: 4000, heldOutTokens: 400 },
        { name: 'math', phase: 'Running' },
      ],
    },
  };
  m.observeRun(run);
  m.expertRestarted('ml', 'demo', 'code', 'Evicted');
  m.stageFinished('expert', 12);
  m.reconciled('success', 0.01);
  const text = await m.registry.metrics();
  assert.match(text, /btx_run_phase\{namespace="ml",name="demo",phase="TrainingExperts"\} 1/);
  assert.match(text, /btx_runs\{phase="TrainingExperts"\} 1/);
  assert.match(text, /btx_expert_progress_ratio\{namespace="ml",run="demo",expert="code"\} 0.5/);
  assert.match(text, /btx_expert_loss\{namespace="ml",run="demo",expert="code"\} 2.5/);
  assert.match(
    text,
    /btx_expert_restarts_total\{namespace="ml",run="demo",expert="code",reason="Evicted"\} 1/,
  );
  assert.match(text, /btx_eval_loss\{namespace="ml",run="demo",model="btx",domain="code"\} 1/);
  assert.match(text, /btx_routing_share\{namespace="ml",run="demo",domain="code",expert="code"\} 0.8/);
  assert.match(text, /btx_eval_mean_loss\{namespace="ml",run="demo",model="dense"\} 1.25/);
  assert.match(text, /btx_training_flops\{namespace="ml",run="demo",model="sparseUpcycling"\} 26895360/);
  assert.match(text, /btx_reconcile_total\{result="success"\} 1/);
  assert.match(text, /btx_tokenize_tokens\{namespace="ml",run="demo",domain="code"\} 4321/);
  assert.doesNotMatch(text, /btx_tokenize_tokens\{[^}]*domain="math"/, 'no series before its counts');
  run.status.phase = 'Mixing';
  m.observeRun(run);
  const moved = await m.registry.metrics();
  assert.doesNotMatch(moved, /phase="TrainingExperts"\} 1\n.*name="demo"/);
  assert.match(moved, /btx_runs\{phase="TrainingExperts"\} 0/);
  m.forgetRun('ml', 'demo');
  const after = await m.registry.metrics();
  assert.doesNotMatch(after, /run="demo"|name="demo"/);
  assert.match(after, /btx_runs\{phase="Mixing"\} 0/);
});

test("a new round drops the series its status no longer has: a removed expert, the finished round's results and routing", async () => {
  const m = createMetrics();
  const run = makeRun();
  const expert = (name: string) => ({
    name,
    phase: 'Succeeded' as const,
    attempt: 1,
    restarts: 0,
    step: 6,
    totalSteps: 6,
    loss: 2,
  });
  run.status = {
    phase: 'Succeeded',
    experts: [expert('code'), expert('math')],
    results: [{ model: 'btx', domain: 'math', loss: 1, perplexity: 2.7 }],
    meanResults: [{ model: 'btx', loss: 1, perplexity: 2.7, domains: 1 }],
    routing: [{ domain: 'math', expert: 'math', share: 0.8 }],
  };
  m.observeRun(run);
  assert.match(await m.registry.metrics(), /btx_expert_step\{namespace="ml",run="demo",expert="math"\} 6/);
  assert.match(await m.registry.metrics(), /btx_eval_mean_loss\{namespace="ml",run="demo",model="btx"\} 1/);
  // Round 2 without math: the status has no math expert and no results or routing yet.
  run.status = { phase: 'Mixing', experts: [expert('code')], round: 2 };
  m.observeRun(run);
  const text = await m.registry.metrics();
  assert.doesNotMatch(text, /expert="math"|domain="math"/);
  assert.doesNotMatch(text, /btx_eval_mean_loss\{/, "the finished round's means go with its results");
  assert.match(text, /btx_expert_step\{namespace="ml",run="demo",expert="code"\} 6/);
  m.forgetRun('ml', 'demo');
  assert.doesNotMatch(await m.registry.metrics(), /run="demo"/);
});
