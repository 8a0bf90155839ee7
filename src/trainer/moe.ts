// The Mixtral-compatible sparse MoE feed-forward block and its load-balancing loss.
//
// Weights (HF Mixtral names, [out, in] like torch.nn.Linear):
//   block_sparse_moe.gate.weight [E, hidden]          the router
//   block_sparse_moe.experts.{e}.w1.weight [ffn, hidden]  gate projection
//   block_sparse_moe.experts.{e}.w3.weight [ffn, hidden]  up projection
//   block_sparse_moe.experts.{e}.w2.weight [hidden, ffn]  down projection
// expert_e(x) = w2(silu(w1(x)) * w3(x)); y = sum_e gate_e(x) * expert_e(x).
//
// Dispatch is dense: every expert runs on every token and the gates (zero for unselected
// experts) mask the result. Sparse gathering needs per-expert token counts, which are data
// dependent: either a host sync per layer or fixed capacities that drop tokens. At our sizes the
// dense form measured faster (see docs/trainer.md, "MoE dispatch").
//
// The top-k selection is built from argMax + oneHot (both have gradients registered) instead of
// tf.topk (which has none), so the tape can pass through it; the gradient reaches the router
// through the softmax probabilities of the selected experts, as in HF Mixtral.
import * as tf from './tfjs.js';
import type { RouterType } from './hfConfig.js';

export const ROUTER_TYPES: readonly RouterType[] = ['topK', 'switch', 'soft', 'sampleTop1'];

export interface RoutingOptions {
  router: RouterType;
  /** Experts per token for topK (Mixtral's num_experts_per_tok); the others ignore it. */
  k: number;
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
 * x @ W^T for an HF Linear weight W [out, in]. The transposes are explicit, forward and
 * backward: the wasm backend's matMul with transposeA/transposeB flags measured 5-8x slower than
 * a transpose followed by a plain matMul at our sizes (see docs/trainer.md).
 */
export const linear = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [x, w, save] = args as [tf.Tensor2D, tf.Tensor2D, tf.GradSaveFunc];
  save([x, w]);
  return {
    value: tf.matMul(x, tf.transpose(w)),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [xs, ws] = saved as [tf.Tensor2D, tf.Tensor2D];
      const g = dy as tf.Tensor2D;
      return [tf.matMul(g, ws), tf.matMul(tf.transpose(g), xs)];
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

/** Route tokens: router logits [N, E] -> gates, probabilities and the selection mask. */
export function route(
  logits: tf.Tensor2D,
  opts: RoutingOptions,
  training: boolean,
  noiseSeed: number,
): Routing {
  const experts = logits.shape[1];
  const probs = tf.softmax(logits) as tf.Tensor2D;
  let gates: tf.Tensor2D;
  let mask: tf.Tensor2D;
  let share: tf.Tensor1D;
  switch (opts.router) {
    case 'topK': {
      mask = topKMask(probs, opts.k);
      const kept = tf.mul(probs, mask);
      gates = tf.div(kept, tf.sum(kept, 1, true));
      share = tf.div(tf.mean(mask, 0), Math.min(opts.k, experts));
      break;
    }
    case 'switch': {
      // Switch Transformer: top-1, scaled by the router probability (no renormalisation).
      mask = topKMask(probs, 1);
      gates = tf.mul(probs, mask);
      share = tf.mean(mask, 0);
      break;
    }
    case 'soft': {
      mask = topKMask(probs, opts.k);
      gates = probs;
      share = tf.mean(probs, 0);
      break;
    }
    case 'sampleTop1': {
      // Gumbel-max draws one expert from the router distribution; argmax at eval. The gate is
      // 1 forward (straight-through), its gradient flows into the sampled expert's probability.
      let scores: tf.Tensor2D = logits;
      if (training) {
        const u = tf.randomUniform(logits.shape, 1e-6, 1 - 1e-6, 'float32', noiseSeed);
        scores = tf.sub(logits, tf.log(tf.neg(tf.log(u))));
      }
      mask = topKMask(scores, 1);
      gates = tf.mul(mask, tf.add(tf.sub(probs, stopGradient(probs)), 1));
      share = tf.mean(mask, 0);
      break;
    }
  }
  return { gates, probs, mask, share };
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
  const routing = route(linear(x, router), opts, training, noiseSeed);
  const outs = experts.map((e) => swiglu(x, e.w1, e.w3, e.w2)); // E x [N, hidden]
  const stacked = tf.stack(outs) as tf.Tensor3D; // [E, N, hidden]
  const weights = tf.expandDims(tf.transpose(routing.gates), 2); // [E, N, 1]
  const y = tf.sum(tf.mul(stacked, weights), 0) as tf.Tensor2D;
  return { y, routing };
}

/**
 * HF Mixtral's load_balancing_loss_func over all MoE layers (token rows concatenated):
 * E * sum_i f_i * P_i, f_i = mean over token rows of the slots routed to expert i,
 * P_i = mean router probability of expert i. Uniform routing with top-k gives k.
 * The caller multiplies by alpha (router_aux_loss_coef).
 */
export function loadBalancingLoss(layers: { probs: tf.Tensor2D; mask: tf.Tensor2D }[]): tf.Scalar {
  const probs = tf.concat(layers.map((l) => l.probs)) as tf.Tensor2D;
  const mask = tf.concat(layers.map((l) => l.mask)) as tf.Tensor2D;
  const experts = probs.shape[1];
  const f = tf.mean(mask, 0);
  const p = tf.mean(probs, 0);
  return tf.mul(tf.sum(tf.mul(f, p)), experts) as tf.Scalar;
}
