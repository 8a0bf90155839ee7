// Fused wasm kernels for the MoE layer's sparse dispatch: routing (softmax, top-k, gates) and the
// experts' SwiGLU with its gather and gated scatter-add, forward and backward, one kernel each.
//
// Built from tf ops, a sparse MoE layer was ~120 tfjs kernels per training step (router softmax, a
// host read of the scores, mask, renormalisation, the stacking of expert weights, gathers, grouped
// products, SiLU, gate products, scatters, and their gradients), and tfjs-backend-wasm's GatherV2 is a
// per-element loop: the six gathers of a d64 MoE step took 13 ms of its ~120 ms of kernel time
// (`tf.profile`, minimum of 5 runs). Here each routing and each experts call is one kernel forward
// and one backward. The selection never leaves the backend: the experts kernels read the routing
// mask from wasm memory (no dataSync), rows are gathered by copyWithin, the element-wise parts
// (SwiGLU, gating, the per-slot dot products, the scatter-adds back to tokens) are the backend's own
// kernels called from ours, and the products are our GEMM on views (batchMatMul.ts' viewOps; HF
// [out, in] weights and slot-major activations are read transposed through strides, so nothing is
// transposed). The load-balancing loss over all MoE layers is one more kernel and its gradient one.
//
// The math is exactly route() + sparseDispatch()'s in moe.ts (which stay the path on other
// backends): probs = softmax(logits); the k most probable experts per token (ties: lowest index);
// gates = probs of the selected experts, renormalised to sum 1 (topK) or not (switch);
// y[t] = sum over t's experts e of gates[t, e] * w2_e(silu(w1_e x[t]) * w3_e x[t]), HF [out, in]
// weights. Only the rounding differs (float64 sums in the routing, float32 everywhere else).
import * as tf from './tfjs.js';
import { viewOps } from './batchMatMul.js';
import type { WasmBackend } from './batchMatMul.js';
import { addressOf, floatsAt, wasmModule, type KernelArgs, type WasmHeap } from './wasmHeap.js';

const ROUTE = 'BtxMoeRoute';
const ROUTE_GRAD = 'BtxMoeRouteGrad';
const EXPERTS = 'BtxMoeExperts';
const EXPERTS_GRAD = 'BtxMoeExpertsGrad';
const BALANCE = 'BtxMoeBalance';
const BALANCE_GRAD = 'BtxMoeBalanceGrad';

type Backend = WasmBackend & { wasm: { HEAPU8: Uint8Array } };

/** One of the backend's own kernels, called from inside ours (so the same rounding as the tf op). */
function backendKernel(
  be: Backend,
  name: string,
  inputs: tf.NamedTensorInfoMap,
  attrs: object = {},
): tf.TensorInfo {
  const kernel = tf.getKernel(name, 'wasm')!;
  return kernel.kernelFunc({
    inputs,
    backend: be as unknown as tf.KernelBackend,
    attrs: attrs as tf.NamedAttrMap,
  }) as tf.TensorInfo;
}

/** All of wasm memory as floats (re-read after anything that may grow it) and a tensor's offset in it. */
function memory(be: Backend): { f32: Float32Array; at: (t: tf.TensorInfo) => number } {
  return {
    f32: floatsAt(wasmModule(be), 0),
    at: (t) => addressOf(be, t) / 4,
  };
}

/**
 * The selected (token, expert) slots from an [n, E] 0/1 mask, grouped by expert, tokens ascending
 * in each group (the order of sparseDispatch's gather): rows[s] is slot s's token, expertOf[s] its expert.
 */
