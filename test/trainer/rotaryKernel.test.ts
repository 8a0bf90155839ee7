import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '../../src/trainer/tfjs.js';
import { applyRotary, applyRotaryOps } from '../../src/trainer/model.js';
import { ropeInverseFrequencies } from '../../src/trainer/rope.js';
import { initBackend } from '../../src/trainer/backend.js';

// The kernels under test are the wasm backend's, whatever BTX_BACKEND says.
before(() => initBackend('wasm'));

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).arraySync() as number);
}

// Several heads side by side, a batch (positions restart per sequence), a scale, llama3 frequencies;
// half a head of 4 and 8 (the kernel's vector loop), 2 (its scalar tail) and 6 (both).
for (const [batch, seq, heads, headDim, scale] of [
  [2, 5, 3, 8, 0.5],
  [1, 7, 1, 4, 1],
  [3, 4, 2, 16, 0.25],
  [2, 3, 2, 12, 1],
] as const) {
  test(`rotary: the wasm kernel equals the tf ops, value and gradient ([${batch}, ${seq}, ${heads}x${headDim}], scale ${scale})`, () => {
    assert.equal(tf.getBackend(), 'wasm', 'the fused kernel runs on the wasm backend');
    const invFreq = ropeInverseFrequencies(headDim, 500000, {
      rope_type: 'llama3',
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 8,
    });
    const x = tf.randomNormal([batch, seq, heads * headDim], 0, 1, 'float32', 4);
    const weights = tf.randomNormal([batch, seq, heads * headDim], 0, 1, 'float32', 5);
    const loss = (f: typeof applyRotary) => (t: tf.Tensor) =>
      tf.sum(tf.mul(f(t, invFreq, heads, scale), weights)) as tf.Scalar;
    const ours = tf.valueAndGrad(loss(applyRotary))(x);
    const theirs = tf.valueAndGrad(loss(applyRotaryOps))(x);
    assert.ok(
      maxAbsDiff(applyRotary(x, invFreq, heads, scale), applyRotaryOps(x, invFreq, heads, scale)) < 1e-5,
    );
    assert.ok(Math.abs(ours.value.arraySync() - theirs.value.arraySync()) < 1e-4, 'loss');
    const dx = maxAbsDiff(ours.grad, theirs.grad);
    assert.ok(dx < 1e-5, `gradient differs by ${dx}`);
    tf.dispose([x, weights, ours.value, theirs.value, ours.grad, theirs.grad]);
  });
}
