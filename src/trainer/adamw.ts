// AdamW (decoupled weight decay) over tf.Variables, written out so that its moments are plain
// named tensors that a checkpoint can store (optimizer.safetensors) and a resumed run can reload.
// Decay applies to matrices only (nanoGPT's rule): norms' gains are not pulled toward zero.
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
  m: tf.Variable;
  v: tf.Variable;
  decay: boolean;
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
        m: tf.variable(tf.zerosLike(param), false),
        v: tf.variable(tf.zerosLike(param), false),
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
   * Returns the global gradient norm before clipping, still on the device.
   */
  apply(grads: tf.NamedTensorMap, lr: number): tf.Scalar {
    this.step += 1;
    const { beta1, beta2, eps, weightDecay, gradClip } = this.opts;
    const correction = Math.sqrt(1 - beta2 ** this.step) / (1 - beta1 ** this.step);
    return tf.tidy(() => {
      const present = [...this.slots.values()].filter((s) => grads[s.param.name]);
      const norm = tf.sqrt(tf.addN(present.map((s) => tf.sum(tf.square(grads[s.param.name]!))))) as tf.Scalar;
      const scale = gradClip > 0 ? tf.minimum(1, tf.div(gradClip, tf.add(norm, 1e-6))) : tf.scalar(1);
      for (const s of present) {
        const g = tf.mul(grads[s.param.name]!, scale);
        s.m.assign(tf.add(tf.mul(s.m, beta1), tf.mul(g, 1 - beta1)));
        s.v.assign(tf.add(tf.mul(s.v, beta2), tf.mul(tf.square(g), 1 - beta2)));
        const update = tf.mul(tf.div(s.m, tf.add(tf.sqrt(s.v), eps)), lr * correction);
        const decayed = s.decay && weightDecay > 0 ? tf.mul(s.param, 1 - lr * weightDecay) : s.param;
        s.param.assign(tf.sub(decayed, update));
      }
      return norm;
    });
  }

  /** Moments as `<param>.exp_avg` / `<param>.exp_avg_sq` (torch's names). */
  async toTensors(): Promise<NamedTensor[]> {
    const out: NamedTensor[] = [];
    for (const [name, s] of this.slots) {
      out.push({ name: `${name}.exp_avg`, shape: [...s.m.shape], data: (await s.m.data()) as Float32Array });
      out.push({
        name: `${name}.exp_avg_sq`,
        shape: [...s.v.shape],
        data: (await s.v.data()) as Float32Array,
      });
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
        if (t.shape.join(',') !== target.shape.join(',')) {
          throw new Error(
            `optimizer state ${name}.${suffix} has shape [${t.shape}], expected [${target.shape}]`,
          );
        }
        tf.tidy(() => target.assign(tf.tensor(t.data, t.shape, 'float32')));
      }
    }
    this.step = step;
    return fresh;
  }

  dispose(): void {
    for (const s of this.slots.values()) {
      s.m.dispose();
      s.v.dispose();
    }
  }
}
