// What our kernels on tfjs-backend-wasm share: a kernel allocates its outputs with the backend and
// reads and writes tensors where they lie in wasm memory (byte addresses for our WebAssembly
// modules, Float32Array/Int32Array views for JavaScript), so nothing is copied in or out. Uses
// BackendWasm's data id map, makeOutput and typedArrayFromHeap and its emscripten module's heap and
// malloc (tfjs-backend-wasm 4.22, pinned; see batchMatMul.ts for the other internals used).
import * as tf from './tfjs.js';
import type { WasmMemory } from '../util/webAssembly.js';

/** What tfjs passes a kernel registered from JavaScript (ours, on the wasm backend). */
export interface KernelArgs {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}

/** Whether our wasm kernels run here (the wasm backend); elsewhere the tf-op compositions do. */
export function fusedKernelsHere(): boolean {
  return tf.getBackend() === 'wasm';
}

/** The parts of tfjs-backend-wasm's emscripten module (BackendWasm.wasm) our kernels use. */
export interface WasmModule {
  asm: { memory: WasmMemory };
  HEAPU8: Uint8Array;
  _malloc(bytes: number): number;
  _free(ptr: number): void;
}

/** The wasm backend's emscripten module. */
export function wasmModule(backend: unknown): WasmModule {
  return (backend as { wasm: WasmModule }).wasm;
}

/**
 * Floats of wasm memory from byte address `at` (`length` of them, or to the end). Take the view
 * where it is used: an allocation can grow the memory, which detaches views taken before it.
 */
export function floatsAt(wasm: WasmModule, at: number, length?: number): Float32Array {
  return new Float32Array(wasm.HEAPU8.buffer, at, length);
}

/** `bytes` of wasm memory from the backend's malloc, kept until freed; an error naming `what` if none is left. */
export function allocate(wasm: WasmModule, bytes: number, what: string): number {
  const at = wasm._malloc(bytes);
  if (at === 0) throw new Error(`out of wasm memory for ${what} (${bytes} bytes)`);
  return at;
}

const replaced = new Set<string>();

/**
 * Route the wasm backend's kernel `name` through `make(original)`, where `original` is the backend's
 * own kernel (for the cases ours hands back). Once per process; nothing where there is no such kernel.
 */
export function replaceWasmKernel(name: string, make: (original: tf.KernelFunc) => tf.KernelFunc): void {
  const original = tf.getKernel(name, 'wasm');
  if (replaced.has(name) || !original) return;
  tf.unregisterKernel(name, 'wasm');
  tf.registerKernel({ ...original, kernelFunc: make(original.kernelFunc) });
  replaced.add(name);
}

/** Byte address of a tensor's data in wasm memory (BackendWasm's data id map). */
export function addressOf(backend: unknown, t: tf.TensorInfo): number {
  const be = backend as { dataIdMap: { get(dataId: object): { memoryOffset: number } } };
  return be.dataIdMap.get(t.dataId).memoryOffset;
}

/** The parts of tfjs-backend-wasm's BackendWasm that a kernel written in JavaScript needs. */
export interface WasmHeap {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array | Int32Array;
}
