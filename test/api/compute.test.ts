// The compute accounting behind the baselines' budgets (src/api/compute.ts): FLOPs = 6 x active
// parameters x tokens, checked against numbers worked out by hand, and the 2% match the example promises.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { applyDefaults, type BTXRunSpecInput } from '../../src/api/defaults.js';
import { computeBudgets, denseActiveParameters, moeActiveParameters } from '../../src/api/compute.js';
import type { BTXRunSpec } from '../../src/api/types.js';

const storage = { persistentVolumeClaim: { claimName: 'btx-data' } };

const cases: {
  name: string;
  spec: BTXRunSpecInput;
  dense: number;
  moe: number;
  btx: { steps: number; tokens: number; flops: number; finetuneShare: number };
  denseBudget: { steps: number; flops: number };
  sparseBudget: { steps: number; flops: number };
}[] = [
  {
    // attention 2*16*16 + 2*16*16 = 1024, ffn 3*16*32 = 1536, head 16*256 = 4096: dense 6656.
    // MoE of 3 experts, top 2: 1024 + 2*1536 + 16*3 (router) + 4096 = 8240.
    // experts 3 x 6 steps x 2 x 16 = 576 tokens -> 6*6656*576 = 23003136; finetune 2 x 2 x 16 = 64
    // tokens -> 6*8240*64 = 3164160; BTX 26167296. dense: 26167296 / (6*6656*32) = 20.48 -> 20 steps;
    // sparse upcycling: 26167296 / (6*8240*32) = 16.54 -> 17 steps.
    name: 'three domains, no generalist, top-2, MHA, window = seqLen',
    spec: {
      storage,
      model: { vocabSize: 256, dModel: 16, layers: 1, heads: 2, ffnHidden: 32, seqLen: 16 },
      seed: { checkpoint: '/btx/seed' },
      domains: ['code', 'math', 'prose'].map((name) => ({ name, data: `/btx/data/${name}` })),
      expert: { steps: 6, batchSize: 2 },
      mix: { includeSeedAsExpert: false, router: { type: 'topK', k: 2 } },
      finetune: { steps: 2, batchSize: 2 },
      baselines: ['dense', 'sparseUpcycling'],
    },
    dense: 6656,
    moe: 8240,
    btx: { steps: 20, tokens: 640, flops: 26167296, finetuneShare: 3164160 / 26167296 },
    denseBudget: { steps: 20, flops: 25559040 },
    sparseBudget: { steps: 17, flops: 26895360 },
  },
  {
    // GQA (1 kv head of 4): attention 2*64 + 2*8*4 = 192, ffn 3*8*16 = 384, head 8*10 = 80:
    // dense 2*(192+384) + 80 = 1232. Generalist + 2 domains = 3 experts, soft routing (all active):
    // 2*(192 + 3*384 + 8*3) + 80 = 2816. Window 512 capped at 256.
    // experts (10 + 20) x 4 x 256 = 30720 tokens -> 227082240; finetune 5 x 2 x 256 = 2560 tokens
    // -> 43253760; BTX 270336000. dense: / (6*1232*1024) = 35.71 -> 36; sparse: / (6*2816*512) = 31.25 -> 31.
    name: 'two domains (one with its own steps), generalist, soft router, GQA, window capped at 256',
    spec: {
      storage,
      model: { vocabSize: 10, dModel: 8, layers: 2, heads: 2, kvHeads: 1, ffnHidden: 16, seqLen: 512 },
      seed: { checkpoint: '/btx/seed' },
      domains: [
        { name: 'a', data: '/btx/a', steps: 10 },
        { name: 'b', data: '/btx/b' },
      ],
      expert: { steps: 20, batchSize: 4 },
      mix: { includeSeedAsExpert: true, router: { type: 'soft', k: 1 } },
      finetune: { steps: 5, batchSize: 2 },
      baselines: ['btm', 'sparseUpcycling', 'dense'],
    },
    dense: 1232,
    moe: 2816,
    btx: { steps: 35, tokens: 33280, flops: 270336000, finetuneShare: 43253760 / 270336000 },
    denseBudget: { steps: 36, flops: 272498688 },
    sparseBudget: { steps: 31, flops: 268173312 },
  },
];

for (const c of cases) {
  test(`compute: ${c.name}`, () => {
    const spec = applyDefaults(c.spec);
    const m = spec.model!;
    const experts = spec.domains.length + (spec.mix.includeSeedAsExpert ? 1 : 0);
    const active = spec.mix.router.type === 'soft' ? experts : spec.mix.router.k;
    assert.equal(denseActiveParameters(m), c.dense);
    assert.equal(moeActiveParameters(m, experts, active), c.moe);
    const [btx, dense, sparse, ...rest] = computeBudgets(spec);
    assert.deepEqual(btx, { model: 'btx', ...c.btx, relativeToBtx: 1 });
    assert.deepEqual(
      { model: dense?.model, steps: dense?.steps, flops: dense?.flops },
      { model: 'dense', ...c.denseBudget },
    );
    assert.deepEqual(
      { model: sparse?.model, steps: sparse?.steps, flops: sparse?.flops },
      { model: 'sparseUpcycling', ...c.sparseBudget },
    );
    assert.equal(dense?.relativeToBtx, c.denseBudget.flops / c.btx.flops);
    assert.deepEqual(rest, [], 'btm trains nothing: no budget');
  });
}

test('compute: no baselines asked for, only what BTX spends; no model, nothing to count', () => {
  const spec = applyDefaults(cases[0]!.spec);
  assert.deepEqual(
    computeBudgets({ ...spec, baselines: ['btm'] }).map((b) => b.model),
    ['btx'],
  );
  const { model: _, ...noModel } = spec;
  assert.deepEqual(computeBudgets(noModel as BTXRunSpec), []);
});

test('compute: the baselines example matches BTX within 2%', () => {
  const doc = parse(
    readFileSync(join(import.meta.dirname, '../../examples/btxrun-baselines.yaml'), 'utf8'),
  ) as {
    spec: BTXRunSpecInput;
  };
  const budgets = computeBudgets(applyDefaults(doc.spec));
  assert.deepEqual(
    budgets.map((b) => b.model),
    ['btx', 'dense', 'sparseUpcycling'],
  );
  for (const b of budgets) {
    assert.ok(Math.abs(b.relativeToBtx - 1) <= 0.02, `${b.model}: ${b.relativeToBtx} of BTX's FLOPs`);
  }
});
