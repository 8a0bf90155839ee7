// Our single-precision matrix product on tfjs-backend-wasm's memory (the module is gemmWat.ts),
// 2-2.5x XNNPACK's on one thread here, which the backend's own matMul uses.
//
// The module imports the backend's WebAssembly.Memory, so it reads and writes tensors where they
// are: a product is one call on byte addresses, nothing copied in or out. Its packing scratch is
// one block allocated with the backend's malloc and kept (grown when a larger product needs it).
//
// Fused multiply-add is WebAssembly's relaxed SIMD (f32x4.relaxed_madd: one rounding where the CPU
// has FMA, a multiply and an add otherwise; V8 picks once per process, so a machine computes the
// same bits every time; wasmAssembler.ts turns it on in Node 20). BTX_GEMM_FMA=0 keeps the
// multiply-then-add module.
import { gemmWat, PANEL_BYTES, TILE_ROWS } from './gemmWat.js';
import { instantiate, relaxedSimd } from './wasmAssembler.js';
import { allocate, type WasmModule } from './wasmHeap.js';

/** Environment switch: 0 keeps the multiply-then-add kernel even where fused multiply-add runs. */
export const GEMM_FMA_ENV = 'BTX_GEMM_FMA';

/** An m x k or k x n operand: byte address and byte strides between rows and between columns. */
export interface Strided {
  at: number;
  rowStride: number;
  colStride: number;
}

/** Where a product goes: byte address, bytes between rows, and whether it adds to what is there. */
export interface Output {
  at: number;
  ldc: number;
  accumulate?: boolean;
}

export interface Gemm {
  /** Fused multiply-add (relaxed SIMD) or a multiply then an add. */
  readonly fma: boolean;
  /** c (m x n, rows `ldc` bytes apart) = a (m x k) @ b (k x n), or c += a @ b with `c.accumulate`. */
  product(a: Strided, b: Strided, c: Output, m: number, k: number, n: number): void;
}

/** Row-major m x n (or a view into a tensor's memory): `cols` floats per row. */
export function rowMajor(at: number, cols: number): Strided {
  return { at, rowStride: 4 * cols, colStride: 4 };
}

/** The transpose of a row-major matrix stored rows x cols, read as cols x rows. */
export function transposed(at: number, storedCols: number): Strided {
  return { at, rowStride: 4, colStride: 4 * storedCols };
}

/** Blocks of k: a 6 x 256 strip of A and a 256 x 8 panel of B (14 KiB) stay in L1 (32 KiB a core here). */
const K_BLOCK = 256;
/** A block of A this many bytes at most stays in L2 (512 KiB a core here) beside B's panels. */
const A_BLOCK_BYTES = 192 * 1024;

/** Compile the kernel against the backend's memory; `fma` false forces multiply-then-add. */
export async function compileGemm(wasm: WasmModule, fma = process.env[GEMM_FMA_ENV] !== '0'): Promise<Gemm> {
  const useFma = fma && (await relaxedSimd());
  const exports = (await instantiate(gemmWat(useFma), wasm.asm.memory, useFma)) as { gemm: unknown };
  const gemm = exports.gemm as (...args: number[]) => void;
  const rows = useFma ? TILE_ROWS.fma : TILE_ROWS.separate;
  let scratch = { at: 0, bytes: 0 };
  return {
    fma: useFma,
    product(a, b, c, m, k, n) {
      if (m === 0 || n === 0) return;
      const kc = Math.max(1, Math.min(k, K_BLOCK));
      const mc = Math.max(rows, Math.floor(A_BLOCK_BYTES / (4 * kc) / rows) * rows);
      const bytes = Math.ceil(n / 8) * kc * PANEL_BYTES + mc * kc * 4 + rows * PANEL_BYTES;
      if (bytes > scratch.bytes) {
        if (scratch.bytes > 0) wasm._free(scratch.at);
        scratch = { at: 0, bytes: 0 };
        scratch = { at: allocate(wasm, bytes, "the GEMM's packing scratch"), bytes };
      }
      gemm(
        a.at,
        a.rowStride,
        a.colStride,
        b.at,
        b.rowStride,
        b.colStride,
        c.at,
        c.ldc,
        m,
        k,
        n,
        mc,
        kc,
        scratch.at,
        c.accumulate ? 1 : 0,
      );
    },
  };
}
