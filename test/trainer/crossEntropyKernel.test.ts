import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '../../src/trainer/tfjs.js';
import { crossEntropy, crossEntropyOps } from '../../src/trainer/model.js';
import { initBackend } from '../../src/trainer/backend.js';

// The kernels under test are the wasm backend's, whatever BTX_BACKEND says.
before(() => initBackend('wasm'));

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).arraySync() as number);
}

// Large logits (exp would overflow without the max shift), a target at either end of the vocabulary.
for (const [n, vocab, spread] of [
  [6, 11, 1],
  [4, 259, 40],
  [1, 2, 100],
] as const) {
  test(`crossEntropy: the wasm kernel equals the tf ops, value and gradient ([${n}, ${vocab}], logits x${spread})`, () => {
    assert.equal(tf.getBackend(), 'wasm', 'the fused kernel runs on the wasm backend');
    const logits = tf.mul(tf.randomNormal([n, vocab], 0, 1, 'float32', 6), spread) as tf.Tensor2D;
    const targets = tf.tensor1d(
      Array.from({ length: n }, (_, i) => (i === 0 ? 0 : i === 1 ? vocab - 1 : (i * 7) % vocab)),
      'int32',
    );
    // A non-unit upstream gradient, so a kernel that ignores dy fails.
    const loss = (f: typeof crossEntropy) => (l: tf.Tensor) =>
      tf.mul(f(l as tf.Tensor2D, targets), 3) as tf.Scalar;
    const ours = tf.valueAndGrad(loss(crossEntropy))(logits);
    const theirs = tf.valueAndGrad(loss(crossEntropyOps))(logits);
    const scale = Math.max(1, Math.abs(theirs.value.arraySync()));
    assert.ok(Math.abs(ours.value.arraySync() - theirs.value.arraySync()) < 1e-5 * scale, 'loss');
    const d = maxAbsDiff(ours.grad, theirs.grad);
    assert.ok(d < 1e-6, `gradient differs by ${d}`);
    tf.dispose([logits, targets, ours.value, theirs.value, ours.grad, theirs.grad]);
  });
}

test('crossEntropy: a target whose probability underflows float32 still gets its exact loss', () => {
  // exp(-160) is 0 in float32: -log of the softmax would be Infinity.
  const logits = tf.tensor2d([
    [100, 0, -60],
    [0, 0, 0],
  ]);
  const targets = tf.tensor1d([2, 1], 'int32');
  const ours = crossEntropy(logits, targets).arraySync();
  const theirs = crossEntropyOps(logits, targets).arraySync();
  assert.ok(Number.isFinite(ours), `loss ${ours}`);
  assert.ok(Math.abs(ours - theirs) < 1e-4 * theirs, `${ours} vs ${theirs}`);
  tf.dispose([logits, targets]);
});

test('crossEntropy: the kernel leaves no tensors behind, forward and backward', () => {
  const logits = tf.randomNormal([3, 5]) as tf.Tensor2D;
  const targets = tf.tensor1d([0, 4, 2], 'int32');
  const before = tf.memory().numTensors;
  const { value, grad } = tf.valueAndGrad((l: tf.Tensor) => crossEntropy(l as tf.Tensor2D, targets))(logits);
  crossEntropy(logits, targets).dispose();
  tf.dispose([value, grad]);
  assert.equal(tf.memory().numTensors, before);
  tf.dispose([logits, targets]);
});

test('crossEntropy: a target outside the vocabulary is an error naming it', () => {
  const logits = tf.zeros([2, 3]) as tf.Tensor2D;
  const targets = tf.tensor1d([1, 3], 'int32');
  assert.throws(() => crossEntropy(logits, targets), /target 3 outside \[0, 3\)/);
  tf.dispose([logits, targets]);
});
