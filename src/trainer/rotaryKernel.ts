// Rotary embedding (HF's rotate_half convention) as one kernel forward and one backward on the wasm
// backend, a loop over the tensor's wasm memory (wasmHeap.ts); model.ts' applyRotary uses it there
// and composes tf ops elsewhere.
//
// Why: as tf ops the rotary of q or k is a reshape, a [rows, hd] x [hd, hd] product for
// rotate_half, two broadcast multiplies and an add forward, about twice that backward: ~30 kernels
// per layer, each costing more engine and wasm-call overhead than arithmetic at d64 (issue 10).
// The tables are the same float32 values as the ops' (scale folded in); products and sums are
// rounded once to float32, so the function is the same to within an ulp
// (test/trainer/rotaryKernel.test.ts checks value and gradient against the ops).
import * as tf from './tfjs.js';
import { heapViews, type KernelArgs } from './wasmHeap.js';

interface RotaryAttrs {
  seqLen: number;
  headDim: number;
  scale: number;
  invFreq: number[];
}

/** scale * cos and scale * sin of t * invFreq[i], [T, headDim / 2], as float32 (as the ops' tables). */
const tables = new Map<string, { cos: Float32Array; sin: Float32Array }>();

function rotaryTables(a: RotaryAttrs): { cos: Float32Array; sin: Float32Array } {
  const key = `${a.seqLen} ${a.scale} ${a.invFreq.join(',')}`;
  let t = tables.get(key);
  if (!t) {
    const half = a.invFreq.length;
    t = { cos: new Float32Array(a.seqLen * half), sin: new Float32Array(a.seqLen * half) };
    for (let p = 0; p < a.seqLen; p++) {
      for (let i = 0; i < half; i++) {
        const angle = Math.fround(p * a.invFreq[i]!);
        t.cos[p * half + i] = a.scale * Math.cos(angle);
        t.sin[p * half + i] = a.scale * Math.sin(angle);
      }
    }
    tables.set(key, t);
  }
  return t;
}

/**
 * x [..., T, width] with width a multiple of headDim, position = row index mod T. Forward, per head
 * and i < half: out[i] = x[i] c - x[i + half] s, out[i + half] = x[i + half] c + x[i] s; backward
 * (sign = -1) is the transpose: dx[i] = dy[i] c + dy[i + half] s, dx[i + half] = dy[i + half] c - dy[i] s.
 */
function rotate(args: KernelArgs, sign: 1 | -1): tf.TensorInfo {
  const x = args.inputs.x!;
  const a = args.attrs as unknown as RotaryAttrs;
  const { cos, sin } = rotaryTables(a);
  const width = x.shape[x.shape.length - 1]!;
  const rows = x.shape.reduce((p, q) => p * q, 1) / width;
  const half = a.headDim / 2;
  const { outputs, views } = heapViews(args.backend, [x], [[...x.shape]]);
  const [xs, out] = views as [Float32Array, Float32Array];
  for (let r = 0; r < rows; r++) {
    const t = (r % a.seqLen) * half;
    for (let h = r * width; h < (r + 1) * width; h += a.headDim) {
      for (let i = 0; i < half; i++) {
        const c = cos[t + i]!;
        const s = sign * sin[t + i]!;
        const lo = xs[h + i]!;
        const hi = xs[h + i + half]!;
        out[h + i] = lo * c - hi * s;
        out[h + i + half] = hi * c + lo * s;
      }
    }
  }
  return outputs[0]!;
}

tf.registerKernel({
  kernelName: 'BtxRotary',
  backendName: 'wasm',
  kernelFunc: ((args: KernelArgs) => rotate(args, 1)) as unknown as tf.KernelFunc,
});
tf.registerKernel({
  kernelName: 'BtxRotaryGrad',
  backendName: 'wasm',
  kernelFunc: ((args: KernelArgs) => rotate(args, -1)) as unknown as tf.KernelFunc,
});

/**
 * Rotary embedding of x [..., T, heads * headDim] times `scale`, as one kernel each way (wasm
 * backend only; the caller checks the backend).
 */
export function rotaryFused(x: tf.Tensor, invFreq: readonly number[], scale: number): tf.Tensor {
  const attrs: RotaryAttrs = {
    seqLen: x.shape[x.shape.length - 2]!,
    headDim: 2 * invFreq.length,
    scale,
    invFreq: [...invFreq],
  };
  const run = (name: string, t: tf.Tensor) =>
    tf.engine().runKernel(name, { x: t }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => ({
    value: run('BtxRotary', args[0] as tf.Tensor),
    gradFunc: (dy: tf.Tensor) => run('BtxRotaryGrad', dy),
  })) as (x: tf.Tensor) => tf.Tensor;
  return f(x);
}
