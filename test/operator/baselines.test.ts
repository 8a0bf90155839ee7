// The baselines (spec.baselines) in plan(): their Jobs start beside the experts as soon as the seed is
// there, with the budgets of src/api/compute.ts; eval waits for them and evaluates every model; a
// failing baseline fails the run like any stage; suspend stops them and resume starts them again.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { computeBudgets } from '../../src/api/compute.js';
import type { BTXRun } from '../../src/api/types.js';
import { parseFlags } from '../../src/cli/flags.js';
import { parseMixArgs } from '../../src/cli/mix.js';
import {
  EVAL_COMMAND,
  evalSettingsFromFlags,
  TRAIN_COMMAND,
  trainSettingsFromFlags,
} from '../../src/cli/trainArgs.js';
import { at, env, eventReasons, kinds, makeRun, makeSpec, World } from './fixtures.js';

const ALL = ['dense', 'sparseUpcycling', 'btm'] as const;

/** The run's Jobs after the tokenize stage's (test/operator/tokenize.test.ts covers those). */
function jobNames(w: World): string[] {
  return [...w.jobs.keys()].filter((n) => !n.includes('tokenize')).sort();
}

function cond(w: World, type: string) {
  return w.run.status?.conditions?.find((c) => c.type === type);
}

test('dense and the upcycling mix start with the experts once the seed is done, with matched budgets', () => {
  const w = new World(makeRun({ baselines: [...ALL] }));
  w.throughTokenize();
  w.step();
  assert.deepEqual(jobNames(w), ['demo-seed'], 'nothing waits on the seed but the seed');
  w.completeJob('demo-seed', { checkpoint: '/btx/runs/ml/demo/seed/step-4' });
  const p = w.step();
  assert.equal(p.status.phase, 'TrainingExperts');
  assert.equal(kinds(p, 'createPod').length, 3, 'one pod per expert');
  assert.deepEqual(jobNames(w), ['demo-dense', 'demo-seed', 'demo-sparse-upcycling-mix']);
  const budgets = computeBudgets(w.run.spec);
  assert.deepEqual(p.status.compute, budgets);
  const dense = env(w.job('demo-dense'));
  assert.equal(dense.BTX_STAGE, 'dense');
  assert.equal(dense.BTX_INPUT, '/btx/runs/ml/demo/seed/step-4');
  assert.equal(dense.BTX_DATA, 'code=/btx/data/code.txt,math=/btx/data/math.txt,prose=/btx/data/prose.txt');
  assert.equal(dense.BTX_STEPS, String(budgets.find((b) => b.model === 'dense')?.steps));
  assert.equal(dense.BTX_OUTPUT, '/btx/runs/ml/demo/baselines/dense');
  assert.deepEqual(w.job('demo-dense').spec?.template.spec?.containers[0]?.args, ['train', 'expert']);
  const mix = env(w.job('demo-sparse-upcycling-mix'));
  assert.equal(mix.BTX_EXPERTS, Array(3).fill('/btx/runs/ml/demo/seed/step-4').join(','));
  assert.equal(mix.BTX_ROUTER_INIT, 'zeros', "BTX's router init");
  assert.equal(mix.BTX_OUTPUT, '/btx/runs/ml/demo/baselines/upcycled');
  assert.deepEqual(w.job('demo-sparse-upcycling-mix').spec?.template.spec?.containers[0]?.args, ['mix']);
  // btx mix refuses two experts of one name: the copies are named (before: the Job failed on it).
  const parsed = parseMixArgs([], mix);
  assert.ok(parsed !== 'help');
  assert.deepEqual(
    parsed.experts.map((e) => e.name),
    ['seed-copy-1', 'seed-copy-2', 'seed-copy-3'],
  );
});

test('the upcycled MoE is trained with the finetune recipe for its budget once its mix is done', () => {
  const w = pastSeed(makeRun({ baselines: ['sparseUpcycling'] }));
  w.completeJob('demo-sparse-upcycling-mix', { checkpoint: '/btx/runs/ml/demo/baselines/upcycled' });
  const p = w.step(at(10));
  assert.equal(p.status.phase, 'TrainingExperts');
  assert.equal(p.status.sparseUpcyclingMix?.phase, 'Succeeded');
  const ft = env(w.job('demo-sparse-upcycling'));
  assert.equal(ft.BTX_INPUT, '/btx/runs/ml/demo/baselines/upcycled');
  assert.equal(
    ft.BTX_STEPS,
    String(computeBudgets(w.run.spec).find((b) => b.model === 'sparseUpcycling')?.steps),
  );
  assert.equal(ft.BTX_LEARNING_RATE, String(w.run.spec.finetune.learningRate));
  assert.equal(ft.BTX_LOAD_BALANCING_COEF, String(w.run.spec.finetune.loadBalancingCoef));
  assert.deepEqual(w.job('demo-sparse-upcycling').spec?.template.spec?.containers[0]?.args, [
    'train',
    'finetune',
  ]);
});

