import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '../../src/trainer/tfjs.js';
import { initBackend } from '../../src/trainer/backend.js';

// The kernel under test is the wasm backend's, whatever BTX_BACKEND says.
before(() => initBackend('wasm'));

test('gather of rows (wasm): each index copies its whole row, in the indices shape, repeats included', () => {
  assert.equal(tf.getBackend(), 'wasm');
  const table = tf.tensor(
    Array.from({ length: 5 * 2 * 3 }, (_, i) => i + 0.5),
    [5, 2, 3],
  );
  const ids = tf.tensor2d([4, 0, 2, 2], [2, 2], 'int32');
  const got = tf.gather(table, ids);
  assert.deepEqual(got.shape, [2, 2, 2, 3]);
  const rows = table.arraySync() as number[][][];
  assert.deepEqual(got.arraySync(), [
    [rows[4], rows[0]],
    [rows[2], rows[2]],
  ]);
  tf.dispose([table, ids, got]);
});

test('gather of rows (wasm): an index outside the table is an error naming it, and leaks no tensor', () => {
  const table = tf.ones([3, 4]);
  const ids = tf.tensor1d([1, 3], 'int32');
  const before = tf.memory().numTensors;
  assert.throws(() => tf.gather(table, ids), /index 3 outside \[0, 3\)/);
  assert.equal(tf.memory().numTensors, before);
  tf.dispose([table, ids]);
});

test('gather on another axis (wasm) still goes through the backend kernel', () => {
  const table = tf.tensor2d(
    [
      [1, 2, 3],
      [4, 5, 6],
    ],
    [2, 3],
  );
  const got = tf.gather(table, tf.tensor1d([2, 0], 'int32'), 1);
  assert.deepEqual(got.arraySync(), [
    [3, 1],
    [6, 4],
  ]);
});
