// Gather of whole rows (axis 0, float32) on the wasm backend as row copies in wasm memory.
//
// tfjs-backend-wasm 4.22's GatherV2 walks the output element by element with index arithmetic: the
// embedding lookup took 2.7 ms of a d64 training step ([512] ids of a [259, 64] table, tf.profile)
// and 37-87 ms of a d256 one ([2048] of [259, 256]), ~80 ns an element. A row is contiguous, so
// here it is one copyWithin (a memmove) per index. Other gathers (another axis or dtype, batch
// dimensions) stay on the backend's kernel.
import * as tf from './tfjs.js';
import { addressOf, floatsAt, replaceWasmKernel, wasmModule, type WasmHeap } from './wasmHeap.js';

/** Replace the wasm backend's GatherV2; call after @tensorflow/tfjs-backend-wasm is imported. */
export function gatherRowsOnWasm(): void {
  replaceWasmKernel(tf.GatherV2, (original) => (args) => {
    const { x, indices } = args.inputs as { x: tf.TensorInfo; indices: tf.TensorInfo };
    const { axis, batchDims } = args.attrs as { axis: number; batchDims: number };
    const rank = x.shape.length;
    const rowAxis = (axis < 0 ? axis + rank : axis) === 0;
    if (!rowAxis || batchDims !== 0 || x.dtype !== 'float32' || indices.dtype !== 'int32' || rank < 1) {
      return original(args);
    }
    const be = args.backend as unknown as WasmHeap;
    const rows = x.shape[0]!;
    const width = x.shape.slice(1).reduce((a, b) => a * b, 1);
    // Checked before anything is allocated, so that a bad index leaks no output.
    const ids = be.typedArrayFromHeap(indices);
    for (const i of ids)
      if (!(i >= 0 && i < rows)) throw new Error(`gather: index ${i} outside [0, ${rows})`);
    const out = be.makeOutput([...indices.shape, ...x.shape.slice(1)], 'float32');
    const heap = floatsAt(wasmModule(be), 0);
    const [from, to] = [addressOf(be, x) / 4, addressOf(be, out) / 4];
    // The ids again: the output's allocation may have grown the memory and detached the first view.
    be.typedArrayFromHeap(indices).forEach((i, r) => heap.copyWithin(to + r * width, from + i * width, from + (i + 1) * width)); // prettier-ignore
    return out;
  });
}
