// The Mixtral-compatible sparse MoE feed-forward block and its load-balancing loss.
//
// Weights (HF Mixtral names, [out, in] like torch.nn.Linear):
//   block_sparse_moe.gate.weight [E, hidden]          the router
//   block_sparse_moe.experts.{e}.w1.weight [ffn, hidden]  gate projection
//   block_sparse_moe.experts.{e}.w3.weight [ffn, hidden]  up projection
//   block_sparse_moe.experts.{e}.w2.weight [hidden, ffn]  down projection
// expert_e(x) = w2(silu(w1(x)) * w3(x)); y = sum_e gate_e(x) * expert_e(x).
//
// Dispatch (see docs/trainer.md, "MoE dispatch"): 'sparse' reads the [N, E] selection scores to the
// host once per layer (one dataSync inside the synchronous tf.variableGrads closure), selects the top
// k there, runs each expert only on its tokens (gatherRows, then grouped products over all experts)
// and scatters the gated outputs back (scatterRows); 'dense' runs every expert on every token and lets the gates (zero for unselected
// experts) mask the result. Soft routing sends every token to every expert, so it is always dense.
// BTX_MOE_DISPATCH (or RoutingOptions.dispatch) overrides the default, defaultDispatch below.
//
// On the device (dense dispatch) the top-k selection is built from argMax + oneHot (both have
// gradients registered) instead of tf.topk (which has none), so the tape can pass through it. The
// selection itself has no gradient either way: it reaches the router through the softmax
// probabilities of the selected experts, as in HF Mixtral.
import * as tf from './tfjs.js';
import type { RouterType } from './hfConfig.js';
import { groupedMatMul } from './batchMatMul.js';
import { gatherRows, scatterRows } from './rows.js';
import { fusedBalanceLoss, fusedExperts, fusedRoute } from './moeKernels.js';
import { fusedKernelsHere } from './wasmHeap.js';

export type Dispatch = 'dense' | 'sparse';
export const DISPATCHES: readonly Dispatch[] = ['dense', 'sparse'];
/** Environment override of the MoE dispatch (dense | sparse), for every stage and the benches. */
export const DISPATCH_ENV = 'BTX_MOE_DISPATCH';

export interface RoutingOptions {
  router: RouterType;
  /** Experts per token for topK (Mixtral's num_experts_per_tok); the others ignore it. */
  k: number;
  /** Overrides BTX_MOE_DISPATCH and the default (soft routing is dense regardless). */
  dispatch?: Dispatch;
}

export interface ExpertWeights {
  w1: tf.Tensor2D;
  w2: tf.Tensor2D;
  w3: tf.Tensor2D;
}

export interface Routing {
  /** [N, E] weight of each expert's output per token (zero where not selected). */
  gates: tf.Tensor2D;
  /** [N, E] softmax of the router logits. */
  probs: tf.Tensor2D;
  /** [N, E] 1 where a token slot went to the expert (for the load-balancing loss). */
  mask: tf.Tensor2D;
  /** [E] share of this batch's token slots per expert (sums to 1). */
  share: tf.Tensor1D;
}

/**
 * x @ W^T for an HF Linear weight W [out, in], as transpose flags rather than transposed copies:
 * our wasm matMul (matMulKernel.ts) reads a transposed operand through strides at the speed of a
 * plain one, and tfjs-node hands the flags to TensorFlow. (On the backend's own wasm kernel, flags
 * cost 5-8x a transpose followed by a plain product; see docs/trainer.md.)
 */
export const linear = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [x, w, save] = args as [tf.Tensor2D, tf.Tensor2D, tf.GradSaveFunc];
  save([x, w]);
  return {
    value: tf.matMul(x, w, false, true),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [xs, ws] = saved as [tf.Tensor2D, tf.Tensor2D];
      const g = dy as tf.Tensor2D;
      return [tf.matMul(g, ws), tf.matMul(g, xs, true, false)];
    },
  };
}) as (x: tf.Tensor2D, w: tf.Tensor2D) => tf.Tensor2D;

