// Batched matrix products [B, m, k] x [B, k, n] (attention's q k^T and p v) at XNNPACK speed on the
// wasm backend.
//
// tfjs-backend-wasm hands a matMul to XNNPACK only when it is one 2-D product without transpose flags;
// a batched product, or one with transposeA/B, falls to a scalar loop: 0.3-0.7 GFLOP/s against
// 3-7 GFLOP/s for the same products done as 2-D XNNPACK calls, measured side by side on the shared
// machine for [32, 256, 64] x [32, 64, 256] and [32, 256, 256] x [32, 256, 64] (issue 10's profile:
// attention's batched matmuls were 54% of a d256 training step for 14% of its FLOPs).
//
// The 'BtxBatchMatMul' kernel below runs the B products one by one through the backend's own 2-D
// path (its exported BatchMatMul with a batch of 1), on views of the operands: tensor ids registered
// at offsets into the batch's memory, so nothing is copied. That needs three internals of
// tfjs-backend-wasm 4.22 (the data id map, the id counter and the module's cwrap), checked below.
// The gradient uses explicit transposes (one Transpose op each) so that it stays on the fast path too.
// Other backends use tf.matMul.
import * as tf from './tfjs.js';

const KERNEL = 'BtxBatchMatMul';

/** The parts of tfjs-backend-wasm's BackendWasm that the kernel uses. */
interface WasmBackend {
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
}

let wasmMatMul: ((...args: unknown[]) => void) | undefined;

function int32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(new Int32Array(values).buffer);
}

function batchMatMulKernel({ inputs, backend }: { inputs: tf.NamedTensorInfoMap; backend: unknown }) {
  const be = backend as WasmBackend;
  const [a, b] = [inputs.a!, inputs.b!];
  const [batch, m, k] = a.shape as [number, number, number];
  const n = b.shape[2]!;
  if (b.shape[0] !== batch || b.shape[1] !== k || a.dtype !== 'float32' || b.dtype !== 'float32') {
    throw new Error(`${KERNEL}: float32 [B, m, k] x [B, k, n], got [${a.shape}] x [${b.shape}]`);
  }
  // BatchMatMul(a_id, a_shape, a_rank, b_id, b_shape, b_rank, transpose_a, transpose_b, out_id)
  wasmMatMul ??= be.wasm.cwrap('BatchMatMul', null, [
    'number',
    'array',
    'number',
    'number',
    'array',
    'number',
    'number',
    'number',
    'number',
  ]);
  const out = be.makeOutput([batch, m, n], 'float32');
  const offset = (t: tf.TensorInfo) => be.dataIdMap.get(t.dataId).memoryOffset;
  const [aBase, bBase, outBase] = [offset(a), offset(b), offset(out)];
  const [aShape, bShape] = [int32Bytes([1, m, k]), int32Bytes([1, k, n])];
  const view = (base: number, size: number, i: number) => {
    const id = be.dataIdNextNumber++;
    be.wasm.tfjs.registerTensor(id, size, base + 4 * size * i);
    return id;
  };
  for (let i = 0; i < batch; i++) {
    const [ai, bi, oi] = [view(aBase, m * k, i), view(bBase, k * n, i), view(outBase, m * n, i)];
    wasmMatMul(ai, aShape, 3, bi, bShape, 3, 0, 0, oi);
    // Forgets the views (and the XNNPACK operator cached on bi); the memory stays with its tensors.
    for (const id of [ai, bi, oi]) be.wasm.tfjs.disposeData(id);
  }
  return out;
}

tf.registerKernel({
  kernelName: KERNEL,
  backendName: 'wasm',
  kernelFunc: batchMatMulKernel as tf.KernelFunc,
});

function product(a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor3D {
  if (tf.getBackend() !== 'wasm') return tf.matMul(a, b);
  return tf.engine().runKernel(KERNEL, { a, b }) as tf.Tensor3D;
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