function slotsOf(mask: Float32Array, maskAt: number, n: number, experts: number) {
  const sizes = new Array<number>(experts).fill(0);
  for (let t = 0; t < n; t++)
    for (let e = 0; e < experts; e++) if (mask[maskAt + t * experts + e] !== 0) sizes[e]!++;
  const starts = sizes.map((_, e) => sizes.slice(0, e).reduce((a, b) => a + b, 0));
  const total = sizes.reduce((a, b) => a + b, 0);
  const rows = new Int32Array(total);
  const expertOf = new Int32Array(total);
  const next = [...starts];
  for (let t = 0; t < n; t++) {
    for (let e = 0; e < experts; e++) {
      if (mask[maskAt + t * experts + e] === 0) continue;
      const s = next[e]!++;
      rows[s] = t;
      expertOf[s] = e;
    }
  }
  return { sizes, starts, rows, expertOf, total };
}

/**
 * Routing forward: logits [n, E] -> probs, gates, mask and share (attrs k, renormalise); share [E] is
 * each expert's part of the n * k token slots (the mean of the mask's column over k).
 */
function routeKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo[] {
  const be = backend as Backend;
  const logits = inputs.logits!;
  const { k, renormalise } = attrs as unknown as { k: number; renormalise: boolean };
  const [n, experts] = logits.shape as [number, number];
  const probs = backendKernel(be, 'Softmax', { logits }, { dim: 1 });
  const [gates, mask] = [0, 1].map(() => be.makeOutput([n, experts], 'float32'));
  const share = be.makeOutput([experts], 'float32');
  const { f32, at } = memory(be);
  const [p, g, m] = [probs, gates, mask].map(at) as [number, number, number];
  const picks = Math.min(k, experts);
  for (let t = 0; t < n; t++) {
    const row = t * experts;
    f32.fill(0, m + row, m + row + experts);
    f32.fill(0, g + row, g + row + experts);
    for (let j = 0; j < picks; j++) {
      let best = -1;
      for (let e = 0; e < experts; e++) {
        if (f32[m + row + e] === 0 && (best < 0 || f32[p + row + e]! > f32[p + row + best]!)) best = e;
      }
      f32[m + row + best] = 1;
    }
    // Rounded as tf.sum and tf.div round: a float32 sum in expert order, then a float32 quotient.
    let kept = 0;
    for (let e = 0; e < experts; e++)
      if (f32[m + row + e] !== 0) kept = Math.fround(kept + f32[p + row + e]!);
    for (let e = 0; e < experts; e++) {
      if (f32[m + row + e] !== 0)
        f32[g + row + e] = renormalise ? f32[p + row + e]! / kept : f32[p + row + e]!;
    }
  }
  // As tf.div(tf.mean(mask, 0), k): a float32 mean, then a float32 quotient.
  const counts = columnSums(f32, m, n, experts);
  for (let e = 0; e < experts; e++) f32[at(share) + e] = Math.fround(counts[e]! / n) / picks;
  return [probs, gates, mask, share];
}

/** Column sums of an [n, cols] float32 matrix at offset `at` of f32, in float64. */
function columnSums(f32: Float32Array, at: number, n: number, cols: number): Float64Array {
  const sums = new Float64Array(cols);
  for (let t = 0; t < n; t++) for (let c = 0; c < cols; c++) sums[c] += f32[at + t * cols + c]!;
  return sums;
}

/**
 * HF Mixtral's load-balancing loss over MoE layers (inputs probs_l, mask_l [n_l, E], attrs layers):
 * E * sum_i f_i * P_i, f_i and P_i the means of mask and probs column i over the rows of all layers.
 */
function balanceKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const be = backend as Backend;
  const { layers } = attrs as unknown as { layers: number };
  const experts = inputs.probs_0!.shape[1]!;
  const out = be.makeOutput([], 'float32');
  const { f32, at } = memory(be);
  const [f, p] = [new Float64Array(experts), new Float64Array(experts)];
  let rows = 0;
  for (let l = 0; l < layers; l++) {
    const n = inputs[`probs_${l}`]!.shape[0]!;
    const [fl, pl] = [columnSums(f32, at(inputs[`mask_${l}`]!), n, experts), columnSums(f32, at(inputs[`probs_${l}`]!), n, experts)]; // prettier-ignore
    for (let e = 0; e < experts; e++) [f[e], p[e]] = [f[e]! + fl[e]!, p[e]! + pl[e]!];
    rows += n;
  }
  let dot = 0;
  for (let e = 0; e < experts; e++) dot += (f[e]! / rows) * (p[e]! / rows);
  f32[at(out)] = experts * dot;
  return out;
}

