// Identity and same-dtype Cast without a copy on the wasm backend.
//
// tfjs keeps every tensor a gradient will need by cloning it (the engine's
// saveTensorsForBackwardMode runs Identity), and Mul's gradient casts its saved input to float32.
// The CPU backend answers both by sharing the data under a reference count; tfjs-backend-wasm 4.22
// copies it, which at d64 was ~120 of a training step's 659 kernels (Identity and Cast), each a
// malloc, a copy and a kernel launch. Tensor data is never written after its kernel made it
// (Variable.assign swaps in new data), so sharing is as safe here as on the CPU backend.
import * as tf from './tfjs.js';
import { replaceWasmKernel } from './wasmHeap.js';

/** Replace the wasm backend's Identity and Cast; call after @tensorflow/tfjs-backend-wasm is imported. */
export function shareDataOnWasmIdentityAndCast(): void {
  for (const name of [tf.Identity, tf.Cast]) {
    replaceWasmKernel(name, (original) => (args) => {
      const x = args.inputs.x!;
      const dtype = name === tf.Cast ? (args.attrs as { dtype: tf.DataType }).dtype : x.dtype;
      if (dtype !== x.dtype || dtype === 'string') return original(args);
      (args.backend as unknown as { incRef(dataId: object): void }).incRef(x.dataId);
      return { dataId: x.dataId, shape: x.shape, dtype };
    });
  }
}
