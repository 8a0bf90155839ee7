import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '../../src/trainer/tfjs.js';
import {
  applyRotary,
  disposeParams,
  forward,
  initParams,
  modelDims,
  parameterShapes,
} from '../../src/trainer/model.js';
import type { Params } from '../../src/trainer/model.js';
import type { RouterType } from '../../src/trainer/hfConfig.js';
import { ropeInverseFrequencies } from '../../src/trainer/rope.js';
import { backend, tinyLlama, tinyMixtral } from './trainerFixtures.js';

before(backend);

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

/** A Mixtral whose every expert is the dense model's FFN (shared weights copied). */
function moeWithIdenticalExperts(dense: Params, experts: number, router: RouterType): Params {
  const d = modelDims(tinyMixtral(experts, router));
  const moe = initParams(d, 99); // routers random: the output must not depend on them
  for (const [name, v] of moe) {
    const m = /^(model\.layers\.\d+)\.block_sparse_moe\.experts\.\d+\.(w[123])\.weight$/.exec(name);
    const source = m
      ? `${m[1]}.mlp.${{ w1: 'gate_proj', w3: 'up_proj', w2: 'down_proj' }[m[2] as 'w1' | 'w2' | 'w3']}.weight`
      : name;
    if (dense.has(source)) v.assign(dense.get(source)!);
  }
  return moe;
}

test('Llama model: names and shapes parameters exactly as Hugging Face Llama does', () => {
  const shapes = new Map(parameterShapes(modelDims(tinyLlama())));
  assert.deepEqual(shapes.get('model.embed_tokens.weight'), [259, 32]);
  assert.deepEqual(shapes.get('model.layers.1.self_attn.q_proj.weight'), [32, 32]);
  assert.deepEqual(shapes.get('model.layers.1.self_attn.k_proj.weight'), [16, 32]); // 2 kv heads of 8
  assert.deepEqual(shapes.get('model.layers.0.mlp.down_proj.weight'), [32, 64]);
  assert.deepEqual(shapes.get('model.norm.weight'), [32]);
  assert.ok(shapes.has('lm_head.weight'));
  assert.ok(
    !new Map(parameterShapes(modelDims(tinyLlama({ tie_word_embeddings: true })))).has('lm_head.weight'),
  );
});

test('Llama model: names Mixtral experts and routers as Hugging Face Mixtral does', () => {
  const names = parameterShapes(modelDims(tinyMixtral(2))).map(([n]) => n);
  assert.ok(names.includes('model.layers.0.block_sparse_moe.gate.weight'));
  assert.ok(names.includes('model.layers.1.block_sparse_moe.experts.1.w2.weight'));
  assert.ok(!names.some((n) => n.includes('.mlp.')));
});

test('Llama model: is causal: changing a later token never changes earlier logits', () => {
  const d = modelDims(tinyLlama());
  const params = initParams(d, 1);
  const a = tf.tensor2d([[1, 2, 3, 4, 5, 6]], [1, 6], 'int32');
  const b = tf.tensor2d([[1, 2, 3, 4, 9, 9]], [1, 6], 'int32');
  const la = forward(params, d, a, { training: false }).logits;
  const lb = forward(params, d, b, { training: false }).logits;
  assert.ok(maxAbsDiff(la.slice([0, 0], [4, -1]), lb.slice([0, 0], [4, -1])) < 1e-5);
  assert.ok(maxAbsDiff(la.slice([4, 0], [2, -1]), lb.slice([4, 0], [2, -1])) > 1e-4);
  disposeParams(params);
});

for (const router of ['topK', 'soft'] as const) {
  test(`Llama model: an MoE whose experts are identical computes the dense model's function (${router})`, () => {
    const dense = initParams(modelDims(tinyLlama()), 7);
    const moe = moeWithIdenticalExperts(dense, 3, router);
    const ids = tf.tensor2d([[5, 40, 41, 100, 258, 7, 7, 9]], [1, 8], 'int32');
    const ld = forward(dense, modelDims(tinyLlama()), ids, { training: false }).logits;
    const lm = forward(moe, modelDims(tinyMixtral(3, router)), ids, { training: false }).logits;
    assert.ok(maxAbsDiff(ld, lm) < 1e-4, `max diff ${maxAbsDiff(ld, lm)}`);
    disposeParams(dense);
    disposeParams(moe);
  });
}

test('rotary embeddings: follow the Hugging Face rotate_half convention (hand-computed, head_dim 4)', () => {
  const x = tf.tensor2d([
    [1, 2, 3, 4],
    [1, 2, 3, 4],
  ]); // positions 0 and 1
  const out = applyRotary(x, ropeInverseFrequencies(4, 10000, null)).arraySync() as number[][];
  // inv_freq = [1, 0.01]; rotate_half([1,2,3,4]) = [-3,-4,1,2]; q*cos + rotate_half(q)*sin.
  const [c1, s1, c2, s2] = [Math.cos(1), Math.sin(1), Math.cos(0.01), Math.sin(0.01)];
  const expected = [
    [1, 2, 3, 4],
    [1 * c1 - 3 * s1, 2 * c2 - 4 * s2, 3 * c1 + 1 * s1, 4 * c2 + 2 * s2],
  ];
  for (let t = 0; t < 2; t++)
    for (let i = 0; i < 4; i++) assert.ok(Math.abs(out[t]![i]! - expected[t]![i]!) < 1e-5);
});

test('rotary embeddings: has the gradient of the rotate_half formula written with slices (heads side by side, scaled)', () => {
  const [seq, heads, headDim] = [5, 3, 8];
  const invFreq = ropeInverseFrequencies(headDim, 10000, null);
  const x = tf.randomNormal([2, seq, heads * headDim], 0, 1, 'float32', 4);
  const weights = tf.randomNormal([2, seq, heads * headDim], 0, 1, 'float32', 5);
  const angles = tf.tensor2d(
    Array.from({ length: seq * headDim }, (_, i) => Math.floor(i / headDim) * invFreq[i % (headDim / 2)]!),
    [seq, headDim],
  );
  const reference = (t: tf.Tensor) => {
    const h = tf.reshape(t, [2, seq, heads, headDim]);
    const [x1, x2] = tf.split(h, 2, 3);
    const rotated = tf.concat([tf.neg(x2!), x1!], 3);
    const [cos, sin] = [
      tf.reshape(tf.cos(angles), [seq, 1, headDim]),
      tf.reshape(tf.sin(angles), [seq, 1, headDim]),
    ];
    return tf.reshape(tf.mul(tf.add(tf.mul(h, cos), tf.mul(rotated, sin)), 0.5), t.shape);
  };
  const loss = (f: (t: tf.Tensor) => tf.Tensor) => (t: tf.Tensor) =>
    tf.sum(tf.mul(f(t), weights)) as tf.Scalar;
  const ours = tf.valueAndGrad(loss((t) => applyRotary(t, invFreq, heads, 0.5)))(x);
  const theirs = tf.valueAndGrad(loss(reference))(x);
  assert.ok(Math.abs(ours.value.dataSync()[0]! - theirs.value.dataSync()[0]!) < 1e-4);
  assert.ok(
    maxAbsDiff(ours.grad, theirs.grad) < 1e-5,
    `gradient differs by ${maxAbsDiff(ours.grad, theirs.grad)}`,
  );
});