/** The loss's gradient for each layer's probs: dy * E * f_i / rows in every row (inputs dy, mask_l). */
function balanceGradKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo[] {
  const be = backend as Backend;
  const { layers } = attrs as unknown as { layers: number };
  const masks = Array.from({ length: layers }, (_, l) => inputs[`mask_${l}`]!);
  const experts = masks[0]!.shape[1]!;
  const outs = masks.map((m) => be.makeOutput([...m.shape], 'float32'));
  const { f32, at } = memory(be);
  const f = new Float64Array(experts);
  let rows = 0;
  for (const m of masks) {
    const n = m.shape[0]!;
    const fl = columnSums(f32, at(m), n, experts);
    for (let e = 0; e < experts; e++) f[e] = f[e]! + fl[e]!;
    rows += n;
  }
  const dy = f32[at(inputs.dy!)]!;
  const perRow = Array.from(f, (fe) => (dy * experts * (fe / rows)) / rows);
  masks.forEach((m, l) => {
    const o = at(outs[l]!);
    for (let t = 0; t < m.shape[0]!; t++)
      for (let e = 0; e < experts; e++) f32[o + t * experts + e] = perRow[e]!;
  });
  return outs;
}

/** Routing backward: d logits from d probs and d gates (inputs dProbs, dGates, probs, gates, mask). */
function routeGradKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const be = backend as Backend;
  const { renormalise } = attrs as unknown as { renormalise: boolean };
  const [n, experts] = inputs.probs!.shape as [number, number];
  const out = be.makeOutput([n, experts], 'float32');
  const { f32, at } = memory(be);
  const [dp, dg, p, g, m, dl] = [
    inputs.dProbs!,
    inputs.dGates!,
    inputs.probs!,
    inputs.gates!,
    inputs.mask!,
    out,
  ].map(at) as [number, number, number, number, number, number];
  const dProb = new Float64Array(experts);
  for (let t = 0; t < n; t++) {
    const row = t * experts;
    // gates_e = m_e p_e / kept, kept = sum_j m_j p_j: d p_i += m_i / kept * (dg_i - sum_e g_e dg_e).
    let kept = 0;
    let gateDot = 0;
    for (let e = 0; e < experts; e++) {
      kept += f32[m + row + e]! * f32[p + row + e]!;
      gateDot += f32[g + row + e]! * f32[dg + row + e]!;
    }
    let probDot = 0;
    for (let e = 0; e < experts; e++) {
      const fromGate = renormalise ? (f32[dg + row + e]! - gateDot) / kept : f32[dg + row + e]!;
      dProb[e] = f32[dp + row + e]! + f32[m + row + e]! * fromGate;
      probDot += f32[p + row + e]! * dProb[e]!;
    }
    // softmax: d logits_i = p_i (d p_i - sum_j p_j d p_j)
    for (let e = 0; e < experts; e++) f32[dl + row + e] = f32[p + row + e]! * (dProb[e]! - probDot);
  }
  return out;
}

/** What the experts forward kernel returns after y, for its backward kernel. */
const SAVED = ['h1', 'h3', 'sig', 'silu', 'act', 'out'] as const;

const weightNames = (experts: number) =>
  (['w1', 'w3', 'w2'] as const).map((w) => Array.from({ length: experts }, (_, e) => `${w}_${e}`));

