// The part of the WebAssembly global this project uses, typed: its TypeScript libs (ES2022, Node's
// types) do not declare WebAssembly.

/** A WebAssembly.Memory (tfjs-backend-wasm's, imported by our kernels). */
export interface WasmMemory {
  readonly buffer: ArrayBuffer;
}

export interface WebAssemblyApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports?: Record<string, Record<string, unknown>>) => { exports: unknown };
  /** A shared memory (the mix's SIMD arena, read by worker threads). */
  Memory: new (desc: { initial: number; maximum: number; shared: true }) => { buffer: SharedArrayBuffer };
}

/** The global, or undefined in a runtime without WebAssembly. */
export const webAssembly = (globalThis as unknown as { WebAssembly?: WebAssemblyApi }).WebAssembly;
