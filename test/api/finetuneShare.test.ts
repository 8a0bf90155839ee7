// spec.finetune.computeShare (src/api/compute.ts finetuneStepsForShare, applied by applyDefaults):
// the finetune steps that make the finetune that share of BTX's FLOPs, against numbers worked out by
// hand, the share status.compute reports back, and the model it needs.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { applyDefaults, type BTXRunSpecInput } from '../../src/api/defaults.js';
import { btxCompute, finetuneStepsForShare } from '../../src/api/compute.js';
import { validateRun } from '../../src/api/validation.js';
import { API_VERSION, KIND, type BTXRun } from '../../src/api/types.js';

// The model of compute.test.ts' first case: dense 6656 active parameters, the MoE of 3 experts
// (top 2) 8240. One finetune step: 6 x 8240 x 2 x 16 = 1582080 FLOPs.
const input = (expertSteps: number, finetune: BTXRunSpecInput['finetune']): BTXRunSpecInput => ({
  storage: { persistentVolumeClaim: { claimName: 'btx-data' } },
  model: { vocabSize: 256, dModel: 16, layers: 1, heads: 2, ffnHidden: 32, seqLen: 16 },
  seed: { checkpoint: '/btx/seed' },
  domains: ['code', 'math', 'prose'].map((name) => ({ name, data: `/btx/data/${name}` })),
  expert: { steps: expertSteps, batchSize: 2 },
  mix: { includeSeedAsExpert: false, router: { type: 'topK', k: 2 } },
  ...(finetune ? { finetune } : {}),
});

test("computeShare 0.23 (the paper): steps = 0.23 / 0.77 x the experts' FLOPs / one step's, rounded", () => {
  // Experts 3 x 600 x 2 x 16 = 57600 tokens -> 6 x 6656 x 57600 = 2300313600 FLOPs;
  // 0.23 / 0.77 x 2300313600 = 687106560 -> / 1582080 = 434.30 -> 434 steps.
  const spec = applyDefaults(input(600, { steps: 7, batchSize: 2, computeShare: 0.23 }));
  assert.equal(spec.finetune.steps, 434, 'computeShare decides; finetune.steps is ignored');
  assert.equal(finetuneStepsForShare(spec, spec.model!, 0.23), 434);
  // 434 x 1582080 = 686622720 of 2300313600 + 686622720 = 2986936320: 0.22988.
  const btx = btxCompute(spec, spec.model!);
  assert.equal(btx.finetuneShare, 686622720 / 2986936320);
  assert.ok(Math.abs((btx.finetuneShare ?? 0) - 0.23) < 0.001);
});

test('computeShare: a small budget still gets one step; without computeShare finetune.steps stands', () => {
  // Experts 3 x 6 x 2 x 16 = 576 tokens -> 23003136 FLOPs; a share of 0.01 is 232355 FLOPs, 0.15 steps -> 1.
  assert.equal(applyDefaults(input(6, { batchSize: 2, computeShare: 0.01 })).finetune.steps, 1);
  // 0.5: as much as the experts, 23003136 / 1582080 = 14.54 -> 15 steps.
  assert.equal(applyDefaults(input(6, { batchSize: 2, computeShare: 0.5 })).finetune.steps, 15);
  assert.equal(applyDefaults(input(6, { steps: 7, batchSize: 2 })).finetune.steps, 7);
});

test('computeShare needs model; it must lie strictly between 0 and 1', () => {
  const run = (spec: BTXRunSpecInput): BTXRun => ({
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name: 'r', namespace: 'default' },
    spec: spec as never,
  });
  const { model: _, ...noModel } = input(6, { computeShare: 0.23 });
  assert.deepEqual(
    validateRun(run(noModel)).map((e) => e.field),
    ['spec.model'],
  );
  assert.match(
    validateRun(run(noModel))[0]?.message ?? '',
    /model is required when finetune\.computeShare is set/,
  );
  for (const share of [0, 1, 1.5]) {
    const errors = validateRun(run(input(6, { computeShare: share })));
    assert.deepEqual(
      errors.map((e) => e.field),
      ['spec.finetune.computeShare'],
      `share ${share}`,
    );
  }
  assert.deepEqual(validateRun(run(input(6, { computeShare: 0.23 }))), []);
});