/**
 * Experts forward. Inputs x [n, hidden], gates [n, E], mask [n, E], w1_e, w3_e [ffn, hidden], w2_e
 * [hidden, ffn]; attrs experts. Outputs y [n, hidden] and, per slot, what the backward kernel needs:
 * h1 = x w1^T, h3 = x w3^T, sig = sigmoid(h1), act = h1 * sig * h3 [slots, ffn], and the ungated
 * expert output out = act w2^T [slots, hidden].
 */
function expertsKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo[] {
  const be = backend as Backend;
  const { experts } = attrs as unknown as { experts: number };
  const [w1, w3, w2] = weightNames(experts).map((names) => names.map((name) => inputs[name]!));
  const [x, gates, mask] = [inputs.x!, inputs.gates!, inputs.mask!];
  const [n, hidden] = x.shape as [number, number];
  const ffn = w1[0]!.shape[0]!;
  const slots = slotsOf(memory(be).f32, memory(be).at(mask), n, experts);
  const S = slots.total;
  const [h1, h3] = [0, 1].map(() => be.makeOutput([S, ffn], 'float32'));
  const out = be.makeOutput([S, hidden], 'float32');
  const xs = be.makeOutput([S, hidden], 'float32');
  gatherRows(be, x, xs, slots.rows, hidden);
  const ops = viewOps(be);
  for (let e = 0; e < experts; e++) {
    const [size, start] = [slots.sizes[e]!, slots.starts[e]!];
    if (size === 0) continue;
    // h = xs w^T with w [ffn, hidden] as it lies (the GEMM reads it transposed through strides)
    ops.matMul([xs, start * hidden], [w1[e]!, 0], [h1, start * ffn], size, hidden, ffn, { b: true });
    ops.matMul([xs, start * hidden], [w3[e]!, 0], [h3, start * ffn], size, hidden, ffn, { b: true });
  }
  // The element-wise SwiGLU by the backend's own (XNNPACK) kernels: the rounding of tf.sigmoid and
  // tf.mul, and ~10x faster than a JS loop over wasm memory.
  const sig = backendKernel(be, 'Sigmoid', { x: h1 });
  const silu = backendKernel(be, 'Multiply', { a: h1, b: sig });
  const act = backendKernel(be, 'Multiply', { a: silu, b: h3 });
  for (let e = 0; e < experts; e++) {
    const [size, start] = [slots.sizes[e]!, slots.starts[e]!];
    if (size === 0) continue;
    ops.matMul([act, start * ffn], [w2[e]!, 0], [out, start * hidden], size, ffn, hidden, { b: true });
  }
  // y[t] = sum over t's slots s of gate(s) * out[s]: the backend's Multiply (broadcasting the [S, 1]
  // gates) and ScatterNd (which adds the rows in slot order into zeros), so the rounding of tf.mul
  // then tf.add, and SIMD or compiled loops instead of JavaScript ones (~4 ns an element).
  const { indices, slotGates } = slotTensors(be, slots, gates, experts);
  const gated = backendKernel(be, 'Multiply', { a: out, b: slotGates });
  const y = backendKernel(be, 'ScatterNd', { indices, updates: gated }, { shape: [n, hidden] });
  for (const t of [xs, indices, slotGates, gated]) be.disposeData(t.dataId);
  return [y, h1, h3, sig, silu, act, out];
}

/**
 * ScatterNd's indices for the slots ([S, 1] int32: each slot's token) and each slot's gate
 * ([S, 1] float32, gates[token, expert]).
 */
function slotTensors(
  be: Backend,
  slots: { rows: Int32Array; expertOf: Int32Array },
  gates: tf.TensorInfo,
  experts: number,
): { indices: tf.TensorInfo; slotGates: tf.TensorInfo } {
  const count = slots.rows.length;
  const indices = (be as unknown as WasmHeap).makeOutput([count, 1], 'int32');
  const slotGates = be.makeOutput([count, 1], 'float32');
  new Int32Array(be.wasm.HEAPU8.buffer).set(slots.rows, memory(be).at(indices));
  const { f32, at } = memory(be);
  const [g, o] = [at(gates), at(slotGates)];
  for (let s = 0; s < count; s++) f32[o + s] = f32[g + slots.rows[s]! * experts + slots.expertOf[s]!]!;
  return { indices, slotGates };
}