/** Tokenized and seeded: the experts and the side stages have just been started. */
function pastSeed(run: BTXRun): World {
  const w = new World(run);
  w.throughTokenize();
  w.step();
  w.completeJob('demo-seed', { checkpoint: '/btx/runs/ml/demo/seed/step-4' });
  w.step();
  return w;
}

/** Seed, experts, mix and finetune done; the baselines' Jobs still as the world has them. */
function throughFinetune(run: BTXRun): World {
  const w = new World(run);
  w.throughExperts();
  w.completeJob('demo-mix', { checkpoint: '/btx/runs/ml/demo/mixed' });
  w.step();
  w.completeJob('demo-finetune', { checkpoint: '/btx/runs/ml/demo/finetuned/step-2' });
  w.step();
  return w;
}

test('eval waits for the trained baselines, then evaluates every model, BTM from the experts', () => {
  const w = throughFinetune(makeRun({ baselines: [...ALL] }));
  assert.equal(w.run.status?.phase, 'TrainingBaselines');
  assert.equal(w.jobs.has('demo-eval'), false);
  w.completeJob('demo-dense', { checkpoint: '/btx/runs/ml/demo/baselines/dense/step-9' });
  w.completeJob('demo-sparse-upcycling-mix', { checkpoint: '/btx/runs/ml/demo/baselines/upcycled' });
  w.step();
  assert.equal(w.run.status?.phase, 'TrainingBaselines', 'the upcycled MoE still trains');
  assert.equal(w.jobs.has('demo-eval'), false);
  w.completeJob('demo-sparse-upcycling', {
    checkpoint: '/btx/runs/ml/demo/baselines/sparse-upcycling/step-7',
  });
  w.step();
  assert.equal(w.run.status?.phase, 'Evaluating');
  const ev = env(w.job('demo-eval'));
  const checkpoints = (ev.BTX_CHECKPOINTS ?? '').split(',').map((c) => c.split('=')[0]);
  assert.deepEqual(checkpoints, ['btx', 'seed', 'code', 'math', 'prose', 'dense', 'sparseUpcycling']);
  assert.match(ev.BTX_CHECKPOINTS ?? '', /dense=\/btx\/runs\/ml\/demo\/baselines\/dense\/step-9/);
  assert.equal(
    ev.BTX_BTM_EXPERTS,
    ['code', 'math', 'prose'].map((d) => `${d}=/btx/runs/ml/demo/experts/${d}/step-6`).join(','),
  );
  const results = [
    { model: 'btx', domain: 'code', loss: 1, perplexity: Math.exp(1) },
    { model: 'btx', domain: 'math', loss: 2, perplexity: Math.exp(2) },
    { model: 'btm', domain: 'code', loss: 1.5, perplexity: Math.exp(1.5) },
  ];
  w.completeJob('demo-eval', { results });
  const p = w.step(at(200));
  assert.equal(p.status.phase, 'Succeeded');
  assert.deepEqual(p.status.meanResults, [
    { model: 'btx', loss: 1.5, perplexity: Math.exp(1.5), domains: 2 },
    { model: 'btm', loss: 1.5, perplexity: Math.exp(1.5), domains: 1 },
  ]);
});

test('a baseline that finishes before the experts does not move the run on; BTX still gates eval', () => {
  const w = new World(makeRun({ seed: { checkpoint: '/btx/s' }, baselines: ['dense'] }));
  w.throughTokenize();
  w.step();
  assert.ok(w.jobs.has('demo-dense'), 'a given seed: dense starts at once');
  w.completeJob('demo-dense', { checkpoint: '/btx/runs/ml/demo/baselines/dense/step-9' });
  const p = w.step(at(5));
  assert.equal(p.status.phase, 'TrainingExperts');
  assert.equal(p.status.dense?.phase, 'Succeeded');
  assert.equal(kinds(p, 'createJob').length, 0);
});