export function silu(x: tf.Tensor): tf.Tensor {
  return tf.mul(x, tf.sigmoid(x));
}

/** SwiGLU feed-forward: down(silu(gate(x)) * up(x)). */
export function swiglu(x: tf.Tensor2D, gate: tf.Tensor2D, up: tf.Tensor2D, down: tf.Tensor2D): tf.Tensor2D {
  return linear(tf.mul(silu(linear(x, gate)), linear(x, up)) as tf.Tensor2D, down);
}

/** Identity forward, zero gradient (torch's .detach()). */
const stopGradient = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => ({
  value: tf.clone(args[0] as tf.Tensor),
  gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
})) as (x: tf.Tensor) => tf.Tensor;

/** [N, E] 0/1 mask of the k largest entries per row (ties: lowest index first). */
export function topKMask(scores: tf.Tensor2D, k: number): tf.Tensor2D {
  const experts = scores.shape[1];
  let remaining: tf.Tensor2D = scores;
  let mask: tf.Tensor2D = tf.zerosLike(scores);
  for (let j = 0; j < Math.min(k, experts); j++) {
    const pick = tf.cast(tf.oneHot(tf.argMax(remaining, 1), experts), 'float32') as tf.Tensor2D;
    mask = tf.add(mask, pick);
    // Push picked entries below anything else (scores are probabilities or finite logits).
    remaining = tf.sub(remaining, tf.mul(pick, 1e9));
  }
  return mask;
}

/**
 * The [N, E] 0/1 mask of the k largest scores per row (ties: lowest index first, as topKMask) and each
 * expert's token list, from one read of the scores to the host. For sparse dispatch, which needs the
 * token lists on the host anyway: the selection costs no tf ops (topKMask is 6 per pick, and the tape
 * carries them into the backward pass).
 */
function selectOnHost(scores: tf.Tensor2D, k: number): { mask: tf.Tensor2D; tokens: number[][] } {
  const [n, experts] = scores.shape;
  const values = scores.dataSync(); // the one host sync of this layer
  const mask = new Float32Array(n * experts);
  const tokens: number[][] = Array.from({ length: experts }, () => []);
  for (let t = 0; t < n; t++) {
    const row = t * experts;
    for (let j = 0; j < Math.min(k, experts); j++) {
      let best = -1;
      for (let e = 0; e < experts; e++) {
        if (mask[row + e] === 0 && (best < 0 || values[row + e]! > values[row + best]!)) best = e;
      }
      mask[row + best] = 1;
    }
    for (let e = 0; e < experts; e++) if (mask[row + e] === 1) tokens[e]!.push(t);
  }
  return { mask: tf.tensor2d(mask, [n, experts]), tokens };
}

/**
 * Route tokens: router logits [N, E] -> gates, probabilities and the selection mask. With `sparse`,
 * the selection is made on the host (selectOnHost) and each expert's token list comes back too.
 */
