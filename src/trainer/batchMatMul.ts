// Batched matrix products at XNNPACK speed on the wasm backend: [B, m, k] x [B, k, n] (attention's
// q k^T and p v), and grouped ones, rows [R, k] in consecutive groups times one [k, n] matrix per
// group (each MoE expert's SwiGLU on its own tokens).
//
// tfjs-backend-wasm hands a matMul to XNNPACK only when it is one 2-D product without transpose flags;
// a batched product, or one with transposeA/B, falls to a scalar loop: 0.3-0.7 GFLOP/s against
// 3-7 GFLOP/s for the same products done as 2-D XNNPACK calls, measured side by side on the shared
// machine for [32, 256, 64] x [32, 64, 256] and [32, 256, 256] x [32, 256, 64] (issue 10's profile:
// attention's batched matmuls were 54% of a d256 training step for 14% of its FLOPs).
//
// The kernels below run the products one by one through the backend's own 2-D path (its exported
// BatchMatMul with a batch of 1), on views of the operands: tensor ids registered at offsets into a
// tensor's memory, so nothing is copied. That needs internals of tfjs-backend-wasm 4.22 (the data id
// map, the id counter and the module's cwrap). The gradients use explicit transposes (one Transpose
// op each) so that they stay on the fast path too. Other backends use tf.matMul.
import * as tf from './tfjs.js';
import { fusedKernelsHere, type KernelArgs } from './wasmHeap.js';

const BATCHED = 'BtxBatchMatMul';
const GROUPED = 'BtxGroupedMatMul';

/** The parts of tfjs-backend-wasm's BackendWasm that the kernels use. */
export interface WasmBackend {
  wasm: {
    cwrap(name: string, ret: null, args: string[]): (...args: unknown[]) => void;
    tfjs: {
      registerTensor(id: number, size: number, memoryOffset: number): void;
      disposeData(id: number): void;
    };
  };
  dataIdNextNumber: number;
  dataIdMap: { get(dataId: object): { id: number; memoryOffset: number } };
  makeOutput(shape: number[], dtype: 'float32'): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array;
  disposeData(dataId: object): void;
}

function int32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(new Int32Array(values).buffer);
}

let exported: { matMul: (...args: unknown[]) => void; transpose: (...args: unknown[]) => void } | undefined;

/** 2-D products and transposes of [rows, cols] views at element offsets into tensors' memory. */
export function viewOps(be: WasmBackend) {
  exported ??= {
    // BatchMatMul(a_id, a_shape, a_rank, b_id, b_shape, b_rank, transpose_a, transpose_b, out_id)
    matMul: be.wasm.cwrap('BatchMatMul', null, ['number', 'array', 'number', 'number', 'array', 'number', 'number', 'number', 'number']), // prettier-ignore
    // Transpose(x_id, x_shape, x_rank, dtype, out_id, perm, perm_length)
    transpose: be.wasm.cwrap('Transpose', null, ['number', 'array', 'number', 'number', 'number', 'array', 'number']), // prettier-ignore
  };
  const { matMul, transpose } = exported;
  const view = (t: tf.TensorInfo, start: number, size: number) => {
    const id = be.dataIdNextNumber++;
    be.wasm.tfjs.registerTensor(id, size, be.dataIdMap.get(t.dataId).memoryOffset + 4 * start);
    return id;
  };
  // Forgetting a view (and the XNNPACK operator cached on it) leaves the memory with its tensor.
  const forget = (...ids: number[]) => ids.forEach((id) => be.wasm.tfjs.disposeData(id));
  type At = [tensor: tf.TensorInfo, offset: number];
  return {
    /** out (m x n) = a (m x k) @ b (k x n) */
    matMul([a, aAt]: At, [b, bAt]: At, [out, outAt]: At, m: number, k: number, n: number): void {
      const ids = [view(a, aAt, m * k), view(b, bAt, k * n), view(out, outAt, m * n)] as const;
      matMul(ids[0], int32Bytes([1, m, k]), 3, ids[1], int32Bytes([1, k, n]), 3, 0, 0, ids[2]);
      forget(...ids);
    },
    /** out (cols x rows) = x (rows x cols)^T */
    transpose([x, xAt]: At, [out, outAt]: At, rows: number, cols: number): void {
      const ids = [view(x, xAt, rows * cols), view(out, outAt, rows * cols)] as const;
      transpose(ids[0], int32Bytes([rows, cols]), 2, 0 /* float32 */, ids[1], int32Bytes([1, 0]), 2);
      forget(...ids);
    },
  };
}

function batchMatMulKernel({ inputs, backend }: KernelArgs): tf.TensorInfo {
  const be = backend as WasmBackend;
  const [a, b] = [inputs.a!, inputs.b!];
  const [batch, m, k] = a.shape as [number, number, number];
  const n = b.shape[2]!;
  if (b.shape[0] !== batch || b.shape[1] !== k || a.dtype !== 'float32' || b.dtype !== 'float32') {
    throw new Error(`${BATCHED}: float32 [B, m, k] x [B, k, n], got [${a.shape}] x [${b.shape}]`);
  }
  const ops = viewOps(be);
  const out = be.makeOutput([batch, m, n], 'float32');
  for (let i = 0; i < batch; i++) ops.matMul([a, i * m * k], [b, i * k * n], [out, i * m * n], m, k, n);
  return out;
}

