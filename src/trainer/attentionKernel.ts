// Causal self-attention (grouped key/value heads) as one kernel forward and one backward on the wasm
// backend; other backends compose tf ops (causalAttentionOps, also the tests' reference).
//
// As tf ops, attention is four head-splitting transposes forward and four back, a tile per grouped
// key/value tensor, a [B*H, T, T] mask add, a softmax and batched products that multiply the masked
// half of the scores too. Here q, k and v stay in the projections' [B*T, heads*hd] layout: each
// head is a strided view that our GEMM (gemm.ts) reads and writes in place, a kv head serves its
// query heads by index (HF repeat_kv), and rows go in blocks of 64 so the products skip the blocks
// above the diagonal (with T = 256, 10 of the 16 blocks are computed). A block's scores are
// [64, i1] (only the columns its rows can see), kept packed for the backward pass; softmax is the
// backend's XNNPACK kernel on a block (a JS loop with Math.exp took ~3x the time), its gradient
// ours (rowKernels.ts). q arrives scaled (model.ts folds 1/sqrt(hd) into its rotary tables).
import * as tf from './tfjs.js';
import { rowMajor, transposed, type Strided } from './gemm.js';
import { requireWasmGemm, wasmGemm } from './matMulKernel.js';
import { viewOps, type WasmBackend } from './batchMatMul.js';
import {
  addressOf,
  floatsAt,
  fusedKernelsHere,
  wasmModule,
  type KernelArgs,
  type WasmHeap,
} from './wasmHeap.js';
import { cachedConstant } from './stepConstants.js';
import { rowKernels } from './rowKernels.js';

export interface AttentionShape {
  batch: number;
  seqLen: number;
  heads: number;
  kvHeads: number;
  headDim: number;
}

/** Rows of the score blocks: the causal skip works in whole blocks. */
const BLOCK = 64;

const FORWARD = 'BtxCausalAttention';
const BACKWARD = 'BtxCausalAttentionGrad';

/** Views of one head's rows in a [B*T, heads*hd] tensor at byte address `base`. */
function heads(base: number, s: AttentionShape, count: number) {
  const width = count * s.headDim;
  const at = (b: number, h: number, row: number) => base + 4 * ((b * s.seqLen + row) * width + h * s.headDim);
  return {
    /** rows from `row` on, T x hd */
    rows: (b: number, h: number, row = 0): Strided => ({
      at: at(b, h, row),
      rowStride: 4 * width,
      colStride: 4,
    }),
    /** the same rows transposed, hd x T */
    cols: (b: number, h: number, row = 0): Strided => ({
      at: at(b, h, row),
      rowStride: 4,
      colStride: 4 * width,
    }),
    out: (b: number, h: number, row = 0, accumulate = false) => ({
      at: at(b, h, row),
      ldc: 4 * width,
      accumulate,
    }),
  };
}

/** Float32 outputs (and scratch) of the given shapes, allocated by the backend. */
function outputsOf(backend: unknown, shapes: number[][]): tf.TensorInfo[] {
  return shapes.map((shape) => (backend as WasmHeap).makeOutput(shape, 'float32'));
}

/** The row blocks of a head's scores, each [i1 - i0, i1] (the columns a causal row block needs), packed. */
function scoreBlocks(T: number): { blocks: { i0: number; i1: number; at: number }[]; size: number } {
  const blocks = [];
  let size = 0;
  for (let i0 = 0; i0 < T; i0 += BLOCK) {
    const i1 = Math.min(T, i0 + BLOCK);
    blocks.push({ i0, i1, at: size });
    size += (i1 - i0) * i1;
  }
  return { blocks, size };
}

/** Softmax input of masked entries: exp underflows to exactly 0, as with the ops' additive mask. */
const MASKED = -1e9;

/**
 * out [B*T, H*hd] = softmax(q k^T + causal mask) v per head; probs [B*H, blocks] (scoreBlocks'
 * packing, zero above the diagonal), kept for the backward pass.
 */
function forwardKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo[] {
  const s = attrs as unknown as AttentionShape;
  const { q, k, v } = inputs as { q: tf.TensorInfo; k: tf.TensorInfo; v: tf.TensorInfo };
  const { batch: B, seqLen: T, heads: H, kvHeads: KV, headDim: hd } = s;
  const gemm = requireWasmGemm();
  const ops = viewOps(backend as WasmBackend);
  const { blocks, size } = scoreBlocks(T);
  const [out, probs, scratch] = outputsOf(backend, [[B * T, H * hd], [B * H, size], [BLOCK * T]]) as [
    tf.TensorInfo,
    tf.TensorInfo,
    tf.TensorInfo,
  ];
  const view = (t: tf.TensorInfo, count: number) => heads(addressOf(backend, t), s, count);
  const [Q, K, V, O] = [view(q, H), view(k, KV), view(v, KV), view(out, H)];
  const [pAt, sAt] = [addressOf(backend, probs), addressOf(backend, scratch)];
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / (H / KV));
      for (const { i0, i1, at } of blocks) {
        const [rows, offset] = [i1 - i0, (b * H + h) * size + at];
        gemm.product(Q.rows(b, h, i0), K.cols(b, g), { at: sAt, ldc: 4 * i1 }, rows, hd, i1);
        // Taken here: the GEMM's scratch and softmax's view ids allocate, which can grow the memory.
        const scores = floatsAt(wasmModule(backend), sAt);
        for (let r = 0; r < rows; r++) scores.fill(MASKED, r * i1 + i0 + r + 1, (r + 1) * i1);
        ops.softmax([scratch, 0], [probs, offset], rows, i1);
        gemm.product(rowMajor(pAt + 4 * offset, i1), V.rows(b, g), O.out(b, h, i0), rows, i1, hd);
      }
    }
  }
  (backend as WasmBackend).disposeData(scratch.dataId);
  return [out, probs];
}

/**
 * Per row block, with dP = dO v^T and dS = P * (dP - rowsum(P * dP)) (softmax's gradient; zero
 * above the diagonal, where P is): dq = dS k, and dS^T q, P^T dO added into dk, dv for the rows the
 * block reaches (a kv head also sums over the query heads it serves).
 */
function backwardKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo[] {
  const s = attrs as unknown as AttentionShape;
  const { dy, q, k, v, probs } = inputs as Record<'dy' | 'q' | 'k' | 'v' | 'probs', tf.TensorInfo>;
  const { batch: B, seqLen: T, heads: H, kvHeads: KV, headDim: hd } = s;
  const group = H / KV;
  const gemm = requireWasmGemm();
  const kernels = rowKernels();
  const { blocks, size } = scoreBlocks(T);
  const shapes = [[B * T, H * hd], [B * T, KV * hd], [B * T, KV * hd], [BLOCK * T]];
  const [dq, dk, dv, scratch] = outputsOf(backend, shapes) as [
    tf.TensorInfo,
    tf.TensorInfo,
    tf.TensorInfo,
    tf.TensorInfo,
  ];
  const view = (t: tf.TensorInfo, count: number) => heads(addressOf(backend, t), s, count);
  const [dO, Q, K, V, dQ, dK, dV] = [view(dy, H), view(q, H), view(k, KV), view(v, KV), view(dq, H), view(dk, KV), view(dv, KV)]; // prettier-ignore
  const [pAt, dsAt] = [addressOf(backend, probs), addressOf(backend, scratch)];
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / group);
      const fresh = h % group === 0;
      for (const { i0, i1, at } of blocks) {
        const [rows, offset] = [i1 - i0, (b * H + h) * size + at];
        gemm.product(dO.rows(b, h, i0), V.cols(b, g), { at: dsAt, ldc: 4 * i1 }, rows, hd, i1);
        kernels.softmaxGrad(pAt + 4 * offset, dsAt, rows, i1);
        gemm.product(rowMajor(dsAt, i1), K.rows(b, g), dQ.out(b, h, i0), rows, i1, hd);
        // Rows of dk, dv before this block already hold earlier blocks' sums; rows i0..i1 start here.
        for (const [r0, r1, accumulate] of [
          [0, i0, true],
          [i0, i1, !fresh],
        ] as const) {
          if (r1 === r0) continue;
          gemm.product(transposed(dsAt + 4 * r0, i1), Q.rows(b, h, i0), dK.out(b, g, r0, accumulate), r1 - r0, rows, hd); // prettier-ignore
          gemm.product(transposed(pAt + 4 * (offset + r0), i1), dO.rows(b, h, i0), dV.out(b, g, r0, accumulate), r1 - r0, rows, hd); // prettier-ignore
        }
      }
    }
  }
  (backend as WasmBackend).disposeData(scratch.dataId);
  return [dq, dk, dv];
}

