import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '../../src/trainer/tfjs.js';
import {
  causalAttention,
  causalAttentionOps,
  type AttentionShape,
} from '../../src/trainer/attentionKernel.js';
import { initBackend } from '../../src/trainer/backend.js';

// The kernels under test are the wasm backend's, whatever BTX_BACKEND says.
before(() => initBackend('wasm'));

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).arraySync() as number);
}

// Sequences shorter than, equal to and past the 64-row blocks (a partial last block), grouped
// key/value heads (2 query heads per kv head), one head, and a batch, so a wrong head stride, a
// block that skips a needed column, a kv head that forgets a query head's gradient or a mask off by
// one cannot go unnoticed.
const SHAPES: AttentionShape[] = [
  { batch: 2, seqLen: 5, heads: 2, kvHeads: 2, headDim: 3 },
  { batch: 1, seqLen: 64, heads: 1, kvHeads: 1, headDim: 8 },
  { batch: 2, seqLen: 150, heads: 4, kvHeads: 2, headDim: 4 },
];

for (const s of SHAPES) {
  const name = `B ${s.batch} T ${s.seqLen} H ${s.heads} KV ${s.kvHeads} hd ${s.headDim}`;
  test(`causalAttention: the wasm kernel equals the tf ops, value and the gradients of q, k, v (${name})`, () => {
    assert.equal(tf.getBackend(), 'wasm', 'the fused kernel runs on the wasm backend');
    const rows = s.batch * s.seqLen;
    const q = tf.randomNormal([rows, s.heads * s.headDim], 0, 1, 'float32', 1) as tf.Tensor2D;
    const k = tf.randomNormal([rows, s.kvHeads * s.headDim], 0, 1, 'float32', 2) as tf.Tensor2D;
    const v = tf.randomNormal([rows, s.kvHeads * s.headDim], 0, 1, 'float32', 3) as tf.Tensor2D;
    const weights = tf.randomNormal([rows, s.heads * s.headDim], 0, 1, 'float32', 4);
    const loss = (f: typeof causalAttention) => (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
      tf.sum(tf.mul(f(a as tf.Tensor2D, b as tf.Tensor2D, c as tf.Tensor2D, s), weights)) as tf.Scalar;
    const ours = tf.valueAndGrads(loss(causalAttention))([q, k, v]);
    const theirs = tf.valueAndGrads(loss(causalAttentionOps))([q, k, v]);
    const value = maxAbsDiff(causalAttention(q, k, v, s), causalAttentionOps(q, k, v, s));
    assert.ok(value < 1e-5, `value differs by ${value}`);
    assert.ok(Math.abs(ours.value.arraySync() - theirs.value.arraySync()) < 1e-3, 'loss');
    ['q', 'k', 'v'].forEach((what, i) => {
      const diff = maxAbsDiff(ours.grads[i]!, theirs.grads[i]!);
      assert.ok(diff < 1e-4, `gradient of ${what} differs by ${diff}`);
    });
    tf.dispose([q, k, v, weights, ours.value, theirs.value, ...ours.grads, ...theirs.grads]);
  });
}

test('causalAttention: a token sees only itself and earlier tokens', () => {
  const s: AttentionShape = { batch: 1, seqLen: 70, heads: 1, kvHeads: 1, headDim: 2 };
  const q = tf.randomNormal([70, 2], 0, 1, 'float32', 5) as tf.Tensor2D;
  const k = tf.randomNormal([70, 2], 0, 1, 'float32', 6) as tf.Tensor2D;
  const v = tf.randomNormal([70, 2], 0, 1, 'float32', 7) as tf.Tensor2D;
  const before = causalAttention(q, k, v, s).dataSync();
  // Changing the last token's key and value must leave every earlier output as it was.
  const later = tf.concat([tf.slice(k, [0, 0], [69, 2]), tf.tensor2d([[50, -50]])]) as tf.Tensor2D;
  const laterV = tf.concat([tf.slice(v, [0, 0], [69, 2]), tf.tensor2d([[9, 9]])]) as tf.Tensor2D;
  const after = causalAttention(q, later, laterV, s).dataSync();
  assert.deepEqual([...after.subarray(0, 69 * 2)], [...before.subarray(0, 69 * 2)]);
  assert.notDeepEqual([...after.subarray(69 * 2)], [...before.subarray(69 * 2)]);
});

test('causalAttention: the kernels leave no tensors behind, forward and backward', () => {
  const s: AttentionShape = { batch: 1, seqLen: 9, heads: 2, kvHeads: 1, headDim: 2 };
  const [q, k, v] = [
    tf.randomNormal([9, 4]),
    tf.randomNormal([9, 2]),
    tf.randomNormal([9, 2]),
  ] as tf.Tensor2D[];
  const before = tf.memory().numTensors;
  const { value, grads } = tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
    tf.sum(causalAttention(a as tf.Tensor2D, b as tf.Tensor2D, c as tf.Tensor2D, s)),
  )([q!, k!, v!]);
  tf.dispose([value, ...grads]);
  assert.equal(tf.memory().numTensors, before);
});