/** dst[s] = src[rows[s]] for rows of `width` floats. */
function gatherRows(be: Backend, src: tf.TensorInfo, dst: tf.TensorInfo, rows: Int32Array, width: number) {
  const { f32, at } = memory(be);
  const [from, to] = [at(src), at(dst)];
  for (let s = 0; s < rows.length; s++) {
    const r = from + rows[s]! * width;
    f32.copyWithin(to + s * width, r, r + width);
  }
}

/**
 * Experts backward. Inputs dy [n, hidden], the forward's x, gates, mask and weights, and its saved
 * h1, h3, sig, act, out. Outputs dx [n, hidden], dGates [n, E] (zero where not selected), then
 * dw1_e, dw3_e, dw2_e in the order of weightNames (an expert without tokens gets exact zeros).
 */
function expertsGradKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo[] {
  const be = backend as Backend;
  const { experts } = attrs as unknown as { experts: number };
  const [w1, w3, w2] = weightNames(experts).map((names) => names.map((name) => inputs[name]!));
  const [dy, x, gates, mask] = [inputs.dy!, inputs.x!, inputs.gates!, inputs.mask!];
  const [h1, h3, sig, silu, act, out] = SAVED.map((name) => inputs[name]!);
  const [n, hidden] = x.shape as [number, number];
  const ffn = w1[0]!.shape[0]!;
  const slots = slotsOf(memory(be).f32, memory(be).at(mask), n, experts);
  const S = slots.total;
  const dGates = be.makeOutput([n, experts], 'float32');
  const dw = [w1, w3, w2].map((ws) => ws.map((w) => be.makeOutput([...w.shape], 'float32')));
  const dAct = be.makeOutput([S, ffn], 'float32');
  const xs = be.makeOutput([S, hidden], 'float32');
  const dys = be.makeOutput([S, hidden], 'float32');
  const dxs1 = be.makeOutput([S, hidden], 'float32');
  const dxs3 = be.makeOutput([S, hidden], 'float32');
  // dOut[s] = gate(s) * dy[t]; dGates[t, e] = out[s] . dy[t] (a float32 sum in order: the backend's
  // Sum over the rows of a Multiply, as tf.sum of a tf.mul), for slot s of token t and expert e.
  const { indices, slotGates } = slotTensors(be, slots, gates, experts);
  gatherRows(be, dy, dys, slots.rows, hidden);
  const dOut = backendKernel(be, 'Multiply', { a: dys, b: slotGates });
  const outDy = backendKernel(be, 'Multiply', { a: out, b: dys });
  const dots = backendKernel(be, 'Sum', { x: outDy }, { axis: [1], keepDims: false });
  {
    const { f32, at } = memory(be);
    const [dg, d] = [at(dGates), at(dots)];
    f32.fill(0, dg, dg + n * experts);
    for (let s = 0; s < S; s++) f32[dg + slots.rows[s]! * experts + slots.expertOf[s]!] = f32[d + s]!;
  }
  gatherRows(be, x, xs, slots.rows, hidden);
  const ops = viewOps(be);
  for (let e = 0; e < experts; e++) {
    const [size, start] = [slots.sizes[e]!, slots.starts[e]!];
    if (size === 0) continue;
    // d act = dOut w2 (w2 [hidden, ffn] is already [k, n]); d w2 = dOut^T act
    ops.matMul([dOut, start * hidden], [w2[e]!, 0], [dAct, start * ffn], size, hidden, ffn);
    ops.matMul([dOut, start * hidden], [act, start * ffn], [dw[2]![e]!, 0], hidden, size, ffn, { a: true });
  }
  // dAct -> dh1, dh3 through act = silu * h3, silu = h1 * sig, sig = sigmoid(h1): the gradients of
  // tf.mul and tf.sigmoid, by the same kernels in the same order (so the same rounding).
  const temporaries: tf.TensorInfo[] = [dOut, dAct, xs, dys, dxs1, dxs3, slotGates, outDy, dots];
  const run = (name: string, a: tf.TensorInfo, b: tf.TensorInfo) => {
    const result = backendKernel(be, name, { a, b });
    temporaries.push(result);
    return result;
  };
  const one = be.makeOutput([], 'float32');
  be.typedArrayFromHeap(one).fill(1);
  temporaries.push(one);
  const dSilu = run('Multiply', dAct, h3);
  const dh3 = run('Multiply', dAct, silu);
  const sigSlope = run('Multiply', sig, run('Sub', one, sig));
  const dh1 = run('Add', run('Multiply', dSilu, sig), run('Multiply', run('Multiply', dSilu, h1), sigSlope));
  for (let e = 0; e < experts; e++) {
    const [size, start] = [slots.sizes[e]!, slots.starts[e]!];
    if (size === 0) {
      for (const w of dw) be.typedArrayFromHeap(w[e]!).fill(0);
      continue;
    }
    for (const [dh, i, ws, dxs] of [
      [dh1, 0, w1, dxs1],
      [dh3, 1, w3, dxs3],
    ] as const) {
      // d w = dh^T xs [ffn, hidden]; d xs = dh w (w [ffn, hidden] is already [k, n])
      ops.matMul([dh, start * ffn], [xs, start * hidden], [dw[i]![e]!, 0], ffn, size, hidden, { a: true });
      ops.matMul([dh, start * ffn], [ws[e]!, 0], [dxs, start * hidden], size, ffn, hidden);
    }
  }
  // dx[t] = sum over t's slots of dxs1 + dxs3 (tf.add, then ScatterNd's adds in slot order).
  const dx = backendKernel(
    be,
    'ScatterNd',
    { indices, updates: run('Add', dxs1, dxs3) },
    { shape: [n, hidden] },
  );
  temporaries.push(indices);
  for (const t of temporaries) be.disposeData(t.dataId);
  return [dx, dGates, ...dw.flat()];
}