for (const [kernelName, kernelFunc] of [
  [FORWARD, forwardKernel],
  [BACKWARD, backwardKernel],
] as const) {
  tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc: kernelFunc as unknown as tf.KernelFunc });
}

/** Additive causal mask [T, T]: 0 on and below the diagonal, -1e9 above. */
function causalMask(seqLen: number): tf.Tensor2D {
  return cachedConstant(`causal ${seqLen}`, () => {
    const m = new Float32Array(seqLen * seqLen);
    for (let i = 0; i < seqLen; i++) for (let j = i + 1; j < seqLen; j++) m[i * seqLen + j] = -1e9;
    return tf.tensor2d(m, [seqLen, seqLen]);
  }) as tf.Tensor2D;
}

/**
 * Attention as tf ops. Keys are laid out [B*H, hd, T] by the one transpose that splits their heads,
 * so q k^T and p v are plain batched products.
 */
export function causalAttentionOps(
  q: tf.Tensor2D,
  k: tf.Tensor2D,
  v: tf.Tensor2D,
  s: AttentionShape,
): tf.Tensor2D {
  const { batch, seqLen, heads: H, kvHeads: KV, headDim: hd } = s;
  const split = (t: tf.Tensor, count: number, perm: number[]) =>
    tf.transpose(tf.reshape(t, [batch, seqLen, count, hd]), perm);
  let keys = split(k, KV, [0, 2, 3, 1]); // [B, kv, hd, T]
  let values = split(v, KV, [0, 2, 1, 3]); // [B, kv, T, hd]
  const group = H / KV;
  if (group > 1) {
    // HF repeat_kv: kv head h serves query heads h*group .. h*group+group-1.
    // (Rank-4 tile: tfjs has no tile gradient for rank 5.)
    const repeat = (t: tf.Tensor) => tf.tile(tf.reshape(t, [batch, KV, 1, seqLen * hd]), [1, 1, group, 1]);
    keys = repeat(keys);
    values = repeat(values);
  }
  const rows = batch * H;
  const queries = tf.reshape(split(q, H, [0, 2, 1, 3]), [rows, seqLen, hd]);
  const scores = tf.add(tf.matMul(queries, tf.reshape(keys, [rows, hd, seqLen])), causalMask(seqLen));
  const out = tf.matMul(tf.softmax(scores), tf.reshape(values, [rows, seqLen, hd])); // [B*H, T, hd]
  return tf.reshape(tf.transpose(tf.reshape(out, [batch, H, seqLen, hd]), [0, 2, 1, 3]), [
    batch * seqLen,
    H * hd,
  ]);
}

/** Causal attention of q [B*T, H*hd] (scaled) over k, v [B*T, KV*hd]: [B*T, H*hd], heads side by side. */
export function causalAttention(
  q: tf.Tensor2D,
  k: tf.Tensor2D,
  v: tf.Tensor2D,
  s: AttentionShape,
): tf.Tensor2D {
  if (!fusedKernelsHere() || !wasmGemm()) return causalAttentionOps(q, k, v, s);
  const attrs = { ...s } as unknown as tf.NamedAttrMap;
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [qs, ks, vs, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    const [out, probs] = tf.engine().runKernel(FORWARD, { q: qs, k: ks, v: vs }, attrs) as tf.Tensor[];
    save([qs, ks, vs, probs!]);
    return {
      value: out!,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sq, sk, sv, sp] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
        return tf.engine().runKernel(BACKWARD, { dy, q: sq, k: sk, v: sv, probs: sp }, attrs) as tf.Tensor[];
      },
    };
  }) as (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor) => tf.Tensor2D;
  return f(q, k, v);
}
