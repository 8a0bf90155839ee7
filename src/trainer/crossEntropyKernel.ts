// The mean next-token cross-entropy as one kernel on the wasm backend (a loop over the logits' wasm
// memory, wasmHeap.ts) whose gradient is one multiply; model.ts' crossEntropy uses it there and
// composes tf ops elsewhere.
//
// Why: as tf ops the loss is logSoftmax, oneHot, cast, multiply, sum, mean and neg, ~12 kernels
// forward and ~15 backward, and its gradient computes exp(logits) a second time (issue 10: per-kernel
// overhead set the d64 step's time). Here one pass computes each row's softmax once, the loss from it
// (float64 sums), and the gradient for dy = 1, (softmax - onehot) / N, which the backward pass only
// scales. test/trainer/crossEntropyKernel.test.ts checks value and gradient against the ops.
import * as tf from './tfjs.js';
import { heapViews, type KernelArgs, type WasmHeap } from './wasmHeap.js';

/** logits [N, V], targets [N] int32 -> [loss (scalar), d loss / d logits [N, V]]. */
function crossEntropyKernel({ inputs, backend }: KernelArgs): tf.TensorInfo[] {
  const { logits, targets } = inputs as { logits: tf.TensorInfo; targets: tf.TensorInfo };
  const [n, v] = logits.shape as [number, number];
  // Checked before anything is allocated, so that a bad target leaks no output.
  const checked = (backend as WasmHeap).typedArrayFromHeap(targets);
  for (let r = 0; r < n; r++) {
    const t = checked[r]!;
    if (!(t >= 0 && t < v)) throw new Error(`cross-entropy: target ${t} outside [0, ${v})`);
  }
  const { outputs, ints } = heapViews(backend, [logits, targets], [[], [n, v]]);
  const [ls, ts, loss, grad] = ints as [Float32Array, Int32Array, Float32Array, Float32Array];
  let total = 0;
  for (let r = 0; r < n; r++) {
    const o = r * v;
    const target = ts[r]!;
    let max = -Infinity;
    for (let j = 0; j < v; j++) if (ls[o + j]! > max) max = ls[o + j]!;
    let sum = 0;
    for (let j = 0; j < v; j++) {
      const e = Math.exp(ls[o + j]! - max);
      grad[o + j] = e;
      sum += e;
    }
    total += max + Math.log(sum) - ls[o + target]!;
    const k = 1 / (sum * n);
    for (let j = 0; j < v; j++) grad[o + j] = grad[o + j]! * k;
    grad[o + target] = grad[o + target]! - 1 / n;
  }
  loss[0] = total / n;
  return outputs;
}

tf.registerKernel({
  kernelName: 'BtxCrossEntropy',
  backendName: 'wasm',
  kernelFunc: crossEntropyKernel as unknown as tf.KernelFunc,
});

/** Mean cross-entropy of logits [N, V] against targets [N] (int32), wasm backend only. */
export function crossEntropyFused(logits: tf.Tensor2D, targets: tf.Tensor1D): tf.Scalar {
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [ls, save] = args as [tf.Tensor, tf.GradSaveFunc];
    const [loss, grad] = tf.engine().runKernel('BtxCrossEntropy', { logits: ls, targets }) as tf.Tensor[];
    save([grad!]);
    return {
      value: loss!,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.mul(saved[0]!, dy),
    };
  }) as (logits: tf.Tensor) => tf.Scalar;
  return f(logits);
}