for (const [kernelName, kernelFunc] of [
  [ROUTE, routeKernel],
  [ROUTE_GRAD, routeGradKernel],
  [EXPERTS, expertsKernel],
  [EXPERTS_GRAD, expertsGradKernel],
  [BALANCE, balanceKernel],
  [BALANCE_GRAD, balanceGradKernel],
] as const) {
  tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc: kernelFunc as unknown as tf.KernelFunc });
}

tf.registerGradient({
  kernelName: ROUTE,
  outputsToSave: [true, true, true, false],
  gradFunc: (dys: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs?: tf.NamedAttrMap) => {
    const [dProbs, dGates] = dys as tf.Tensor[];
    const [probs, gates, mask] = saved;
    return {
      logits: () =>
        tf
          .engine()
          .runKernel(
            ROUTE_GRAD,
            { dProbs, dGates, probs, gates, mask } as tf.NamedTensorMap,
            attrs,
          ) as tf.Tensor,
    };
  },
});

/**
 * Top-k routing of logits [n, E] in one kernel: softmax probabilities, the 0/1 selection mask
 * (the k most probable, ties to the lowest index), the gates (probabilities of the selected
 * experts, renormalised to sum 1 when `renormalise`) and each expert's share of the n * k token
 * slots. Gradients reach the logits from probs and gates (mask and share have none).
 */
export function fusedRoute(
  logits: tf.Tensor2D,
  k: number,
  renormalise: boolean,
): { probs: tf.Tensor2D; gates: tf.Tensor2D; mask: tf.Tensor2D; share: tf.Tensor1D } {
  const attrs = { k, renormalise } as unknown as tf.NamedAttrMap;
  const [probs, gates, mask, share] = tf.engine().runKernel(ROUTE, { logits }, attrs) as tf.Tensor[];
  return {
    probs: probs as tf.Tensor2D,
    gates: gates as tf.Tensor2D,
    mask: mask as tf.Tensor2D,
    share: share as tf.Tensor1D,
  };
}

