// Branch-Train-Merge (Li et al. 2022, "Branch-Train-Merge: Embarrassingly Parallel Training of Expert
// Language Models"): the experts, never merged, used as an ensemble whose weights are the posterior
// over domains given the context so far. For the token at position t of a window,
//
//   w_j(t) = P(D = j | x_<=t) ∝ P(D = j) * prod_{i<t} p_j(x_i+1 | x_<=i)      (Bayes' rule)
//   p(x_t+1 | x_<=t) = sum_j w_j(t) * p_j(x_t+1 | x_<=t)
//
// so the expert that has explained the prefix best dominates the next prediction; at the window's
// first prediction the weights are the prior (uniform unless given: the paper also uses a prior
// estimated from data, e.g. each domain's share of the tokens). Everything is in log space (log-sum-
// exp), since prefix likelihoods underflow after a few dozen tokens. btmEnsemble is pure arithmetic on
// per-token losses; tokenLosses gets those from a model.
import * as tf from './tfjs.js';
import { forward, type ModelDims, type Params } from './model.js';

function logSumExp(xs: readonly number[]): number {
  const max = Math.max(...xs);
  if (max === -Infinity) return -Infinity;
  return max + Math.log(xs.reduce((a, x) => a + Math.exp(x - max), 0));
}

export interface BtmWindow {
  /** The ensemble's loss (nats) at each position. */
  losses: number[];
  /** The posterior weights used at each position: weights[t][j]. */
  weights: number[][];
}

/**
 * The ensemble on one window. `nll[j][t]` is member j's loss (-ln p_j) on the token it predicts at
 * position t; `prior` holds one weight >= 0 per member (normalised here; default uniform).
 */
export function btmEnsemble(nll: readonly ArrayLike<number>[], prior?: readonly number[]): BtmWindow {
  const members = nll.length;
  if (members === 0) throw new Error('btm: no experts');
  const positions = nll[0]!.length;
  if (nll.some((n) => n.length !== positions))
    throw new Error('btm: every expert must score the same tokens');
  const p = prior ?? Array<number>(members).fill(1);
  if (p.length !== members || p.some((w) => !(w >= 0)) || !p.some((w) => w > 0))
    throw new Error(`btm: the prior needs ${members} weights >= 0, not all 0 (got ${p.join(',')})`);
  const total = p.reduce((a, w) => a + w, 0);
  // log w_j(t) before normalising: log prior - the prefix's loss so far.
  const logWeight = p.map((w) => Math.log(w / total));
  const losses: number[] = [];
  const weights: number[][] = [];
  for (let t = 0; t < positions; t++) {
    const norm = logSumExp(logWeight);
    weights.push(logWeight.map((lw) => Math.exp(lw - norm)));
    const joint = logWeight.map((lw, j) => lw - nll[j]![t]!);
    losses.push(norm - logSumExp(joint));
    for (let j = 0; j < members; j++) logWeight[j]! -= nll[j]![t]!;
  }
  return { losses, weights };
}

/** The mean ensemble loss over windows, each given as its members' per-token losses. */
export function btmMeanLoss(
  windows: readonly (readonly ArrayLike<number>[])[],
  prior?: readonly number[],
): number {
  let sum = 0;
  let count = 0;
  for (const nll of windows) {
    for (const l of btmEnsemble(nll, prior).losses) sum += l;
    count += nll[0]?.length ?? 0;
  }
  return sum / Math.max(1, count);
}

/** Per-token losses of a model on windows [B, T+1] (predict 1..T from 0..T-1): B rows of T values. */
export async function tokenLosses(
  params: Params,
  dims: ModelDims,
  rows: Int32Array,
  batch: number,
): Promise<Float32Array[]> {
  const width = rows.length / batch;
  const flat = tf.tidy(() => {
    const ids = tf.tensor2d(rows, [batch, width], 'int32');
    const inputs = tf.slice(ids, [0, 0], [batch, width - 1]) as tf.Tensor2D;
    const targets = tf.reshape(tf.slice(ids, [0, 1], [batch, width - 1]), [batch * (width - 1)]);
    const { logits } = forward(params, dims, inputs, { training: false });
    const logp = tf.logSoftmax(logits);
    const picked = tf.sum(
      tf.mul(logp, tf.cast(tf.oneHot(targets as tf.Tensor1D, logits.shape[1]), 'float32')),
      1,
    );
    return tf.neg(picked);
  });
  const values = (await flat.data()) as Float32Array;
  flat.dispose();
  return Array.from({ length: batch }, (_, b) => values.slice(b * (width - 1), (b + 1) * (width - 1)));
}
