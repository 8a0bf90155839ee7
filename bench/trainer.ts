// Trainer speed on this machine's TensorFlow.js backend, every ratio measured side by side:
//   - a training step's tokens/s and achieved GFLOP/s against the best plain matMul GFLOP/s;
//   - MoE (4 experts, top-2) step time with dense and with sparse dispatch against a dense model
//     with the same active parameters;
//   - MoE FFN alone: dense dispatch (every expert on every token, masked) against sparse
//     (each expert on its own tokens, found with one host sync per layer);
//   - HF-layout linear layers: matMul with transpose flags against explicit transposes.
import * as tf from '../src/trainer/tfjs.js';
import { initBackend } from '../src/trainer/backend.js';
import { AdamW } from '../src/trainer/adamw.js';
import type { LlamaConfig, MixtralConfig } from '../src/trainer/hfConfig.js';
import { llamaConfigFromSpec } from '../src/trainer/hfConfig.js';
import { batchLoss, disposeParams, initParams, modelDims } from '../src/trainer/model.js';
import type { ModelDims } from '../src/trainer/model.js';
import { linear, moeFeedForward } from '../src/trainer/moe.js';
import type { Dispatch } from '../src/trainer/moe.js';

const BATCH = 8;
const SEQ = 64;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Median ms of `f` over `reps` runs after `warmup`; f must finish its device work (await data). */
async function time(f: () => Promise<void>, reps = 5, warmup = 2): Promise<number> {
  for (let i = 0; i < warmup; i++) await f();
  const ms: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await f();
    ms.push(performance.now() - t0);
  }
  return median(ms);
}

async function bestMatmulGflops(): Promise<{ gflops: number; size: number }> {
  let best = { gflops: 0, size: 0 };
  for (const n of [128, 256, 512, 1024]) {
    const a = tf.randomNormal([n, n]);
    const b = tf.randomNormal([n, n]);
    const ms = await time(async () => {
      const c = tf.matMul(a, b);
      await c.data();
      c.dispose();
    });
    const gflops = (2 * n ** 3) / ms / 1e6;
    if (gflops > best.gflops) best = { gflops, size: n };
    tf.dispose([a, b]);
  }
  return best;
}

/** Matmul FLOPs of one training step (forward x 3 for forward + backward), active experts only. */
function stepFlops(d: ModelDims, tokens: number): number {
  const attnProj = d.hidden * (2 * d.heads * d.headDim + 2 * d.kvHeads * d.headDim);
  const ffn = 3 * d.hidden * d.ffn * (d.experts > 0 ? d.routing.k : 1);
  const router = d.experts * d.hidden;
  const perTokenLayer = 2 * (attnProj + ffn + router) + 2 * 2 * SEQ * d.heads * d.headDim;
  return 3 * tokens * (d.layers * perTokenLayer + 2 * d.hidden * d.vocab);
}

interface Stepper {
  step: () => Promise<void>;
  dims: ModelDims;
  dispose: () => void;
}

/** One training step (loss, gradients, AdamW) of a fresh model, repeatable. */
function trainStepper(config: LlamaConfig | MixtralConfig, dispatch?: Dispatch): Stepper {
  const dims = modelDims(config);
  const routing = dispatch ? { ...dims.routing, dispatch } : undefined;
  const params = initParams(dims, 1);
  const opt = new AdamW(params);
  const ids = tf.randomUniform([BATCH, SEQ + 1], 0, dims.vocab, 'int32', 7) as tf.Tensor2D;
  return {
    dims,
    step: async () => {
      const { value, grads } = tf.variableGrads(
        () => batchLoss(params, dims, ids, { training: true, ...(routing ? { routing } : {}) }).total,
        opt.variables(),
      );
      const norm = opt.apply(grads, 1e-4);
      await value.data();
      tf.dispose([value, norm, ...Object.values(grads)]);
    },
    dispose: () => {
      opt.dispose();
      disposeParams(params);
      ids.dispose();
    },
  };
}

async function trainStepMs(config: LlamaConfig | MixtralConfig): Promise<{ ms: number; dims: ModelDims }> {
  const s = trainStepper(config);
  const ms = await time(s.step);
  s.dispose();
  return { ms, dims: s.dims };
}

/**
 * Steps of several models taken in turn (so that a change of machine load hits all alike): median
 * wall ms and median process CPU ms (user + system; less sensitive to other processes) per step.
 */
async function interleavedMs(
  steppers: Stepper[],
  reps = 11,
  warmup = 2,
): Promise<{ wall: number; cpu: number }[]> {
  const wall: number[][] = steppers.map(() => []);
  const cpu: number[][] = steppers.map(() => []);
  for (let r = 0; r < warmup + reps; r++) {
    for (const [i, s] of steppers.entries()) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      await s.step();
      const t = performance.now() - t0;
      const c = process.cpuUsage(c0);
      if (r >= warmup) {
        wall[i]!.push(t);
        cpu[i]!.push((c.user + c.system) / 1000);
      }
    }
  }
  return steppers.map((_, i) => ({ wall: median(wall[i]!), cpu: median(cpu[i]!) }));
}

