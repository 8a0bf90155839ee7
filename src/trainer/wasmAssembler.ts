// Our WebAssembly kernels' text (gemmWat.ts, rowKernelsWat.ts) assembled by wabt (the WebAssembly
// project's assembler, compiled to JS; ~50 ms to load, once per process) and instantiated on
// tfjs-backend-wasm's own memory, so that a kernel reads and writes tensors where they are.
import v8 from 'node:v8';
import wabtInit from 'wabt';
import { webAssembly, type WasmMemory } from '../util/webAssembly.js';

type Wabt = Awaited<ReturnType<typeof wabtInit>>;

let wabt: Promise<Wabt> | undefined;

function wasmApi() {
  if (!webAssembly) throw new Error('this runtime has no WebAssembly');
  return webAssembly;
}

async function assemble(text: string, relaxed: boolean): Promise<Uint8Array> {
  const parsed = (await (wabt ??= wabtInit())).parseWat('kernel.wat', text, {
    simd: true,
    relaxed_simd: relaxed,
  });
  try {
    return parsed.toBinary({}).buffer;
  } finally {
    parsed.destroy();
  }
}

/** A module whose one function uses f32x4.relaxed_madd: validates only where relaxed SIMD is on. */
const RELAXED_PROBE_WAT = `(module (func (param v128 v128 v128) (result v128)
  (f32x4.relaxed_madd (local.get 0) (local.get 1) (local.get 2))))`;

/**
 * Whether f32x4.relaxed_madd compiles here. Node 20 keeps relaxed SIMD behind
 * --experimental-wasm-relaxed-simd, which is set here at run time (v8.setFlagsFromString, before a
 * module is compiled) because neither NODE_OPTIONS nor our users' `node` command lines would carry
 * it; Node 22 has it on.
 */
export async function relaxedSimd(): Promise<boolean> {
  const probe = await assemble(RELAXED_PROBE_WAT, true);
  if (wasmApi().validate(probe)) return true;
  v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
  return wasmApi().validate(probe);
}

/** The exports of `text` (a module importing `env.memory`) instantiated on `memory`. */
export async function instantiate(text: string, memory: WasmMemory, relaxed = false): Promise<unknown> {
  const api = wasmApi();
  const module = new api.Module(await assemble(text, relaxed));
  return new api.Instance(module, { env: { memory } }).exports;
}
