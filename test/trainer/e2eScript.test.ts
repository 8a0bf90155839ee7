// scripts/btx-e2e.ts: its learning-rate flags reach the stages they name (they used to be parsed and
// ignored), bad values are refused naming the flag, its defaults are docs/trainer.md's run B,
// and its baselines get the training FLOPs of BTX's experts + finetune (numbers worked out by hand).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { e2eStages, parseE2eArgs } from '../../scripts/btx-e2e.js';

const INPUTS = { seedCheckpoint: '/w/seed/step-150', mixedDir: '/w/mixed' };

test('scripts/btx-e2e.ts: trains experts and the dense baseline at --expert-lr, the finetune at --finetune-lr', () => {
  const o = parseE2eArgs(['--expert-lr', '5e-4', '--finetune-lr', '3e-3', '--expert-steps', '7']);
  const s = e2eStages(o, '/w', INPUTS);
  assert.equal(s.seed.learningRate, 3e-3);
  assert.deepEqual(
    s.experts.map((e) => [e.data.map((d) => d.name).join(), e.learningRate, e.steps, e.input]),
    [
      ['math', 5e-4, 7, INPUTS.seedCheckpoint],
      ['code', 5e-4, 7, INPUTS.seedCheckpoint],
      ['prose', 5e-4, 7, INPUTS.seedCheckpoint],
    ],
  );
  assert.equal(s.dense.learningRate, 5e-4);
  // FLOP-matched (src/api/compute.ts): dense 123072 active parameters, the MoE of 3 experts + the
  // generalist with top-2 197312; (21 x 123072 + 100 x 197312) / 123072 = 181.3 steps at the same batch.
  assert.equal(s.dense.steps, 181);
  assert.deepEqual(
    s.dense.data.map((d) => d.name),
    ['math', 'code', 'prose'],
  );
  assert.equal(s.finetune.learningRate, 3e-3);
  assert.equal(s.finetune.input, INPUTS.mixedDir);
});

test('scripts/btx-e2e.ts: refuses bad values naming the flag', () => {
  assert.throws(() => parseE2eArgs(['--expert-lr', 'fast']), /--expert-lr must be a number > 0, got 'fast'/);
  assert.throws(() => parseE2eArgs(['--finetune-lr', '0']), /--finetune-lr must be a number > 0/);
  assert.throws(() => parseE2eArgs(['--seed-steps', '1.5']), /--seed-steps must be an integer >= 1/);
  assert.throws(() => parseE2eArgs(['--router', 'top2']), /--router must be one of/);
  assert.throws(() => parseE2eArgs(['--combine', 'mean']), /--combine must be one of average, seed/);
  assert.throws(() => parseE2eArgs(['--d-model', '0']), /--d-model must be an integer >= 1/);
  assert.throws(() => parseE2eArgs(['--balance=-1']), /--balance must be a number >= 0/);
});

test('scripts/btx-e2e.ts: without flags it runs the recipe docs/trainer.md calls run B', () => {
  const doc = readFileSync(join(import.meta.dirname, '..', '..', 'docs', 'trainer.md'), 'utf8');
  const row = /\| B \| d64 L2 \| (\d+) \| (\d+), ([\d.e-]+) \| (\d+), ([\d.e-]+), \d+% \| (\w+) \|/.exec(doc);
  assert.ok(row, 'docs/trainer.md has run B');
  const [, seedSteps, expertSteps, expertLr, finetuneSteps, finetuneLr, combine] = row;
  const o = parseE2eArgs([]);
  assert.deepEqual(
    [o.seedSteps, o.expertSteps, o.expertLr, o.finetuneSteps, o.finetuneLr, o.combine],
    [
      Number(seedSteps),
      Number(expertSteps),
      Number(expertLr),
      Number(finetuneSteps),
      Number(finetuneLr),
      combine,
    ],
  );
  assert.deepEqual([o.model.dModel, o.model.layers], [64, 2]);
  const s = e2eStages(o, '/w', INPUTS);
  assert.ok(s.experts.every((e) => e.learningRate === o.expertLr));
  assert.equal(s.finetune.learningRate, o.finetuneLr);
});

test('scripts/btx-e2e.ts: dense and sparse upcycling spend what BTX spends after the seed, within 1%', () => {
  const s = e2eStages(parseE2eArgs([]), '/w', INPUTS);
  // Per token: dense 6 x 123,072 = 738,432 FLOPs (2 layers x (attention 4*64*64 + ffn 3*64*192) +
  // head 64*259), MoE top-2 of 4 6 x 197,312 = 1,183,872 (two ffns + router 64*4 per layer);
  // BTX = 3 x 100 dense + 100 MoE steps = 339,916,800 per token of a step: dense 460.3 -> 460 steps,
  // sparse upcycling 287.1 -> 287 (MoE steps).
  assert.equal(s.dense.steps, 460);
  assert.equal(s.upcycled.steps, 287);
  assert.equal(s.upcycled.input, '/w/upcycled-mix');
  assert.equal(s.budgets.btx.flops, 339_916_800 * 8 * 64);
  for (const b of [s.budgets.dense, s.budgets.sparseUpcycling])
    assert.ok(Math.abs(b.relativeToBtx - 1) < 0.01);
});
