// Trainer speed on this machine's TensorFlow.js backend, every ratio measured side by side in one run:
//   - a training step (loss, gradients, AdamW) in tokens/s against the same step in PyTorch on CPU
//     (bench/torchBaseline.py: same architecture, batch and optimiser, one thread each), steps taken
//     in turn; and its matmul GFLOP/s against NumPy/OpenBLAS single-thread sgemm of the same shapes;
//   - MoE (4 experts, top-2) step time against a dense model with the same active parameters, on a
//     quiet machine and with 3 CPU hogs, with both dispatches;
//   - our GEMM (tf.matMul on wasm, src/trainer/gemm.ts) against the backend's own XNNPACK matMul on
//     the d256 step's shapes, plain and with a transposed operand, in turn.
// PyTorch and NumPy come from Debian (`apt-get install python3-torch python3-numpy`; BTX_BENCH_PYTHON
// picks another interpreter); without them the bench says so and prints the rest.
// BTX_BENCH_REPS sets the timed steps per model (default 5); BTX_BENCH_TRAINER picks parts (comma
// separated: step, moe, gemm; default all) and BTX_BENCH_MODELS the step's models (d64, d256).
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import * as tf from '../src/trainer/tfjs.js';
import { initBackend } from '../src/trainer/backend.js';
import { AdamW } from '../src/trainer/adamw.js';
import type { ModelSpec } from '../src/api/stageContract.js';
import type { LlamaConfig, MixtralConfig } from '../src/trainer/hfConfig.js';
import { llamaConfigFromSpec } from '../src/trainer/hfConfig.js';
import { batchLoss, disposeParams, initParams, modelDims } from '../src/trainer/model.js';
import type { ModelDims } from '../src/trainer/model.js';
import { useBackendMatMul, wasmGemm } from '../src/trainer/matMulKernel.js';
import type { Dispatch } from '../src/trainer/moe.js';

const BATCH = 8;
const REPS = Number(process.env.BTX_BENCH_REPS ?? 5);
/**
 * Untimed steps of each side first: a training run is thousands of steps, and V8 compiles our
 * kernels' JavaScript over the first few (with one warm-up step the d64 median was ~1.5x the steady one).
 */
const STEP_WARMUP = 3;
const SMALL: ModelSpec = { vocabSize: 259, dModel: 64, layers: 2, heads: 4, ffnHidden: 192, seqLen: 64 };
const LARGE: ModelSpec = { vocabSize: 259, dModel: 256, layers: 4, heads: 4, ffnHidden: 688, seqLen: 256 };

/** The comma-separated entries of an environment variable, or all of `every` when it is unset. */
function picked<T extends string>(name: string, every: readonly T[]): T[] {
  const value = process.env[name];
  if (value === undefined || value === '') return [...every];
  const wanted = value.split(',').map((v) => v.trim());
  const unknown = wanted.filter((w) => !every.includes(w as T));
  if (unknown.length > 0)
    throw new Error(`${name}: unknown ${unknown.join(', ')} (one of ${every.join(', ')})`);
  return wanted as T[];
}
const PARTS = picked('BTX_BENCH_TRAINER', ['step', 'moe', 'gemm'] as const);
const MODELS = picked('BTX_BENCH_MODELS', ['d64', 'd256'] as const).map((m) => (m === 'd64' ? SMALL : LARGE));

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

/**
 * The matrix products of one dense training step, [m, k, n, count], forward and backward: per linear
 * layer x W^T, dy W and dy^T x; per (sequence, head) q k^T, p v and their four gradient products.
 */
