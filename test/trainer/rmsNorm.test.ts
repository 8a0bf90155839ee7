import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '../../src/trainer/tfjs.js';
import { rmsNorm, rmsNormOps } from '../../src/trainer/rmsNorm.js';
import { initBackend } from '../../src/trainer/backend.js';

// The kernels under test are the wasm backend's, whatever BTX_BACKEND says.
before(() => initBackend('wasm'));

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).arraySync() as number);
}

// Odd widths and row counts, rows of very different scale, and a gain that is not all ones, so a
// wrong row stride, a missing eps or a transposed gain gradient cannot go unnoticed.
for (const [n, d, eps] of [
  [7, 5, 1e-5],
  [3, 64, 1e-6],
  [1, 1, 1e-5],
] as const) {
  test(`rmsNorm: the wasm kernel equals the tf ops, value and both gradients ([${n}, ${d}], eps ${eps})`, () => {
    assert.equal(tf.getBackend(), 'wasm', 'the fused kernel runs on the wasm backend');
    const scales = tf.tensor2d(Array.from({ length: n }, (_, i) => [10 ** (i % 3) / 10]));
    const x = tf.mul(tf.randomNormal([n, d], 0, 1, 'float32', 1), scales) as tf.Tensor2D;
    const w = tf.randomNormal([d], 1, 0.5, 'float32', 2);
    const weights = tf.randomNormal([n, d], 0, 1, 'float32', 3);
    const loss = (f: typeof rmsNorm) => (a: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.mul(f(a as tf.Tensor2D, b, eps), weights)) as tf.Scalar;
    const ours = tf.valueAndGrads(loss(rmsNorm))([x, w]);
    const theirs = tf.valueAndGrads(loss(rmsNormOps))([x, w]);
    assert.ok(maxAbsDiff(rmsNorm(x, w, eps), rmsNormOps(x, w, eps)) < 1e-5, 'value');
    assert.ok(Math.abs(ours.value.arraySync() - theirs.value.arraySync()) < 1e-4, 'loss');
    const dx = maxAbsDiff(ours.grads[0]!, theirs.grads[0]!);
    const dw = maxAbsDiff(ours.grads[1]!, theirs.grads[1]!);
    assert.ok(dx < 1e-4, `gradient of x differs by ${dx}`);
    assert.ok(dw < 1e-4, `gradient of the gain differs by ${dw}`);
    tf.dispose([scales, x, w, weights, ours.value, theirs.value, ...ours.grads, ...theirs.grads]);
  });
}

test('rmsNorm: the kernel leaves no tensors behind, forward and backward', () => {
  const x = tf.randomNormal([4, 6]) as tf.Tensor2D;
  const w = tf.ones([6]);
  const before = tf.memory().numTensors;
  const { value, grads } = tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor) =>
    tf.sum(rmsNorm(a as tf.Tensor2D, b, 1e-5)),
  )([x, w]);
  tf.dispose([value, ...grads]);
  assert.equal(tf.memory().numTensors, before);
  tf.dispose([x, w]);
});
