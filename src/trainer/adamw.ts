// AdamW (decoupled weight decay) over tf.Variables, written out so that its moments are plain
// named tensors that a checkpoint can store (optimizer.safetensors) and a resumed run can reload.
// Decay applies to matrices only (nanoGPT's rule): norms' gains are not pulled toward zero.
//
// The update is one fused pass per parameter: the gradient and the weights are read once, the
// moments updated in place, the new weights written once. Written as tf ops it was ~13 elementwise
// passes and as many kernel launches per parameter tensor (issue 10). On the wasm backend the pass
// is rowKernels.ts' SIMD AdamW (float32 lanes) with the moments in wasm memory, writing a new
// weights tensor; it was a JavaScript loop over views (float64, rounded when stored), which the
// other backends still run. Either way the arithmetic is the same on every run of a machine and
// backend, so a resumed run stays bit-identical.
import * as tf from './tfjs.js';
import type { NamedTensor } from './checkpoint.js';
import {
  addressOf,
  allocate,
  floatsAt,
  fusedKernelsHere,
  wasmModule,
  type KernelArgs,
  type WasmHeap,
} from './wasmHeap.js';
import { rowKernels } from './rowKernels.js';

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
  moments: Moments;
  decay: boolean;
}

/**
 * The first and second moments of one parameter: host arrays, or on the wasm backend two blocks of
 * wasm memory (the backend's malloc) that the update kernel works on in place.
 */
interface Moments {
  /** Views or arrays of m and v (on wasm, valid until the backend next allocates). */
  read(): { m: Float32Array; v: Float32Array };
  /** Byte addresses of m and v in wasm memory (wasm only). */
  readonly at?: { m: number; v: number };
  free(): void;
}

function hostMoments(size: number): Moments {
  const [m, v] = [new Float32Array(size), new Float32Array(size)];
  return { read: () => ({ m, v }), free: () => {} };
}

function wasmMoments(size: number): Moments {
  const wasm = wasmModule(tf.engine().backend);
  const alloc = () => {
    const at = allocate(wasm, 4 * size, `AdamW moments of ${size} parameters`);
    floatsAt(wasm, at, size).fill(0);
    return at;
  };
  const at = { m: alloc(), v: alloc() };
  return {
    at,
    read: () => ({
      m: floatsAt(wasm, at.m, size),
      v: floatsAt(wasm, at.v, size),
    }),
    free: () => [at.m, at.v].forEach((p) => wasm._free(p)),
  };
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

/**
 * w updated in place (the host path: other backends). The moments are rounded to float32 as they are stored and used
 * rounded; kept in locals rather than read back, the loop runs ~30% faster (10.7 -> 6.9-7.6 ns per
 * parameter, 361k parameters, in isolation).
 */
function update(w: Float32Array, m: Float32Array, v: Float32Array, g: Float32Array, c: UpdateConstants) {
  const { clip, keep, stepSize, beta1, beta2, eps } = c;
  const [rest1, rest2] = [1 - beta1, 1 - beta2];
  for (let i = 0; i < w.length; i++) {
    const gi = g[i]! * clip;
    const mi = Math.fround(beta1 * m[i]! + rest1 * gi);
    const vi = Math.fround(beta2 * v[i]! + rest2 * gi * gi);
    m[i] = mi;
    v[i] = vi;
    w[i] = w[i]! * keep - (stepSize * mi) / (Math.sqrt(vi) + eps);
  }
}

/** The update on the wasm backend: rowKernels.ts' SIMD AdamW into a new weights tensor. */
function adamwKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const { w, g } = inputs as { w: tf.TensorInfo; g: tf.TensorInfo };
  const a = attrs as unknown as UpdateConstants & { m: number; v: number };
  const out = (backend as WasmHeap).makeOutput([...w.shape], 'float32');
  const size = w.shape.reduce((p, q) => p * q, 1);
  const at = (t: tf.TensorInfo) => addressOf(backend, t);
  rowKernels().adamw(
    at(w),
    at(g),
    at(out),
    a.m,
    a.v,
    size,
    a.clip,
    a.keep,
    a.stepSize,
    a.beta1,
    a.beta2,
    a.eps,
  );
  return out;
}

tf.registerKernel({
  kernelName: 'BtxAdamW',
  backendName: 'wasm',
  kernelFunc: adamwKernel as unknown as tf.KernelFunc,
});

/**
 * A float32 tensor's values: on the wasm backend a view of wasm memory, valid until the backend
 * next allocates (which can grow the memory and detach it); elsewhere dataSync's array.
 */
function values(t: tf.Tensor): Float32Array {
  if (!fusedKernelsHere()) return t.dataSync() as Float32Array;
  return (tf.engine().backend as unknown as WasmHeap).typedArrayFromHeap(t) as Float32Array;
}

export class AdamW {
  /** Updates applied so far (drives bias correction). */
  step = 0;
  private readonly slots = new Map<string, Slot>();

  constructor(
    params: Map<string, tf.Variable>,
    readonly opts: AdamWOptions = ADAMW_DEFAULTS,
  ) {
    const moments = fusedKernelsHere() ? wasmMoments : hostMoments;
    for (const [name, param] of params) {
      this.slots.set(name, { param, moments: moments(param.size), decay: param.shape.length >= 2 });
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
    let squares = 0;
    for (const s of present) squares += sumOfSquares(values(grads[s.param.name]!));
    const norm = Math.sqrt(squares);
    const clip = gradClip > 0 ? Math.min(1, gradClip / (norm + 1e-6)) : 1;
    const stepSize = (lr * Math.sqrt(1 - beta2 ** this.step)) / (1 - beta1 ** this.step);
    for (const s of present) {
      const keep = s.decay ? 1 - lr * weightDecay : 1;
      const c = { clip, keep, stepSize, beta1, beta2, eps };
      const grad = grads[s.param.name]!;
      if (s.moments.at) {
        const attrs = { ...c, ...s.moments.at } as unknown as tf.NamedAttrMap;
        tf.tidy(() =>
          s.param.assign(tf.engine().runKernel('BtxAdamW', { w: s.param, g: grad }, attrs) as tf.Tensor),
        );
        continue;
      }
      // dataSync's array is updated in place and handed to the new tensor (the CPU backend keeps
      // the array it is given).
      const w = values(s.param);
      const { m, v } = s.moments.read();
      update(w, m, v, values(grad), c);
      tf.tidy(() => s.param.assign(tf.tensor(w, s.param.shape, 'float32')));
    }
    return tf.scalar(norm);
  }

  /** Moments as `<param>.exp_avg` / `<param>.exp_avg_sq` (torch's names). */
  async toTensors(): Promise<NamedTensor[]> {
    const out: NamedTensor[] = [];
    for (const [name, s] of this.slots) {
      const shape = [...s.param.shape];
      const { m, v } = s.moments.read();
      out.push({ name: `${name}.exp_avg`, shape, data: m.slice() });
      out.push({ name: `${name}.exp_avg_sq`, shape, data: v.slice() });
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
      const { m, v } = s.moments.read();
      for (const [suffix, target] of [
        ['exp_avg', m],
        ['exp_avg_sq', v],
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

  /** Frees the moments' wasm memory (host arrays are left to the garbage collector). */
  dispose(): void {
    for (const s of this.slots.values()) s.moments.free();
    this.slots.clear();
  }
}
