// Rotary embedding (HF's rotate_half convention) as one kernel forward and one backward on the wasm
// backend, WebAssembly SIMD over the tensor's wasm memory (rowKernels.ts); model.ts' applyRotary uses
// it there and composes tf ops elsewhere.
//
// Why: as tf ops the rotary of q or k is a reshape, a [rows, hd] x [hd, hd] product for
// rotate_half, two broadcast multiplies and an add forward, about twice that backward: ~30 kernels
// per layer, each costing more engine and wasm-call overhead than arithmetic at d64 (issue 10).
// The tables are the same float32 values as the ops' (scale folded in); each product and the sum
// are rounded to float32, as the ops round them, so the function is the same to within an ulp
// (test/trainer/rotaryKernel.test.ts checks value and gradient against the ops).
import * as tf from './tfjs.js';
import { addressOf, allocate, floatsAt, wasmModule, type KernelArgs, type WasmHeap } from './wasmHeap.js';
import { rowKernels } from './rowKernels.js';

interface RotaryAttrs {
  seqLen: number;
  headDim: number;
  scale: number;
  invFreq: number[];
}

/**
 * scale * cos and scale * sin of t * invFreq[i], [T, headDim / 2], as float32 (as the ops' tables),
 * copied once into wasm memory (the backend's malloc; kept for the process, a few KB each).
 */
const tables = new Map<string, { cos: number; sin: number }>();

function rotaryTables(a: RotaryAttrs, backend: unknown): { cos: number; sin: number } {
  const key = `${a.seqLen} ${a.scale} ${a.invFreq.join(',')}`;
  let t = tables.get(key);
  if (!t) {
    const half = a.invFreq.length;
    const [cos, sin] = [new Float32Array(a.seqLen * half), new Float32Array(a.seqLen * half)];
    for (let p = 0; p < a.seqLen; p++) {
      for (let i = 0; i < half; i++) {
        const angle = Math.fround(p * a.invFreq[i]!);
        cos[p * half + i] = a.scale * Math.cos(angle);
        sin[p * half + i] = a.scale * Math.sin(angle);
      }
    }
    const wasm = wasmModule(backend);
    const copy = (values: Float32Array) => {
      const at = allocate(wasm, values.byteLength, 'the rotary tables');
      floatsAt(wasm, at, values.length).set(values);
      return at;
    };
    t = { cos: copy(cos), sin: copy(sin) };
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
  const { cos, sin } = rotaryTables(a, args.backend);
  const width = x.shape[x.shape.length - 1]!;
  const rows = x.shape.reduce((p, q) => p * q, 1) / width;
  const out = (args.backend as WasmHeap).makeOutput([...x.shape], 'float32');
  const [xAt, outAt] = [addressOf(args.backend, x), addressOf(args.backend, out)];
  rowKernels().rotary(xAt, outAt, cos, sin, rows, width, a.headDim, a.seqLen, sign);
  return out;
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
