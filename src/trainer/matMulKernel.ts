// tf.matMul on the wasm backend through our GEMM (gemm.ts) instead of the backend's own kernel.
//
// tfjs-backend-wasm sends a 2-D float32 product without transpose flags to XNNPACK (12-17 GFLOP/s
// here) and everything else, batched or transposed, to a scalar loop (0.3-0.7 GFLOP/s). Our kernel reads operands through strides, so transposeA/transposeB and every
// batch entry cost the same as a plain product: 23-41 GFLOP/s. It takes every float32 product,
// batch dimensions broadcast by numpy's rule (where the backend's kernel, given [2, 1] against [3],
// returns half the output), and hands other dtypes to the backend's kernel, which rejects them.
import * as tf from './tfjs.js';
import { compileGemm, rowMajor, transposed, type Gemm, type Strided } from './gemm.js';
import { addressOf, replaceWasmKernel, wasmModule, type KernelArgs, type WasmHeap } from './wasmHeap.js';

let installed: Gemm | undefined;
let backendKernelOnly = false;

/** Send tf.matMul back to the backend's own kernel (true; the bench's baseline) or to ours. */
export function useBackendMatMul(on: boolean): void {
  backendKernelOnly = on;
}

/** The GEMM on the wasm backend's memory, once installWasmMatMul has run. */
export function wasmGemm(): Gemm | undefined {
  return installed;
}

/** The GEMM; throws before installWasmMatMul has run (only wasm-backend kernels call this). */
export function requireWasmGemm(): Gemm {
  if (!installed) throw new Error('our wasm GEMM is not installed (installWasmMatMul)');
  return installed;
}

const count = (dims: number[]) => dims.reduce((a, b) => a * b, 1);

/** The broadcast of two batch shapes (numpy's rule, aligned at the right), or undefined. */
function broadcastShape(a: number[], b: number[]): number[] | undefined {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const [da, db] = [a[a.length - rank + i] ?? 1, b[b.length - rank + i] ?? 1];
    if (da !== db && da !== 1 && db !== 1) return undefined;
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Which entry of a batch of shape `dims` serves each entry of the broadcast batch `out`. */
function batchIndices(dims: number[], out: number[]): number[] {
  return Array.from({ length: count(out) }, (_, flat) => {
    let [index, stride, rest] = [0, 1, flat];
    for (let i = out.length - 1; i >= 0; i--) {
      const coordinate = rest % out[i]!;
      rest = Math.floor(rest / out[i]!);
      const d = dims[dims.length - out.length + i] ?? 1;
      if (d !== 1) index += coordinate * stride;
      stride *= d;
    }
    return index;
  });
}

function matMul(gemm: Gemm, original: tf.KernelFunc, args: KernelArgs): tf.TensorInfo {
  const [a, b] = [args.inputs.a!, args.inputs.b!];
  const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
  const [ra, rb] = [a.shape.length, b.shape.length];
  const [aBatch, bBatch] = [a.shape.slice(0, -2), b.shape.slice(0, -2)];
  const batch = broadcastShape(aBatch, bBatch);
  const [a0, a1] = [a.shape[ra - 2]!, a.shape[ra - 1]!];
  const [b0, b1] = [b.shape[rb - 2]!, b.shape[rb - 1]!];
  const [m, k] = transposeA ? [a1, a0] : [a0, a1];
  const [kb, n] = transposeB ? [b1, b0] : [b0, b1];
  const fallback = a.dtype !== 'float32' || b.dtype !== 'float32' || ra < 2 || rb < 2 || !batch || k !== kb;
  if (backendKernelOnly || fallback || m * n === 0)
    return original(args as unknown as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
  const be = args.backend as WasmHeap;
  const out = be.makeOutput([...batch, m, n], 'float32');
  const [aAt, bAt, outAt] = [addressOf(be, a), addressOf(be, b), addressOf(be, out)];
  const [aIndex, bIndex] = [batchIndices(aBatch, batch), batchIndices(bBatch, batch)];
  const view = (at: number, t: boolean, cols: number): Strided =>
    t ? transposed(at, cols) : rowMajor(at, cols);
  for (let i = 0; i < count(batch); i++) {
    gemm.product(
      view(aAt + aIndex[i]! * m * k * 4, transposeA, a1),
      view(bAt + bIndex[i]! * k * n * 4, transposeB, b1),
      { at: outAt + i * m * n * 4, ldc: n * 4 },
      m,
      k,
      n,
    );
  }
  return out;
}

/** Compile the GEMM against the wasm backend's memory and route its BatchMatMul kernel through it. */
export async function installWasmMatMul(): Promise<Gemm> {
  if (installed) return installed;
  const gemm = await compileGemm(wasmModule(tf.backend()));
  replaceWasmKernel(
    tf.BatchMatMul,
    (original) => (args) => matMul(gemm, original, args as unknown as KernelArgs),
  );
  installed = gemm;
  return gemm;
}
