// The mean next-token cross-entropy as one kernel on the wasm backend whose gradient is one
// multiply; model.ts' crossEntropy uses it there and composes tf ops elsewhere.
//
// Why: as tf ops the loss is logSoftmax, oneHot, cast, multiply, sum, mean and neg, ~12 kernels
// forward and ~15 backward, and its gradient computes exp(logits) a second time (issue 10: per-kernel
// overhead set the d64 step's time). Here the backend's XNNPACK softmax runs once over the logits
// into the gradient's memory; the loss is -log of each row's target probability (the exact
// log-sum-exp where that probability underflows), and the gradient for dy = 1, (softmax - onehot) / N,
// which the backward pass only scales. A JavaScript loop with Math.exp per logit took ~10x the time
// of the softmax. test/trainer/crossEntropyKernel.test.ts checks value and gradient against the ops.
import * as tf from './tfjs.js';
import { addressOf, type KernelArgs, type WasmHeap } from './wasmHeap.js';
import { viewOps, type WasmBackend } from './batchMatMul.js';
import { rowKernels } from './rowKernels.js';

/** logits [N, V], targets [N] int32 -> [loss (scalar), d loss / d logits [N, V]]. */
function crossEntropyKernel({ inputs, backend }: KernelArgs): tf.TensorInfo[] {
  const { logits, targets } = inputs as { logits: tf.TensorInfo; targets: tf.TensorInfo };
  const [n, v] = logits.shape as [number, number];
  const be = backend as WasmHeap;
  // Checked before anything is allocated, so that a bad target leaks no output.
  const checked = be.typedArrayFromHeap(targets);
  for (let r = 0; r < n; r++) {
    const t = checked[r]!;
    if (!(t >= 0 && t < v)) throw new Error(`cross-entropy: target ${t} outside [0, ${v})`);
  }
  const [loss, grad] = [be.makeOutput([], 'float32'), be.makeOutput([n, v], 'float32')];
  viewOps(backend as WasmBackend).softmax([logits, 0], [grad, 0], n, v);
  // Views after every allocation (the softmax's view ids may grow the memory, detaching older ones).
  const [ls, ts, ps] = [logits, targets, grad].map((t) => be.typedArrayFromHeap(t)) as [Float32Array, Int32Array, Float32Array]; // prettier-ignore
  let total = 0;
  for (let r = 0; r < n; r++) {
    const at = r * v + ts[r]!;
    const p = ps[at]!;
    total += p >= UNDERFLOW ? -Math.log(p) : logSumExp(ls, r * v, v) - ls[at]!;
    ps[at] = p - 1;
  }
  be.typedArrayFromHeap(loss)[0] = total / n;
  rowKernels().scale(addressOf(backend, grad), n * v, 1 / n);
  return [loss, grad];
}

/** A probability below this is recomputed exactly: -log of a float32 that underflowed would be wrong. */
const UNDERFLOW = 1e-30;

/** log(sum(exp(row))) of v logits from `o`, in float64 with the max subtracted. */
function logSumExp(ls: Float32Array, o: number, v: number): number {
  let max = -Infinity;
  for (let j = 0; j < v; j++) max = Math.max(max, ls[o + j]!);
  let sum = 0;
  for (let j = 0; j < v; j++) sum += Math.exp(ls[o + j]! - max);
  return max + Math.log(sum);
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
