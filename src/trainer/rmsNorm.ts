// RMSNorm as one kernel forward and one backward on the wasm backend, over the tensors' wasm memory
// (rowKernels.ts); other backends compose tf ops.
//
// Why: as tf ops RMSNorm is 6 kernels forward and ~14 backward (mean, rsqrt, two broadcast muls and
// their reductions), and at d64 each kernel's engine and wasm-call overhead costs more than its
// arithmetic (issue 10). The kernels are WebAssembly SIMD (rowKernelsWat.ts; they were JavaScript
// loops over the heap, ~3x slower); test/trainer/rmsNorm.test.ts checks value and gradients against
// the tf-op composition.
import * as tf from './tfjs.js';
import { addressOf, fusedKernelsHere, type KernelArgs, type WasmHeap } from './wasmHeap.js';
import { rowKernels } from './rowKernels.js';

function rows(t: tf.TensorInfo): [number, number] {
  const width = t.shape[t.shape.length - 1]!;
  return [t.shape.reduce((a, b) => a * b, 1) / width, width];
}

/** y = x * rsqrt(mean(x^2) + eps) * w over the last axis. */
function rmsNormKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const { x, w } = inputs as { x: tf.TensorInfo; w: tf.TensorInfo };
  const [n, d] = rows(x);
  const y = (backend as WasmHeap).makeOutput([...x.shape], 'float32');
  const address = (t: tf.TensorInfo) => addressOf(backend, t);
  rowKernels().rmsNorm(address(x), address(w), address(y), n, d, (attrs as { eps: number }).eps);
  return y;
}

/**
 * With s = rsqrt(mean(x^2) + eps) per row and g = dy * w: dx = s * (g - x * s^2 * mean(g * x)),
 * dw = sum over rows of dy * x * s.
 */
function rmsNormGradKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo[] {
  const { dy, x, w } = inputs as { dy: tf.TensorInfo; x: tf.TensorInfo; w: tf.TensorInfo };
  const [n, d] = rows(x);
  const be = backend as WasmHeap;
  const [dx, dw] = [be.makeOutput([...x.shape], 'float32'), be.makeOutput([d], 'float32')];
  const address = (t: tf.TensorInfo) => addressOf(backend, t);
  const eps = (attrs as { eps: number }).eps;
  rowKernels().rmsNormGrad(address(dy), address(x), address(w), address(dx), address(dw), n, d, eps);
  return [dx, dw];
}

const KERNELS: [string, (args: KernelArgs) => tf.TensorInfo | tf.TensorInfo[]][] = [
  ['BtxRmsNorm', rmsNormKernel],
  ['BtxRmsNormGrad', rmsNormGradKernel],
];
for (const [kernelName, kernelFunc] of KERNELS) {
  tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc: kernelFunc as unknown as tf.KernelFunc });
}

function run(name: string, inputs: Record<string, tf.Tensor>, attrs: object = {}): tf.Tensor | tf.Tensor[] {
  return tf.engine().runKernel(name, inputs, attrs as tf.NamedAttrMap);
}

/** RMSNorm over the last axis as tf ops: x / sqrt(mean(x^2) + eps) * weight. */
export function rmsNormOps(x: tf.Tensor2D, weight: tf.Tensor, eps: number): tf.Tensor2D {
  const scale = tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), eps));
  return tf.mul(tf.mul(x, scale), weight);
}

/** RMSNorm over the last axis of x [N, d] with gain weight [d]. */
export function rmsNorm(x: tf.Tensor2D, weight: tf.Tensor, eps: number): tf.Tensor2D {
  if (!fusedKernelsHere()) return rmsNormOps(x, weight, eps);
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xs, ws, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    save([xs, ws]);
    return {
      value: run('BtxRmsNorm', { x: xs, w: ws }, { eps }) as tf.Tensor,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        run('BtxRmsNormGrad', { dy, x: saved[0]!, w: saved[1]! }, { eps }) as tf.Tensor[],
    };
  }) as (x: tf.Tensor, w: tf.Tensor) => tf.Tensor2D;
  return f(x, weight);
}
