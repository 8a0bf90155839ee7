import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '../../src/trainer/tfjs.js';
import { groupedMatMul } from '../../src/trainer/batchMatMul.js';
import { backend } from './trainerFixtures.js';

before(backend);

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).arraySync() as number);
}

// Odd sizes, so a view at the wrong offset or with the wrong stride cannot go unnoticed.
for (const [batch, m, k, n] of [
  [5, 7, 3, 11],
  [1, 4, 6, 2],
  [3, 1, 9, 1],
] as const) {
  test(`batched tf.matMul: equals one 2-D product per batch entry, value and both gradients ([${batch},${m},${k}] x [${batch},${k},${n}])`, () => {
    const a = tf.randomNormal([batch, m, k], 0, 1, 'float32', 1) as tf.Tensor3D;
    const b = tf.randomNormal([batch, k, n], 0, 1, 'float32', 2) as tf.Tensor3D;
    const weights = tf.randomNormal([batch, m, n], 0, 1, 'float32', 3);
    const loss = (f: (x: tf.Tensor3D, y: tf.Tensor3D) => tf.Tensor) => (x: tf.Tensor, y: tf.Tensor) =>
      tf.sum(tf.mul(f(x as tf.Tensor3D, y as tf.Tensor3D), weights)) as tf.Scalar;
    // The reference never batches: each entry's 2-D product, stacked.
    const entry = (t: tf.Tensor3D, i: number) =>
      tf.reshape(tf.slice(t, [i, 0, 0], [1, -1, -1]), [t.shape[1], t.shape[2]]) as tf.Tensor2D;
    const perEntry = (x: tf.Tensor3D, y: tf.Tensor3D) =>
      tf.stack([...Array(batch).keys()].map((i) => tf.matMul(entry(x, i), entry(y, i))));
    const ours = tf.valueAndGrads(loss((x, y) => tf.matMul(x, y)));
    const reference = tf.valueAndGrads(loss(perEntry));
    const [o, r] = [ours([a, b]), reference([a, b])];
    assert.ok(maxAbsDiff(tf.matMul(a, b), perEntry(a, b)) < 1e-5);
    assert.ok(Math.abs(o.value.arraySync() - r.value.arraySync()) < 1e-4);
    assert.ok(maxAbsDiff(o.grads[0]!, r.grads[0]!) < 1e-5, 'gradient of a');
    assert.ok(maxAbsDiff(o.grads[1]!, r.grads[1]!) < 1e-5, 'gradient of b');
    tf.dispose([a, b, weights, o.value, r.value, ...o.grads, ...r.grads]);
  });
}

test('batched tf.matMul: leaves no tensors behind', () => {
  const a = tf.ones([2, 3, 4]) as tf.Tensor3D;
  const b = tf.ones([2, 4, 5]) as tf.Tensor3D;
  const before = tf.memory().numTensors;
  tf.tidy(() => {
    tf.matMul(a, b);
  });
  assert.equal(tf.memory().numTensors, before);
  tf.dispose([a, b]);
});

test('groupedMatMul: equals one tf.matMul per group, value and both gradients, empty groups included', () => {
  const sizes = [3, 0, 5, 1, 0];
  const [k, n] = [4, 6];
  const rows = sizes.reduce((a, b) => a + b, 0);
  const x = tf.randomNormal([rows, k], 0, 1, 'float32', 1) as tf.Tensor2D;
  const w = tf.randomNormal([sizes.length, k, n], 0, 1, 'float32', 2) as tf.Tensor3D;
  const weights = tf.randomNormal([rows, n], 0, 1, 'float32', 3);
  const perGroup = (xs: tf.Tensor2D, ws: tf.Tensor3D) => {
    let start = 0;
    const parts = sizes.flatMap((size, g) => {
      const part = tf.matMul(
        tf.slice(xs, [start, 0], [size, k]),
        tf.reshape(tf.slice(ws, [g, 0, 0], [1, k, n]), [k, n]),
      );
      start += size;
      return size > 0 ? [part] : [];
    });
    return tf.concat(parts);
  };
  const loss = (f: (x: tf.Tensor2D, w: tf.Tensor3D) => tf.Tensor) => (a: tf.Tensor, b: tf.Tensor) =>
    tf.sum(tf.mul(f(a as tf.Tensor2D, b as tf.Tensor3D), weights)) as tf.Scalar;
  const ours = tf.valueAndGrads(loss((a, b) => groupedMatMul(a, b, sizes)))([x, w]);
  const reference = tf.valueAndGrads(loss(perGroup))([x, w]);
  assert.ok(maxAbsDiff(groupedMatMul(x, w, sizes), perGroup(x, w)) < 1e-5);
  assert.ok(maxAbsDiff(ours.grads[0]!, reference.grads[0]!) < 1e-5, 'gradient of x');
  assert.ok(maxAbsDiff(ours.grads[1]!, reference.grads[1]!) < 1e-5, 'gradient of w');
  // An empty group's weights get an exact zero gradient.
  const grad = ours.grads[1]!.arraySync() as number[][][];
  for (const g of [1, 4])
    assert.ok(
      grad[g]!.flat().every((v) => v === 0),
      `group ${g}`,
    );
});