function stepMatmuls(d: ModelDims, batch: number, seq: number): [number, number, number, number][] {
  const n = batch * seq;
  const linear = (inp: number, out: number): [number, number, number, number][] => [
    [n, inp, out, 1],
    [n, out, inp, 1],
    [out, n, inp, 1],
  ];
  const [q, kv, hd, bh] = [d.heads * d.headDim, d.kvHeads * d.headDim, d.headDim, batch * d.heads];
  const layer = [
    ...linear(d.hidden, q),
    ...linear(d.hidden, kv),
    ...linear(d.hidden, kv),
    ...linear(q, d.hidden),
    ...linear(d.hidden, d.ffn),
    ...linear(d.hidden, d.ffn),
    ...linear(d.ffn, d.hidden),
    ...([
      [seq, hd, seq, bh],
      [seq, seq, hd, bh],
      [seq, hd, seq, bh],
      [seq, seq, hd, bh],
      [seq, seq, hd, bh],
      [seq, seq, hd, bh],
    ] as [number, number, number, number][]),
  ];
  return [...Array.from({ length: d.layers }, () => layer).flat(), ...linear(d.hidden, d.vocab)];
}

function matmulFlops(shapes: [number, number, number, number][]): number {
  return shapes.reduce((sum, [m, k, n, count]) => sum + 2 * m * k * n * count, 0);
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
  const seq = (config as LlamaConfig).max_position_embeddings;
  const ids = tf.randomUniform([BATCH, seq + 1], 0, dims.vocab, 'int32', 7) as tf.Tensor2D;
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

/** A Python child answering bench/torchBaseline.py's JSON lines, or why there is none. */
class PythonBaseline {
  private constructor(
    private readonly child: ChildProcess,
    private readonly lines: AsyncIterator<string>,
  ) {}

  /** The first interpreter that imports `module`: BTX_BENCH_PYTHON, python3, Debian's python3. */
  static find(module: string): string | undefined {
    const candidates = [process.env.BTX_BENCH_PYTHON, 'python3', '/usr/bin/python3'].filter(
      (p): p is string => p !== undefined && p !== '',
    );
    return candidates.find((p) => spawnSync(p, ['-c', `import ${module}`], { stdio: 'ignore' }).status === 0);
  }

  static start(python: string, env: NodeJS.ProcessEnv): PythonBaseline {
    const script = fileURLToPath(new URL('torchBaseline.py', import.meta.url));
    const threads = { OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1', MKL_NUM_THREADS: '1' };
    const child = spawn(python, [script], {
      env: { ...env, ...threads },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    return new PythonBaseline(child, createInterface({ input: child.stdout! })[Symbol.asyncIterator]());
  }

  async ask<T>(msg: object): Promise<T> {
    this.child.stdin!.write(`${JSON.stringify(msg)}\n`);
    const line = await this.lines.next();
    if (line.done) throw new Error('the Python baseline exited');
    const reply = JSON.parse(line.value) as T & { error?: string };
    if (reply.error) throw new Error(reply.error);
    return reply;
  }

  close(): void {
    this.child.stdin!.end();
  }
}

interface StepTimes {
  /** Median wall ms per step. */
  wall: number;
  /** Median process CPU ms per step (steadier than wall time on a busy machine). */
  cpu: number;
}

/** Our step against PyTorch's, one step each in turn. */
async function stepVersusTorch(
  spec: ModelSpec,
  torch: PythonBaseline | undefined,
): Promise<{ ours: StepTimes; torch?: StepTimes; dims: ModelDims }> {
  const config = llamaConfigFromSpec(spec);
  const ours = trainStepper(config);
  const d = ours.dims;
  if (torch) await torch.ask({ op: 'init', model: { ...d, seqLen: spec.seqLen }, batch: BATCH });
  const mine = { wall: [] as number[], cpu: [] as number[] };
  const theirs = { wall: [] as number[], cpu: [] as number[] };
  for (let r = 0; r < STEP_WARMUP + REPS; r++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await ours.step();
    const wall = performance.now() - t0;
    const c = process.cpuUsage(c0);
    const reply = torch
      ? await torch.ask<{ ms: number[]; cpu: number[] }>({ op: 'step', reps: 1 })
      : undefined;
    if (r < STEP_WARMUP) continue;
    mine.wall.push(wall);
    mine.cpu.push((c.user + c.system) / 1000);
    if (reply) {
      theirs.wall.push(...reply.ms);
      theirs.cpu.push(...reply.cpu);
    }
  }
  ours.dispose();
  const medians = (t: { wall: number[]; cpu: number[] }) => ({ wall: median(t.wall), cpu: median(t.cpu) });
  return { ours: medians(mine), ...(torch ? { torch: medians(theirs) } : {}), dims: d };
}

async function trainStepVersusBaselines(): Promise<void> {
  const torchPython = PythonBaseline.find('torch');
  const numpyPython = PythonBaseline.find('numpy');
  if (!torchPython) console.log('PyTorch not found (apt-get install python3-torch): no PyTorch baseline');
  if (!numpyPython) console.log('NumPy not found (apt-get install python3-numpy): no sgemm baseline');
  const torch = torchPython ? PythonBaseline.start(torchPython, process.env) : undefined;
  // The sgemm baseline runs OpenBLAS as it tunes itself for this CPU.
  const { OPENBLAS_CORETYPE: _c, OPENBLAS_L2_SIZE: _l, ...plainEnv } = process.env;
  const numpy = numpyPython ? PythonBaseline.start(numpyPython, plainEnv) : undefined;
  try {
    for (const spec of MODELS) {
      const name = `d${spec.dModel} L${spec.layers} H${spec.heads} ffn${spec.ffnHidden}, batch ${BATCH}x${spec.seqLen}`;
      const { ours, torch: theirs, dims } = await stepVersusTorch(spec, torch);
      const tokens = BATCH * spec.seqLen;
      const rate = (t: StepTimes) =>
        `${((tokens / t.wall) * 1000).toFixed(0)} tokens/s (${t.wall.toFixed(0)} ms wall, ${t.cpu.toFixed(0)} ms CPU)`;
      console.log(`train step ${name}: ours ${rate(ours)}`);
      if (theirs) {
        console.log(
          `  PyTorch 1 thread ${rate(theirs)}; ours/PyTorch tokens/s ${(theirs.wall / ours.wall).toFixed(2)}x ` +
            `by wall time, ${(theirs.cpu / ours.cpu).toFixed(2)}x by CPU time`,
        );
      }
      const shapes = stepMatmuls(dims, BATCH, spec.seqLen);
      const flops = matmulFlops(shapes);
      const gflops = (ms: number) => (flops / ms / 1e6).toFixed(2);
      let line = `  matmul work ${(flops / 1e9).toFixed(2)} GFLOP/step: ours ${gflops(ours.wall)} GFLOP/s`;
      if (numpy) {
        const each = shapes.flatMap(([m, k, n, count]) => Array.from({ length: count }, () => [m, k, n]));
        const sgemm: number[] = [];
        for (let r = 0; r < 3; r++)
          sgemm.push((await numpy.ask<{ ms: number }>({ op: 'sgemm', shapes: each })).ms);
        line += `; NumPy/OpenBLAS sgemm of the same shapes, 1 thread: ${gflops(median(sgemm))} GFLOP/s`;
      }
      console.log(line);
    }
  } finally {
    torch?.close();
    numpy?.close();
  }
}

/**
 * Steps of several models taken in turn (so that a change of machine load hits all alike): median
 * wall ms and median process CPU ms (user + system; less sensitive to other processes) per step.
 */
async function interleavedMs(
  steppers: Stepper[],
  reps = Math.max(21, 4 * REPS),
  warmup = 10,
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

/** `count` busy-looping processes until the returned function is called. */
function cpuHogs(count: number): () => void {
  const hogs = Array.from({ length: count }, () =>
    spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }),
  );
  return () => hogs.forEach((h) => h.kill());
}

async function moeVersusDense(): Promise<void> {
  const dense = llamaConfigFromSpec(SMALL);
  const { model_type: _t, ...rest } = dense;
  const moe: MixtralConfig = {
    ...rest,
    model_type: 'mixtral',
    num_local_experts: 4,
    num_experts_per_tok: 2,
    router_aux_loss_coef: 0.01,
  };
  const sameActive = llamaConfigFromSpec({ ...SMALL, ffnHidden: 2 * SMALL.ffnHidden });
  for (const hogs of [0, 3]) {
    const stopHogs = cpuHogs(hogs);
    const steppers = [trainStepper(moe, 'dense'), trainStepper(moe, 'sparse'), trainStepper(sameActive)];
    try {
      const [dm, sm, am] = await interleavedMs(steppers);
      const line = (k: 'wall' | 'cpu') =>
        `dense dispatch ${dm![k].toFixed(1)} ms, sparse ${sm![k].toFixed(1)} ms; same active parameters ` +
        `dense model (ffn ${2 * SMALL.ffnHidden}) ${am![k].toFixed(1)} ms: MoE/dense ` +
        `${(sm![k] / am![k]).toFixed(2)}x sparse, ${(dm![k] / am![k]).toFixed(2)}x dense dispatch`;
      const load = hogs === 0 ? 'no hogs' : `${hogs} CPU hogs`;
      console.log(`MoE 4 experts top-2 step (d64), ${load}, wall: ${line('wall')}`);
      console.log(`MoE 4 experts top-2 step (d64), ${load}, CPU:  ${line('cpu')}`);
    } finally {
      for (const st of steppers) st.dispose();
      stopHogs();
    }
  }
}

/** GFLOP/s of tf.matMul on [m, k] (or its transpose) x [k, n], median of `time`'s reps. */
async function matMulGflops(m: number, k: number, n: number, transposeA: boolean): Promise<number> {
  const a = tf.randomNormal(transposeA ? [k, m] : [m, k]) as tf.Tensor2D;
  const b = tf.randomNormal([k, n]) as tf.Tensor2D;
  const ms = await time(async () => {
    const c = tf.matMul(a, b, transposeA, false);
    await c.data();
    c.dispose();
  });
  tf.dispose([a, b]);
  return (2 * m * k * n) / ms / 1e6;
}

/** Our GEMM against the backend's XNNPACK matMul, each shape in turn with both. */
async function gemmVersusBackend(): Promise<void> {
  const gemm = wasmGemm();
  if (!gemm) {
    console.log('gemm: not on the wasm backend, nothing to compare');
    return;
  }
  const arithmetic = gemm.fma ? 'fused multiply-add' : 'multiply then add';
  console.log(`matMul GFLOP/s, our GEMM (${arithmetic}) vs tfjs-backend-wasm's own kernel, one thread each:`);
  for (const [m, k, n, t] of [
    [1024, 1024, 1024, false],
    [2048, 256, 688, false],
    [2048, 688, 256, false],
    [688, 2048, 256, true],
  ] as const) {
    useBackendMatMul(true);
    const theirs = await matMulGflops(m, k, n, t);
    useBackendMatMul(false);
    const ours = await matMulGflops(m, k, n, t);
    const shape = `${t ? `[${k},${m}]^T` : `[${m},${k}]`} x [${k},${n}]`;
    console.log(
      `  ${shape}: ours ${ours.toFixed(1)}, backend ${theirs.toFixed(1)} (${(ours / theirs).toFixed(2)}x)`,
    );
  }
}

export async function bench(): Promise<void> {
  const backend = await initBackend();
  const matmul = await bestMatmulGflops();
  console.log(
    `backend ${backend}; best plain matMul ${matmul.gflops.toFixed(2)} GFLOP/s (${matmul.size}x${matmul.size})`,
  );
  if (PARTS.includes('step')) await trainStepVersusBaselines();
  if (PARTS.includes('moe')) await moeVersusDense();
  if (PARTS.includes('gemm')) await gemmVersusBackend();
}

if (import.meta.url === `file://${process.argv[1]}`) await bench();
