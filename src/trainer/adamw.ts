// AdamW (decoupled weight decay) over tf.Variables, written out so that its moments are plain
// named tensors that a checkpoint can store (optimizer.safetensors) and a resumed run can reload.
// Decay applies to matrices only (nanoGPT's rule): norms' gains are not pulled toward zero.
//
// The update is one fused loop per parameter on the host: the gradient and the weights are read
// once, the moments live in Float32Arrays, the new weights are written back once. Written as tf ops
// it was ~13 elementwise passes and as many kernel launches per parameter tensor (issue 10), which
// at d64 (21 tensors) was nearly a third of the step's ~940 ops. The arithmetic is JavaScript's
// (float64, rounded to float32 when stored), the same on every run and backend, so a resumed run
// stays bit-identical.
import * as tf from './tfjs.js';
import type { NamedTensor } from './checkpoint.js';

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Clip the global gradient norm to this (0: no clipping). */
  gradClip: number;
}

export const ADAMW_DEFAULTS: AdamWOptions = {
  beta1: 0.9,
  beta2: 0.95,
  eps: 1e-8,
  weightDecay: 0.1,
  gradClip: 1,
};

export const OPTIMIZER_KIND = 'adamw';

interface Slot {
  param: tf.Variable;
  m: Float32Array;
  v: Float32Array;
  decay: boolean;
}

/**
 * The two loops of the update, as functions of their own: V8 compiles them for Float32Array alone.
 * Written inline (the norm in apply, the update in a forEach callback) the same arithmetic took
 * 33 ns per parameter instead of 12 (node --cpu-prof of the d64 MoE training step, 360k parameters:
 * AdamW was 16 of the step's ~150 ms CPU).
 */
function sumOfSquares(g: Float32Array): number {
  let squares = 0;
  for (let i = 0; i < g.length; i++) squares += g[i]! * g[i]!;
  return squares;
}

interface UpdateConstants {
  clip: number;
  keep: number;
  stepSize: number;
  beta1: number;
  beta2: number;
  eps: number;
}

function update(w: Float32Array, m: Float32Array, v: Float32Array, g: Float32Array, c: UpdateConstants) {
  const { clip, keep, stepSize, beta1, beta2, eps } = c;
  for (let i = 0; i < w.length; i++) {
    const gi = g[i]! * clip;
    m[i] = beta1 * m[i]! + (1 - beta1) * gi;
    v[i] = beta2 * v[i]! + (1 - beta2) * gi * gi;
    w[i] = w[i]! * keep - (stepSize * m[i]!) / (Math.sqrt(v[i]!) + eps);
  }
}

export class AdamW {
  /** Updates applied so far (drives bias correction). */
  step = 0;
  private readonly slots = new Map<string, Slot>();

  constructor(
    params: Map<string, tf.Variable>,
    readonly opts: AdamWOptions = ADAMW_DEFAULTS,
  ) {
    for (const [name, param] of params) {
      this.slots.set(name, {
        param,
        m: new Float32Array(param.size),
        v: new Float32Array(param.size),
        decay: param.shape.length >= 2,
      });
    }
  }

  /** The variables being optimised (pass these to tf.variableGrads). */
  variables(): tf.Variable[] {
    return [...this.slots.values()].map((s) => s.param);
  }

  /**
   * One update from grads keyed by variable name (what tf.variableGrads returns).
   * Returns the global gradient norm before clipping.
   */
  apply(grads: tf.NamedTensorMap, lr: number): tf.Scalar {
    this.step += 1;
    const { beta1, beta2, eps, weightDecay, gradClip } = this.opts;
    const present = [...this.slots.values()].filter((s) => grads[s.param.name]);
    const gradients = present.map((s) => grads[s.param.name]!.dataSync() as Float32Array);
    let squares = 0;
    for (const g of gradients) squares += sumOfSquares(g);
    const norm = Math.sqrt(squares);
    const clip = gradClip > 0 ? Math.min(1, gradClip / (norm + 1e-6)) : 1;
    const stepSize = (lr * Math.sqrt(1 - beta2 ** this.step)) / (1 - beta1 ** this.step);
    present.forEach((s, j) => {
      const { m, v } = s;
      const g = gradients[j]!;
      const w = s.param.dataSync() as Float32Array; // a copy, updated in place below
      const keep = s.decay ? 1 - lr * weightDecay : 1;
      update(w, m, v, g, { clip, keep, stepSize, beta1, beta2, eps });
      tf.tidy(() => s.param.assign(tf.tensor(w, s.param.shape, 'float32')));
    });
    return tf.scalar(norm);
  }

  /** Moments as `<param>.exp_avg` / `<param>.exp_avg_sq` (torch's names). */
  async toTensors(): Promise<NamedTensor[]> {
    const out: NamedTensor[] = [];
    for (const [name, s] of this.slots) {
      const shape = [...s.param.shape];
      out.push({ name: `${name}.exp_avg`, shape, data: s.m.slice() });
      out.push({ name: `${name}.exp_avg_sq`, shape, data: s.v.slice() });
    }
    return out;
  }

  /**
   * Restore moments saved by toTensors and the step count from trainer_state.json. Parameters with
   * no saved moments (e.g. experts that a frozen run did not train) start from zero; their names are
   * returned so the caller can say so. A shape mismatch is an error.
   */
  load(tensors: Map<string, NamedTensor>, step: number): string[] {
    const fresh: string[] = [];
    for (const [name, s] of this.slots) {
      for (const [suffix, target] of [
        ['exp_avg', s.m],
        ['exp_avg_sq', s.v],
      ] as const) {
        const t = tensors.get(`${name}.${suffix}`);
        if (!t) {
          if (suffix === 'exp_avg') fresh.push(name);
          continue;
        }
        if (t.shape.join(',') !== s.param.shape.join(',')) {
          throw new Error(
            `optimizer state ${name}.${suffix} has shape [${t.shape}], expected [${s.param.shape}]`,
          );
        }
        target.set(t.data);
      }
    }
    this.step = step;
    return fresh;
  }

  /** Nothing to free: the moments are host arrays (kept for callers written against tensors). */
  dispose(): void {}
}