function variable2d(shape: [number, number], std: number): tf.Variable<tf.Rank.R2> {
  return tf.variable(tf.randomNormal<tf.Rank.R2>(shape, 0, std));
}

/** MoE FFN forward + backward with moeFeedForward's own dispatch (sparse syncs the mask inside). */
async function dispatchMs(dispatch: Dispatch): Promise<number> {
  const [n, hidden, ffn, experts] = [BATCH * SEQ, 64, 192, 4];
  const x = variable2d([n, hidden], 1);
  const router = variable2d([experts, hidden], 0.5);
  const w = Array.from({ length: experts }, () => ({
    w1: variable2d([ffn, hidden], 0.05),
    w3: variable2d([ffn, hidden], 0.05),
    w2: variable2d([hidden, ffn], 0.05),
  }));
  const vars = [x, router, ...w.flatMap((e) => [e.w1, e.w2, e.w3])] as tf.Variable[];
  const opts = { router: 'topK' as const, k: 2, dispatch };
  const ms = await time(async () => {
    const { value, grads } = tf.variableGrads(
      () => tf.sum(moeFeedForward(x, router, w, opts, true, 0).y) as tf.Scalar,
      vars,
    );
    await value.data();
    tf.dispose([value, ...Object.values(grads)]);
  });
  tf.dispose(vars);
  return ms;
}

async function linearMs(kind: 'flags' | 'explicit'): Promise<number> {
  const x = variable2d([BATCH * SEQ, 64], 1);
  const w = variable2d([192, 64], 1);
  const ms = await time(async () => {
    const { value, grads } = tf.variableGrads(
      () => tf.sum(kind === 'flags' ? tf.matMul(x, w, false, true) : linear(x, w)) as tf.Scalar,
      [x, w],
    );
    await value.data();
    tf.dispose([value, ...Object.values(grads)]);
  });
  tf.dispose([x, w]);
  return ms;
}

export async function bench(): Promise<void> {
  const backend = await initBackend();
  const tokens = BATCH * SEQ;
  const matmul = await bestMatmulGflops();
  console.log(
    `backend ${backend}; best plain matMul ${matmul.gflops.toFixed(2)} GFLOP/s (${matmul.size}x${matmul.size})`,
  );

  const spec = { vocabSize: 259, dModel: 64, layers: 2, heads: 4, ffnHidden: 192, seqLen: SEQ };
  const dense = llamaConfigFromSpec(spec);
  const denseStep = await trainStepMs(dense);
  const flops = stepFlops(denseStep.dims, tokens);
  console.log(
    `dense train step (d64 L2 H4 ffn192, batch ${BATCH}x${SEQ}): ${denseStep.ms.toFixed(1)} ms, ` +
      `${((tokens / denseStep.ms) * 1000).toFixed(0)} tokens/s, ${(flops / denseStep.ms / 1e6).toFixed(2)} GFLOP/s ` +
      `= ${((flops / denseStep.ms / 1e6 / matmul.gflops) * 100).toFixed(1)}% of plain matMul`,
  );

  const { model_type: _t, ...rest } = dense;
  const moe: MixtralConfig = {
    ...rest,
    model_type: 'mixtral',
    num_local_experts: 4,
    num_experts_per_tok: 2,
    router_aux_loss_coef: 0.01,
  };
  const sameActive = llamaConfigFromSpec({ ...spec, ffnHidden: 2 * spec.ffnHidden });
  const steppers = [trainStepper(moe, 'dense'), trainStepper(moe, 'sparse'), trainStepper(sameActive)];
  const [dm, sm, am] = await interleavedMs(steppers);
  for (const st of steppers) st.dispose();
  const line = (k: 'wall' | 'cpu') =>
    `dense dispatch ${dm![k].toFixed(1)} ms, sparse dispatch ${sm![k].toFixed(1)} ms ` +
    `(sparse/dense ${(sm![k] / dm![k]).toFixed(2)}x); same active parameters dense model (ffn 384) ` +
    `${am![k].toFixed(1)} ms: MoE ${(dm![k] / am![k]).toFixed(2)}x dense, ${(sm![k] / am![k]).toFixed(2)}x sparse`;
  console.log(`MoE 4 experts top-2 step, wall: ${line('wall')}`);
  console.log(`MoE 4 experts top-2 step, CPU:  ${line('cpu')}`);

  const denseDispatch = await dispatchMs('dense');
  const sparseDispatch = await dispatchMs('sparse');
  console.log(
    `MoE FFN forward+backward, ${tokens} tokens, 4 experts top-2: dense dispatch ${denseDispatch.toFixed(1)} ms, ` +
      `sparse dispatch ${sparseDispatch.toFixed(1)} ms (sparse/dense ${(sparseDispatch / denseDispatch).toFixed(2)}x)`,
  );

  const flags = await linearMs('flags');
  const explicit = await linearMs('explicit');
  console.log(
    `linear [${tokens},64] x [192,64]^T forward+backward: transpose flags ${flags.toFixed(2)} ms, ` +
      `explicit transposes ${explicit.toFixed(2)} ms (${(flags / explicit).toFixed(2)}x)`,
  );
}

if (import.meta.url === `file://${process.argv[1]}`) await bench();
