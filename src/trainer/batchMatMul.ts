// Grouped matrix products, rows [R, k] in consecutive groups times one [k, n] matrix per group
// (each MoE expert's SwiGLU on its own tokens), plus 2-D products, transposes and softmaxes on views
// into tensors' memory for the fused MoE, attention and loss kernels (moeKernels.ts,
// attentionKernel.ts, crossEntropyKernel.ts). A batched product is tf.matMul itself: on the wasm
// backend every product is our GEMM (gemm.ts, through matMulKernel.ts), so a batched or transposed
// product costs what a plain one does.
//
// On the wasm backend the products on views are GEMM calls on byte addresses into a
// tensor's memory, so nothing is copied; the transpose and softmax of a view go through the
// backend's exported Transpose and Softmax (cwrap, on tensor ids registered at the view's offsets). Those are internals
// of tfjs-backend-wasm 4.22 (pinned): the data id map, the id counter and the module's cwrap.
// Other backends use tf.matMul and tf.slice.
import * as tf from './tfjs.js';
import { fusedKernelsHere, type KernelArgs } from './wasmHeap.js';
import { rowMajor, transposed } from './gemm.js';
import { requireWasmGemm } from './matMulKernel.js';

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

let exported: { transpose: (...args: unknown[]) => void; softmax: (...args: unknown[]) => void } | undefined;

/** 2-D products, transposes and softmaxes of [rows, cols] views at element offsets into tensors' memory. */
export function viewOps(be: WasmBackend) {
  exported ??= {
    // Transpose(x_id, x_shape, x_rank, dtype, out_id, perm, perm_length)
    transpose: be.wasm.cwrap('Transpose', null, ['number', 'array', 'number', 'number', 'number', 'array', 'number']), // prettier-ignore
    // Softmax(x_id, out_id, channels, batch): XNNPACK's, over contiguous rows
    softmax: be.wasm.cwrap('Softmax', null, ['number', 'number', 'number', 'number']),
  };
  const { transpose, softmax } = exported;
  const gemm = requireWasmGemm();
  const view = (t: tf.TensorInfo, start: number, size: number) => {
    const id = be.dataIdNextNumber++;
    be.wasm.tfjs.registerTensor(id, size, be.dataIdMap.get(t.dataId).memoryOffset + 4 * start);
    return id;
  };
  // Forgetting a view (and whatever the backend cached on it) leaves the memory with its tensor.
  const forget = (...ids: number[]) => ids.forEach((id) => be.wasm.tfjs.disposeData(id));
  type At = [tensor: tf.TensorInfo, offset: number];
  return {
    /**
     * out (m x n) = a (m x k) @ b (k x n); with `flags.a` the view a holds a^T (k x m), with
     * `flags.b` the view b holds b^T (n x k), read through strides by our GEMM.
     */
    matMul(
      [a, aAt]: At,
      [b, bAt]: At,
      [out, outAt]: At,
      m: number,
      k: number,
      n: number,
      flags: { a?: boolean; b?: boolean } = {},
    ): void {
      const at = (t: tf.TensorInfo, offset: number) => be.dataIdMap.get(t.dataId).memoryOffset + 4 * offset;
      const aView = flags.a ? transposed(at(a, aAt), m) : rowMajor(at(a, aAt), k);
      const bView = flags.b ? transposed(at(b, bAt), k) : rowMajor(at(b, bAt), n);
      gemm.product(aView, bView, { at: at(out, outAt), ldc: 4 * n }, m, k, n);
    },
    /** out (cols x rows) = x (rows x cols)^T */
    transpose([x, xAt]: At, [out, outAt]: At, rows: number, cols: number): void {
      const ids = [view(x, xAt, rows * cols), view(out, outAt, rows * cols)] as const;
      transpose(ids[0], int32Bytes([rows, cols]), 2, 0 /* float32 */, ids[1], int32Bytes([1, 0]), 2);
      forget(...ids);
    },
    /** out (rows x cols) = softmax of each row of x (rows x cols), both contiguous */
    softmax([x, xAt]: At, [out, outAt]: At, rows: number, cols: number): void {
      const ids = [view(x, xAt, rows * cols), view(out, outAt, rows * cols)] as const;
      softmax(ids[0], ids[1], cols, rows);
      forget(...ids);
    },
  };
}

/**
 * Rows in consecutive groups of attrs.sizes. Forward: a [R, k] x b [G, k, n] -> [R, n], group g's rows
 * times b[g] (with attrs.transposeB, b is [G, n, k] and holds each b[g] transposed). With
 * attrs.weights (the gradient of b): a [R, k], b [R, n] -> [G, k, n], a_g^T b_g, zero for an empty
 * group.
 */
function groupedMatMulKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const be = backend as WasmBackend;
  const [a, b] = [inputs.a!, inputs.b!];
  const { sizes, weights, transposeB } = attrs as unknown as GroupedAttrs;
  const [rows, k] = a.shape as [number, number];
  const n = b.shape[transposeB ? 1 : b.shape.length - 1]!;
  const ops = viewOps(be);
  let start = 0;
  if (!weights) {
    const out = be.makeOutput([rows, n], 'float32');
    sizes.forEach((size, g) => {
      if (size > 0)
        ops.matMul([a, start * k], [b, g * k * n], [out, start * n], size, k, n, { b: transposeB });
      start += size;
    });
    return out;
  }
  const out = be.makeOutput([sizes.length, k, n], 'float32');
  be.typedArrayFromHeap(out).fill(0);
  sizes.forEach((size, g) => {
    if (size > 0) ops.matMul([a, start * k], [b, start * n], [out, g * k * n], k, size, n, { a: true });
    start += size;
  });
  return out;
}

interface GroupedAttrs {
  sizes: number[];
  weights: boolean;
  transposeB: boolean;
}

tf.registerKernel({
  kernelName: GROUPED,
  backendName: 'wasm',
  kernelFunc: groupedMatMulKernel as unknown as tf.KernelFunc,
});

/** Grouped rows a [R, k] times b [G, k, n] (or b^T stored [G, n, k]); or, with `weights`, a_g^T b_g. */
function groupedProduct(
  a: tf.Tensor2D,
  b: tf.Tensor,
  sizes: number[],
  weights: boolean,
  transposeB = false,
): tf.Tensor {
  if (fusedKernelsHere()) {
    const attrs = { sizes, weights, transposeB } as unknown as tf.NamedAttrMap;
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
      const [r, c] = [b.shape[1]!, b.shape[2]!];
      parts.push(tf.matMul(rows, tf.reshape(tf.slice(b, [g, 0, 0], [1, r, c]), [r, c]), false, transposeB));
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
        return [groupedProduct(g, wSaved, sizes, false, true), groupedProduct(xSaved, g, sizes, true)];
      },
    };
  }) as (x: tf.Tensor2D, w: tf.Tensor3D) => tf.Tensor2D;
  return f(x, w);
}