/**
 * HF Mixtral's load_balancing_loss_func (see loadBalancingLoss in moe.ts) in one kernel, and one for
 * its gradient, which reaches the probabilities only (the masks are selections, no gradient).
 */
export function fusedBalanceLoss(layers: { probs: tf.Tensor2D; mask: tf.Tensor2D }[]): tf.Scalar {
  const attrs = { layers: layers.length } as unknown as tf.NamedAttrMap;
  const masks: tf.NamedTensorMap = {};
  layers.forEach((l, i) => (masks[`mask_${i}`] = l.mask));
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args.pop() as tf.GradSaveFunc;
    const inputs: tf.NamedTensorMap = { ...masks };
    args.forEach((p, i) => (inputs[`probs_${i}`] = p as tf.Tensor));
    // The masks are kept for the backward pass here: nothing else need keep them (with frozen
    // experts the experts kernel's node, which saves them too, is not on the gradient's path).
    save(layers.map((l) => l.mask));
    return {
      value: tf.engine().runKernel(BALANCE, inputs, attrs) as tf.Scalar,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const gradInputs: tf.NamedTensorMap = { dy };
        saved.forEach((m, i) => (gradInputs[`mask_${i}`] = m));
        return tf.engine().runKernel(BALANCE_GRAD, gradInputs, attrs) as tf.Tensor[];
      },
    };
  }) as (...probs: tf.Tensor[]) => tf.Scalar;
  return f(...layers.map((l) => l.probs));
}

export interface ExpertWeightList {
  w1: tf.Tensor2D[];
  w3: tf.Tensor2D[];
  w2: tf.Tensor2D[];
}

/**
 * The experts' gated SwiGLU for tokens x [n, hidden]: each token through the experts its mask row
 * selects (mask [n, E], no gradient), weighted by gates [n, E]. Gradients for x, gates and every weight.
 */
export function fusedExperts(
  x: tf.Tensor2D,
  gates: tf.Tensor2D,
  mask: tf.Tensor2D,
  w: ExpertWeightList,
): tf.Tensor2D {
  const experts = w.w1.length;
  const names = weightNames(experts);
  const weights = [...w.w1, ...w.w3, ...w.w2];
  const attrs = { experts } as unknown as tf.NamedAttrMap;
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args.pop() as tf.GradSaveFunc;
    const [xs, gs, ...ws] = args as tf.Tensor[];
    const inputs: tf.NamedTensorMap = { x: xs!, gates: gs!, mask };
    names.flat().forEach((name, i) => (inputs[name] = ws[i]!));
    const [y, ...intermediates] = tf.engine().runKernel(EXPERTS, inputs, attrs) as tf.Tensor[];
    // Variables (the model's weights) outlive the tape and are passed as they are; saving them would
    // cost an Identity kernel each (24 per d64 step). Everything else is saved.
    const variables = Object.keys(inputs).filter((key) => inputs[key] instanceof tf.Variable);
    const keys = Object.keys(inputs).filter((key) => !variables.includes(key));
    save([...keys.map((key) => inputs[key]!), ...intermediates]);
    return {
      value: y!,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const gradInputs: tf.NamedTensorMap = { dy };
        variables.forEach((key) => (gradInputs[key] = inputs[key]!));
        keys.forEach((key, i) => (gradInputs[key] = saved[i]!));
        SAVED.forEach((key, i) => (gradInputs[key] = saved[keys.length + i]!));
        return tf.engine().runKernel(EXPERTS_GRAD, gradInputs, attrs) as tf.Tensor[];
      },
    };
  }) as (...t: tf.Tensor[]) => tf.Tensor2D;
  return f(x, gates, ...weights);
}
