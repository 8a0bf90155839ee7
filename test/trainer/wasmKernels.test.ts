import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '../../src/trainer/tfjs.js';
import { backend } from './trainerFixtures.js';

before(backend);

test('Identity and Cast that share data (wasm): a clone keeps its values after the original is disposed, and the other way round', () => {
  const a = tf.tensor1d([1, 2, 3]);
  const b = tf.clone(a);
  a.dispose();
  assert.deepEqual(b.arraySync(), [1, 2, 3]);
  const c = tf.clone(b);
  c.dispose();
  assert.deepEqual(b.arraySync(), [1, 2, 3]);
  b.dispose();
});

test('Identity and Cast that share data (wasm): a cast to the same dtype shares; to another dtype it still converts', () => {
  const ints = tf.tensor1d([1, 2, 3], 'int32');
  const floats = tf.cast(ints, 'float32');
  assert.equal(floats.dtype, 'float32');
  assert.deepEqual(tf.div(floats, 2).arraySync(), [0.5, 1, 1.5]);
  const same = tf.cast(floats, 'float32');
  floats.dispose();
  assert.deepEqual(same.arraySync(), [1, 2, 3]);
  tf.dispose([ints, same]);
});

test('Identity and Cast that share data (wasm): a variable keeps its value when the tensor it was assigned from is disposed', () => {
  const v = tf.variable(tf.zeros([2]));
  const next = tf.tensor1d([4, 5]);
  v.assign(next);
  next.dispose();
  assert.deepEqual(v.arraySync(), [4, 5]);
  v.dispose();
});
