// Row gather/scatter with gradients every backend has. tf.gather's own gradient needs
// UnsortedSegmentSum, which the wasm backend lacks, so both directions use gather + scatterND.
import * as tf from './tfjs.js';

/** x[idx] for x [n, d] and int32 idx [m] (distinct rows); the gradient scatters dy back into [n, d]. */
export const gatherRows = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [x, idx, save] = args as [tf.Tensor2D, tf.Tensor1D, tf.GradSaveFunc];
  save([idx]);
  const shape = x.shape;
  return {
    value: tf.gather(x, idx),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [
      tf.scatterND(tf.expandDims(saved[0]!, 1), dy, shape),
      tf.zerosLike(saved[0]!),
    ],
  };
}) as (x: tf.Tensor2D, idx: tf.Tensor1D) => tf.Tensor2D;

/**
 * Rows of updates [m, d] added into an [n, d] zero tensor at int32 idx [m] (repeated indices sum);
 * the gradient gathers the rows back.
 */
export function scatterRows(updates: tf.Tensor2D, idx: tf.Tensor1D, n: number): tf.Tensor2D {
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [u, i, save] = args as [tf.Tensor2D, tf.Tensor1D, tf.GradSaveFunc];
    save([i]);
    return {
      value: tf.scatterND(tf.expandDims(i, 1), u, [n, u.shape[1]]),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [tf.gather(dy, saved[0]!), tf.zerosLike(saved[0]!)],
    };
  }) as (u: tf.Tensor2D, i: tf.Tensor1D) => tf.Tensor2D;
  return f(updates, idx);
}
