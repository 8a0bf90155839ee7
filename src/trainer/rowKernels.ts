// The row-wise kernels of rowKernelsWat.ts, compiled once against tfjs-backend-wasm's memory (as the
// GEMM is, gemm.ts) and called on byte addresses of the tensors. initBackend installs them with the
// wasm backend; rmsNorm.ts and attentionKernel.ts call them.
import * as tf from './tfjs.js';
import { ROW_KERNELS_WAT } from './rowKernelsWat.js';
import { instantiate } from './wasmAssembler.js';
import { wasmModule } from './wasmHeap.js';

export interface RowKernels {
  rmsNorm(x: number, w: number, y: number, n: number, d: number, eps: number): void;
  rmsNormGrad(
    dy: number,
    x: number,
    w: number,
    dx: number,
    dw: number,
    n: number,
    d: number,
    eps: number,
  ): void;
  softmaxGrad(p: number, ds: number, rows: number, d: number): void;
  scale(x: number, count: number, factor: number): void;
  adamw(
    w: number,
    g: number,
    out: number,
    m: number,
    v: number,
    count: number,
    clip: number,
    keep: number,
    stepSize: number,
    beta1: number,
    beta2: number,
    eps: number,
  ): void;
  rotary(
    x: number,
    out: number,
    cos: number,
    sin: number,
    rows: number,
    width: number,
    headDim: number,
    seqLen: number,
    sign: number,
  ): void;
}

let installed: RowKernels | undefined;

/** Compile the row kernels against the wasm backend's memory (the backend must be set). */
export async function installRowKernels(): Promise<RowKernels> {
  installed ??= (await instantiate(ROW_KERNELS_WAT, wasmModule(tf.backend()).asm.memory)) as RowKernels;
  return installed;
}

/** The row kernels; throws before installRowKernels has run (only wasm-backend kernels call this). */
export function rowKernels(): RowKernels {
  if (!installed) throw new Error('the wasm row kernels are not installed (installRowKernels)');
  return installed;
}