/**
 * Rows in consecutive groups of attrs.sizes. Forward: a [R, k] x b [G, k, n] -> [R, n], group g's rows
 * times b[g]. With attrs.weights (the gradient of b): a [R, k], b [R, n] -> [G, k, n], a_g^T b_g,
 * zero for an empty group; each a_g is transposed into a scratch tensor first.
 */
function groupedMatMulKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const be = backend as WasmBackend;
  const [a, b] = [inputs.a!, inputs.b!];
  const { sizes, weights } = attrs as unknown as { sizes: number[]; weights: boolean };
  const [rows, k] = a.shape as [number, number];
  const n = b.shape[b.shape.length - 1]!;
  const ops = viewOps(be);
  let start = 0;
  if (!weights) {
    const out = be.makeOutput([rows, n], 'float32');
    sizes.forEach((size, g) => {
      if (size > 0) ops.matMul([a, start * k], [b, g * k * n], [out, start * n], size, k, n);
      start += size;
    });
    return out;
  }
  const out = be.makeOutput([sizes.length, k, n], 'float32');
  be.typedArrayFromHeap(out).fill(0);
  const scratch = be.makeOutput([k * Math.max(1, ...sizes)], 'float32');
  sizes.forEach((size, g) => {
    if (size > 0) {
      ops.transpose([a, start * k], [scratch, 0], size, k);
      ops.matMul([scratch, 0], [b, start * n], [out, g * k * n], k, size, n);
    }
    start += size;
  });
  be.disposeData(scratch.dataId);
  return out;
}

for (const [kernelName, kernelFunc] of [
  [BATCHED, batchMatMulKernel],
  [GROUPED, groupedMatMulKernel],
] as const) {
  tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc: kernelFunc as unknown as tf.KernelFunc });
}

function product(a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor3D {
  if (tf.getBackend() !== 'wasm') return tf.matMul(a, b);
  return tf.engine().runKernel(BATCHED, { a, b }) as tf.Tensor3D;
}

function transposeLast(t: tf.Tensor3D): tf.Tensor3D {
  return tf.transpose(t, [0, 2, 1]);
}

/** a @ b for a [B, m, k], b [B, k, n]; gradients dy @ b^T and a^T @ dy, also on the fast path. */
export const batchMatMul = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [a, b, save] = args as [tf.Tensor3D, tf.Tensor3D, tf.GradSaveFunc];
  save([a, b]);
  return {
    value: product(a, b),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [as, bs] = saved as [tf.Tensor3D, tf.Tensor3D];
      const g = dy as tf.Tensor3D;
      return [product(g, transposeLast(bs)), product(transposeLast(as), g)];
    },
  };
}) as (a: tf.Tensor3D, b: tf.Tensor3D) => tf.Tensor3D;

/** Grouped rows a [R, k] times b [G, k, n]; or, with `weights`, a_g^T b_g for a [R, k], b [R, n]. */
function groupedProduct(a: tf.Tensor2D, b: tf.Tensor, sizes: number[], weights: boolean): tf.Tensor {
  if (fusedKernelsHere()) {
    const attrs = { sizes, weights } as unknown as tf.NamedAttrMap;
    return tf.engine().runKernel(GROUPED, { a, b }, attrs) as tf.Tensor;
  }
  const parts: tf.Tensor[] = [];
  let start = 0;
  sizes.forEach((size, g) => {
    const rows = tf.slice(a, [start, 0], [size, -1]);
    if (weights) {
      const dy = tf.slice(b, [start, 0], [size, -1]) as tf.Tensor2D;
      parts.push(size > 0 ? tf.matMul(rows, dy, true, false) : tf.zeros([a.shape[1], b.shape[1]!]));
    } else if (size > 0) {
      const [k, n] = [b.shape[1]!, b.shape[2]!];
      parts.push(tf.matMul(rows, tf.reshape(tf.slice(b, [g, 0, 0], [1, k, n]), [k, n])));
    }
    start += size;
  });
  return weights ? tf.stack(parts) : tf.concat(parts);
}

/**
 * x [R, k] whose rows come in consecutive groups of `sizes`, times w [G, k, n], one matrix per group:
 * [R, n]. Gradients: dy_g @ w_g^T per group, and x_g^T @ dy_g per group (zero for an empty group).
 */
export function groupedMatMul(x: tf.Tensor2D, w: tf.Tensor3D, sizes: number[]): tf.Tensor2D {
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xs, ws, save] = args as [tf.Tensor2D, tf.Tensor3D, tf.GradSaveFunc];
    save([xs, ws]);
    return {
      value: groupedProduct(xs, ws, sizes, false),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xSaved, wSaved] = saved as [tf.Tensor2D, tf.Tensor3D];
        const g = dy as tf.Tensor2D;
        return [
          groupedProduct(g, transposeLast(wSaved), sizes, false),
          groupedProduct(xSaved, g, sizes, true),
        ];
      },
    };
  }) as (x: tf.Tensor2D, w: tf.Tensor3D) => tf.Tensor2D;
  return f(x, w);
}