test('a failed baseline Job fails the run with its reason and stops the experts', () => {
  const w = pastSeed(makeRun({ baselines: ['dense'] }));
  for (const d of ['code', 'math', 'prose']) w.setPod(`demo-expert-${d}-1`, { phase: 'Running' });
  w.jobs.set('demo-dense', {
    ...w.job('demo-dense'),
    status: {
      conditions: [{ type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded', message: 'gave up' }],
    },
  });
  const p = w.step(at(50));
  assert.equal(p.status.phase, 'Failed');
  assert.equal(cond(w, 'Failed')?.reason, 'DenseFailed');
  assert.match(
    cond(w, 'Failed')?.message ?? '',
    /dense stage failed: Job demo-dense failed \(BackoffLimitExceeded\)/,
  );
  assert.deepEqual(
    kinds(p, 'deletePod')
      .map((a) => (a.kind === 'deletePod' ? a.name : ''))
      .sort(),
    ['demo-expert-code-1', 'demo-expert-math-1', 'demo-expert-prose-1'],
  );
  assert.equal(kinds(p, 'createPod').length + kinds(p, 'createJob').length, 0);
  assert.ok(eventReasons(p).includes('StageFailed'));
});

test('suspend stops the baseline Jobs with the experts; resuming starts their attempt 2', () => {
  const w = new World(makeRun({ seed: { checkpoint: '/btx/s' }, baselines: ['dense', 'sparseUpcycling'] }));
  w.throughTokenize();
  w.step();
  w.run = { ...w.run, spec: { ...w.run.spec, suspend: true } };
  const p = w.step(at(10));
  assert.equal(p.status.phase, 'Suspended');
  const deleted = kinds(p, 'deleteJob').map((a) => (a.kind === 'deleteJob' ? a.name : ''));
  assert.deepEqual(deleted.sort(), ['demo-dense', 'demo-sparse-upcycling-mix']);
  assert.equal(p.status.dense?.attempt, 2);
  w.run = { ...w.run, spec: { ...w.run.spec, suspend: false } };
  w.step(at(20));
  assert.ok(w.jobs.has('demo-dense-2'));
  assert.ok(w.jobs.has('demo-sparse-upcycling-mix-2'));
});

test('without baselines nothing of theirs appears: no Jobs, no compute in status', () => {
  const w = new World(makeRun({ seed: { checkpoint: '/btx/s' } }));
  w.throughTokenize();
  const p = w.step();
  assert.deepEqual(jobNames(w), []);
  assert.equal(p.status.compute, undefined);
  assert.equal(p.status.dense, undefined);
});

test('the trainer reads the baseline Jobs back from their environment: dense trains an expert on every domain', () => {
  const w = new World(
    makeRun({
      seed: { checkpoint: '/btx/s' },
      baselines: [...ALL],
      finetune: { ...makeSpec().finetune, dataWeights: { code: 2, math: 1 } },
    }),
  );
  w.throughTokenize();
  w.step();
  const flags = parseFlags(TRAIN_COMMAND, [], env(w.job('demo-dense')));
  assert.ok(flags !== 'help');
  const dense = trainSettingsFromFlags('expert', flags);
  assert.deepEqual(dense.data, [
    { name: 'code', path: '/btx/data/code.txt' },
    { name: 'math', path: '/btx/data/math.txt' },
    { name: 'prose', path: '/btx/data/prose.txt' },
  ]);
  assert.deepEqual(dense.weights, [2, 1, 1], 'finetune.dataWeights, unnamed domains 1');
  assert.equal(dense.steps, computeBudgets(w.run.spec).find((b) => b.model === 'dense')?.steps);
  assert.equal(dense.input, '/btx/s');
});

test('the eval Job hands BTM its experts: btx eval reads them as the btm ensemble', () => {
  const w = throughFinetune(makeRun({ baselines: ['btm'] }));
  assert.equal(w.run.status?.phase, 'Evaluating', 'btm trains nothing: eval does not wait');
  const flags = parseFlags(EVAL_COMMAND, [], env(w.job('demo-eval')));
  assert.ok(flags !== 'help');
  const settings = evalSettingsFromFlags(flags);
  assert.deepEqual(
    settings.btm?.experts.map((e) => e.name),
    ['code', 'math', 'prose'],
  );
  assert.equal(settings.btm?.experts[0]?.dir, '/btx/runs/ml/demo/experts/code/step-6');
  assert.equal(settings.btm?.prior, undefined, 'uniform');
});

test('without btm the eval Job has no BTM experts, and btx eval reads it without asking for them', () => {
  const w = throughFinetune(makeRun());
  const ev = env(w.job('demo-eval'));
  assert.equal(ev.BTX_BTM_EXPERTS, undefined);
  const flags = parseFlags(EVAL_COMMAND, [], ev);
  assert.ok(flags !== 'help');
  assert.equal(evalSettingsFromFlags(flags).btm, undefined);
});