export function route(
  logits: tf.Tensor2D,
  opts: RoutingOptions,
  training: boolean,
  noiseSeed: number,
  sparse = false,
): Routing & { tokens?: number[][] } {
  const experts = logits.shape[1];
  const probs = tf.softmax(logits) as tf.Tensor2D;
  const perToken = opts.router === 'topK' || opts.router === 'soft' ? Math.min(opts.k, experts) : 1;
  // What the selection ranks: the probabilities; for sampleTop1 in training, Gumbel-max draws one
  // expert from the router distribution (argmax at eval).
  let scores = probs;
  if (opts.router === 'sampleTop1' && training) {
    const u = tf.randomUniform(logits.shape, 1e-6, 1 - 1e-6, 'float32', noiseSeed);
    scores = tf.sub(logits, tf.log(tf.neg(tf.log(u))));
  }
  let mask: tf.Tensor2D;
  let tokens: number[][] | undefined;
  if (sparse) ({ mask, tokens } = selectOnHost(scores, perToken));
  else mask = topKMask(scores, perToken);
  let gates: tf.Tensor2D;
  switch (opts.router) {
    case 'topK': {
      const kept = tf.mul(probs, mask);
      gates = tf.div(kept, tf.sum(kept, 1, true));
      break;
    }
    case 'switch':
      // Switch Transformer: top-1, scaled by the router probability (no renormalisation).
      gates = tf.mul(probs, mask);
      break;
    case 'soft':
      gates = probs;
      break;
    case 'sampleTop1':
      // The gate is 1 forward (straight-through), its gradient flows into the sampled probability.
      gates = tf.mul(mask, tf.add(tf.sub(probs, stopGradient(probs)), 1));
      break;
  }
  const share = opts.router === 'soft' ? tf.mean(probs, 0) : tf.div(tf.mean(mask, 0), perToken);
  return { gates, probs, mask, share: share as tf.Tensor1D, ...(tokens ? { tokens } : {}) };
}

function envDispatch(): Dispatch | undefined {
  const raw = process.env[DISPATCH_ENV];
  if (raw === undefined || raw === '') return undefined;
  if (!DISPATCHES.includes(raw as Dispatch)) {
    throw new Error(`${DISPATCH_ENV} must be one of ${DISPATCHES.join(', ')}, got '${raw}'`);
  }
  return raw as Dispatch;
}

/**
 * The dispatch a layer with `experts` experts uses: soft routing is always dense; otherwise
 * opts.dispatch, then BTX_MOE_DISPATCH, then sparse when a token visits fewer than all experts.
 */
export function defaultDispatch(opts: RoutingOptions, experts: number): Dispatch {
  if (opts.router === 'soft') return 'dense';
  const forced = opts.dispatch ?? envDispatch();
  if (forced) return forced;
  const perToken = opts.router === 'topK' ? Math.min(opts.k, experts) : 1;
  return perToken < experts ? 'sparse' : 'dense';
}

/** The MoE feed-forward for tokens x [N, hidden]. */
export function moeFeedForward(
  x: tf.Tensor2D,
  router: tf.Tensor2D,
  experts: ExpertWeights[],
  opts: RoutingOptions,
  training: boolean,
  noiseSeed: number,
): { y: tf.Tensor2D; routing: Routing } {
  const sparse = defaultDispatch(opts, experts.length) === 'sparse';
  if (sparse && fusedKernelsHere()) return fusedFeedForward(x, router, experts, opts, training, noiseSeed);
  const { tokens, ...routing } = route(linear(x, router), opts, training, noiseSeed, sparse);
  if (tokens) return { y: sparseDispatch(x, experts, routing, tokens), routing };
  const outs = experts.map((e) => swiglu(x, e.w1, e.w3, e.w2)); // E x [N, hidden]
  const stacked = tf.stack(outs) as tf.Tensor3D; // [E, N, hidden]
  const weights = tf.expandDims(tf.transpose(routing.gates), 2); // [E, N, 1]
  const y = tf.sum(tf.mul(stacked, weights), 0) as tf.Tensor2D;
  return { y, routing };
}

/**
 * Sparse dispatch in fused wasm kernels (moeKernels.ts): topK and switch routing in one kernel, then
 * all experts in one kernel, forward and backward; nothing is read to the host. sampleTop1 draws its
 * selection with tf ops (route) and shares the experts kernel.
 */
function fusedFeedForward(
  x: tf.Tensor2D,
  router: tf.Tensor2D,
  experts: ExpertWeights[],
  opts: RoutingOptions,
  training: boolean,
  noiseSeed: number,
): { y: tf.Tensor2D; routing: Routing } {
  const logits = linear(x, router);
  let routing: Routing;
  if (opts.router === 'topK' || opts.router === 'switch') {
    const perToken = opts.router === 'topK' ? Math.min(opts.k, logits.shape[1]) : 1;
    routing = fusedRoute(logits, perToken, opts.router === 'topK');
  } else {
    const { gates, probs, mask, share } = route(logits, opts, training, noiseSeed, true);
    routing = { gates, probs, mask, share };
  }
  const weights = {
    w1: experts.map((e) => e.w1),
    w3: experts.map((e) => e.w3),
    w2: experts.map((e) => e.w2),
  };
  return { y: fusedExperts(x, routing.gates, routing.mask, weights), routing };
}

/**
 * Each expert on its own tokens (the lists from route's host selection, one read per layer). All
 * selected (token, expert) slots are gathered once, grouped by expert, and the three projections run
 * as grouped products over the stacked expert weights (groupedMatMul: one kernel per projection for
 * all experts instead of a gather and three linears per expert; ~45 kernels per layer forward -> ~16).
 * The gates of the slots are gathered from the flattened [N * E] gates, so the router's gradient is
 * dense dispatch's (unselected gates get zero gradient in both). An expert with no tokens gets an
 * exact zero gradient from its empty group, as dense dispatch gives it, so AdamW decays its moments
 * and weights the same way.
 */
function sparseDispatch(
  x: tf.Tensor2D,
  experts: ExpertWeights[],
  routing: Routing,
  tokens: number[][],
): tf.Tensor2D {
  const [n] = x.shape;
  const count = experts.length;
  const sizes = tokens.map((list) => list.length);
  const rows = tf.tensor1d(tokens.flat(), 'int32');
  const slots = tf.tensor1d(
    tokens.flatMap((list, e) => list.map((t) => t * count + e)),
    'int32',
  );
  // HF [out, in] weights of every expert as [E, in, out], the layout x @ W^T needs.
  const stacked = (pick: (w: ExpertWeights) => tf.Tensor2D) => {
    const [out, inp] = pick(experts[0]!).shape;
    return tf.transpose(
      tf.reshape(tf.concat(experts.map(pick)), [count, out, inp]),
      [0, 2, 1],
    ) as tf.Tensor3D;
  };
  const xs = gatherRows(x, rows);
  const gate = groupedMatMul(
    xs,
    stacked((w) => w.w1),
    sizes,
  );
  const up = groupedMatMul(
    xs,
    stacked((w) => w.w3),
    sizes,
  );
  const out = groupedMatMul(
    tf.mul(silu(gate), up) as tf.Tensor2D,
    stacked((w) => w.w2),
    sizes,
  );
  const gates = gatherRows(tf.reshape(routing.gates, [n * count, 1]) as tf.Tensor2D, slots);
  return scatterRows(tf.mul(out, gates) as tf.Tensor2D, rows, n);
}

/**
 * HF Mixtral's load_balancing_loss_func over all MoE layers (token rows concatenated):
 * E * sum_i f_i * P_i, f_i = mean over token rows of the slots routed to expert i,
 * P_i = mean router probability of expert i. Uniform routing with top-k gives k.
 * The caller multiplies by alpha (router_aux_loss_coef).
 */
export function loadBalancingLoss(layers: { probs: tf.Tensor2D; mask: tf.Tensor2D }[]): tf.Scalar {
  return fusedKernelsHere() ? fusedBalanceLoss(layers) : loadBalancingLossOps(layers);
}

/** loadBalancingLoss as tf ops (every backend but wasm, and the reference for its fused kernel). */
export function loadBalancingLossOps(layers: { probs: tf.Tensor2D; mask: tf.Tensor2D }[]): tf.Scalar {
  const probs = tf.concat(layers.map((l) => l.probs)) as tf.Tensor2D;
  const mask = tf.concat(layers.map((l) => l.mask)) as tf.Tensor2D;
  const experts = probs.shape[1];
  const f = tf.mean(mask, 0);
  const p = tf.mean(probs, 0);
  return tf.mul(tf.sum(tf.mul(f, p)), experts) as tf.Scalar;
}
