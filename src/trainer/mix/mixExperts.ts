// BTX's MiX step (Sukhbaatar et al. 2024, section 2.2): N dense experts -> one Mixtral checkpoint.
// Each layer's feed-forward weights become that layer's experts (w1 <- gate_proj, w3 <- up_proj,
// w2 <- down_proj, expert e from input e); every other tensor is combined by the combine rule (the
// paper's elementwise float32 mean over all inputs by default); each layer gets a new router. It
// streams: a bounded number of tensor slices (the pipeline depth) go through memory at once, so
// checkpoints of any size mix in bounded memory. The arithmetic and the output sha256s run on this
// thread by default, or on worker threads (kernelPool.ts); reads and writes run on libuv's thread
// pool, each slice's reads and combine overlapping the writes of the ones before (slicePipeline.ts).
import { copyFile, mkdir, rm, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { log } from '../../util/log.js';
import { commitTempDir, makeTempDir, sha256File, torchDtypeName, writeTrainerState } from '../checkpoint.js';
import type { RouterType } from '../hfConfig.js';
import {
  DTYPE_BYTES,
  numElements,
  type FloatDType,
  type TensorSpec,
  type WrittenFile,
} from '../safetensors.js';
import { ShardedWriter, syncFile, writeFileSynced } from '../shardedCheckpoint.js';
import {
  FFN_TO_EXPERT,
  MixError,
  openExperts,
  parseFfnName,
  type ExpertSource,
  type OpenExpert,
} from './expertSet.js';
import type { Combination } from './combineKernel.js';
import { KernelPool } from './kernelPool.js';
import { mixtralConfigFromLlama } from './mixtralConfig.js';
import { routerWeights, type RouterInit } from './routerInit.js';
import { simdArena } from './simdKernel.js';
import { runPipeline } from './slicePipeline.js';

/**
 * How non-feed-forward tensors (attention, norms, embeddings, head) are combined:
 * `average`: the float32 mean over all inputs (the paper); `seed`: the seed checkpoint's, copied
 * (as mergekit-moe does); `weighted`: sum of w_i * x_i with the given weights normalised to sum 1
 * (e.g. each domain's training tokens).
 */
export type CombineRule = 'average' | 'seed' | 'weighted';
export const COMBINE_RULES: readonly CombineRule[] = ['average', 'seed', 'weighted'];

export interface MixOptions {
  experts: ExpertSource[];
  /** The seed as one more, generalist expert; it is the LAST expert, so expert e is experts[e]. */
  generalist?: ExpertSource;
  /** The output checkpoint folder (written to a temp sibling, then renamed). */
  out: string;
  router?: RouterType;
  /** k for topK routing (default 2). */
  topK?: number;
  /** Output dtype; default the dtype most of the first expert's tensors have. */
  dtype?: FloatDType;
  shardSize?: number;
  routerInit?: RouterInit;
  randomSeed?: number;
  auxLossCoef?: number;
  /** Check our checkpoints' sha256s before mixing (default true; HF folders have none). */
  verifyInputs?: boolean;
  /**
   * Elements per streamed slice (memory ~ pipelineDepth x slice x (inputs x input bytes + output
   * bytes), plus the writer's two 1 MB staging buffers).
   */
  sliceElements?: number;
  /** Slices in flight at once: read or combined while earlier ones are written (default 3). */
  pipelineDepth?: number;
  /** Default `average`. */
  combine?: CombineRule;
  /** `weighted`: one positive weight per expert, in expert order (the generalist's last). */
  weights?: number[];
  /**
   * `seed`: the checkpoint whose non-feed-forward tensors are copied; default the generalist.
   * It must have the experts' architecture and tensors.
   */
  seedCheckpoint?: ExpertSource;
  /** Worker threads for the arithmetic and hashing; 0 (default): on this thread (kernelPool.ts says why). */
  threads?: number;
}

export interface MixSummary {
  out: string;
  experts: { name: string; dir: string }[];
  dtype: FloatDType;
  router: RouterType;
  numExpertsPerToken: number;
  combine: CombineRule;
  /** `weighted`: the normalised weights, in expert order. */
  weights?: number[];
  tensorsStacked: number;
  /** Non-feed-forward tensors combined (average/weighted) or copied from the seed (seed). */
  tensorsAveraged: number;
  routersCreated: number;
  shards: number;
  bytesRead: number;
  bytesWritten: number;
  seconds: number;
  /** CPU seconds of the whole process (every thread, user + system) during the mix. */
  cpuSeconds: number;
  /** (bytes read + bytes written) / seconds, in MB (10^6 bytes) per second. */
  megabytesPerSecond: number;
}

/** Tokenizer and generation files copied from the first expert when it has them. */
export const COPIED_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'tokenizer.model',
  'generation_config.json',
] as const;

/**
 * 1 MB of BF16 per input slice. `btx mix` of 4 BF16 experts on the 2-core machine, rotated runs:
 * 0.37 CPU s and 172 MB peak RSS at 512 Ki elements, 0.39 s / 187 MB at 1 Mi, 0.42 s / 218 MB at 2 Mi
 * (what the slices' reads, combines and hashes leave in the caches).
 */
const DEFAULT_SLICE_ELEMENTS = 512 * 1024;
const DEFAULT_PIPELINE_DEPTH = 3;

/** How one output tensor is made; `copy` takes input `from` (an expert, or the seed checkpoint). */
type Source =
  | { kind: 'copy'; from: number; input: string }
  | { kind: 'combine'; input: string }
  | { kind: 'router'; layer: number };

interface PlannedTensor extends TensorSpec {
  source: Source;
}

const naturalOrder = new Intl.Collator('en', { numeric: true }).compare;

/** `seedIndex`: copy non-feed-forward tensors from that input; undefined: combine them. */
function planTensors(
  experts: readonly OpenExpert[],
  dtype: FloatDType,
  seedIndex: number | undefined,
): PlannedTensor[] {
  const first = experts[0]!;
  const hidden = first.config.hidden_size;
  const planned: PlannedTensor[] = [];
  for (const t of first.reader.tensors) {
    const ffn = parseFfnName(t.name);
    if (!ffn) {
      const source: Source =
        seedIndex === undefined
          ? { kind: 'combine', input: t.name }
          : { kind: 'copy', from: seedIndex, input: t.name };
      planned.push({ name: t.name, dtype, shape: t.shape, source });
      continue;
    }
    const w = FFN_TO_EXPERT[ffn.proj];
    experts.forEach((_, e) => {
      planned.push({
        name: `model.layers.${ffn.layer}.block_sparse_moe.experts.${e}.${w}.weight`,
        dtype,
        shape: t.shape,
        source: { kind: 'copy', from: e, input: t.name },
      });
    });
  }
  for (let layer = 0; layer < first.config.num_hidden_layers; layer++) {
    planned.push({
      name: `model.layers.${layer}.block_sparse_moe.gate.weight`,
      dtype,
      shape: [experts.length, hidden],
      source: { kind: 'router', layer },
    });
  }
  // Layer by layer, in numeric order, so shards cut between layers like transformers' do.
  return planned.sort((a, b) => naturalOrder(a.name, b.name));
}

interface SliceJob {
  name: string;
  source: Source;
  start: number;
  count: number;
}

function planSlices(plan: readonly PlannedTensor[], slice: number): SliceJob[] {
  const jobs: SliceJob[] = [];
  for (const t of plan) {
    const total = numElements(t.shape);
    if (t.source.kind === 'router') {
      jobs.push({ name: t.name, source: t.source, start: 0, count: total });
      continue;
    }
    for (let start = 0; start < total; start += slice) {
      jobs.push({ name: t.name, source: t.source, start, count: Math.min(slice, total - start) });
    }
  }
  return jobs;
}

function majorityDtype(expert: OpenExpert): FloatDType {
  const counts = new Map<string, number>();
  for (const t of expert.reader.tensors) counts.set(t.dtype, (counts.get(t.dtype) ?? 0) + 1);
  const [best] = [...counts.entries()].sort((a, b) => b[1] - a[1]);
  return (best?.[0] ?? 'F32') as FloatDType;
}

/** The combine rule's arithmetic; throws MixError for weights that cannot be used. */
function combination(rule: CombineRule, weights: number[] | undefined, inputs: number): Combination {
  if (rule !== 'weighted') {
    if (weights !== undefined) throw new MixError(`--weights are only used with --combine weighted`);
    return { kind: 'mean' };
  }
  if (!weights) throw new MixError(`--combine weighted needs --weights (one per expert)`);
  if (weights.length !== inputs) {
    throw new MixError(
      `--weights has ${weights.length} values for ${inputs} experts (the generalist, if any, is last)`,
    );
  }
  const bad = weights.findIndex((w) => !Number.isFinite(w) || w < 0);
  if (bad >= 0) throw new MixError(`--weights value ${weights[bad]} (expert ${bad}) must be a number >= 0`);
  const total = weights.reduce((a, b) => a + b, 0);
  if (!(total > 0)) throw new MixError('--weights must not all be 0');
  return { kind: 'weighted', weights: weights.map((w) => w / total) };
}

interface SlotBuffers {
  /** One per input, for a slice of any of its tensors. */
  reads: Uint8Array[];
  out: Uint8Array;
}

/**
 * The pipeline slots' buffers, all allocated up front (pages are touched only as slices fill them):
 * in one WebAssembly SIMD arena, so the mean reads and writes them in place (simdKernel.ts), or else
 * in plain shared memory. Shared either way: worker threads, when asked for, read and write them too.
 */
function slotBuffers(
  inputs: readonly OpenExpert[],
  slice: number,
  dtype: FloatDType,
  depth: number,
): SlotBuffers[] {
  const perSlot = [
    ...inputs.map(
      (e) => slice * Math.max(0, ...e.reader.tensors.map((t) => DTYPE_BYTES[t.dtype as FloatDType])),
    ),
    slice * DTYPE_BYTES[dtype],
  ];
  const sizes = Array.from({ length: depth }, () => perSlot).flat();
  const buffers = simdArena(sizes) ?? sizes.map((n) => new Uint8Array(new SharedArrayBuffer(n)));
  return Array.from({ length: depth }, (_, s) => {
    const mine = buffers.slice(s * perSlot.length, (s + 1) * perSlot.length);
    return { reads: mine.slice(0, inputs.length), out: mine[inputs.length]! };
  });
}

/** config.json, then the first expert's tokenizer and generation files it has, each fsynced. */
async function writeSideFiles(tmp: string, from: string, config: object): Promise<WrittenFile[]> {
  const written = [await writeFileSynced(join(tmp, 'config.json'), `${JSON.stringify(config, null, 2)}\n`)];
  for (const file of COPIED_FILES) {
    const path = join(tmp, file);
    try {
      await copyFile(join(from, file), path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    await syncFile(path);
    written.push({ path, bytes: (await stat(path)).size, sha256: await sha256File(path) });
  }
  return written;
}

export async function mixExperts(opts: MixOptions): Promise<MixSummary> {
  const started = performance.now();
  const startedCpu = process.cpuUsage();
  const router = opts.router ?? 'topK';
  const topK = opts.topK ?? 2;
  const routerInit = opts.routerInit ?? 'normal';
  const randomSeed = opts.randomSeed ?? 0;
  const auxLossCoef = opts.auxLossCoef ?? 0.01;
  const slice = opts.sliceElements ?? DEFAULT_SLICE_ELEMENTS;
  const depth = opts.pipelineDepth ?? DEFAULT_PIPELINE_DEPTH;
  if (!Number.isInteger(depth) || depth < 1)
    throw new MixError(`pipeline depth ${depth} must be an integer >= 1`);
  if (!Number.isInteger(slice) || slice < 1)
    throw new MixError(`slice elements ${slice} must be an integer >= 1`);
  const rule = opts.combine ?? 'average';
  if (!COMBINE_RULES.includes(rule))
    throw new MixError(`--combine ${rule} must be one of ${COMBINE_RULES.join(', ')}`);
  const sources = opts.generalist
    ? [...opts.experts, { dir: opts.generalist.dir, name: opts.generalist.name ?? 'generalist' }]
    : opts.experts;
  if (sources.length === 0) throw new MixError('btx mix needs at least one --expert');
  if (router === 'topK' && (!Number.isInteger(topK) || topK < 1 || topK > sources.length)) {
    throw new MixError(
      `--k ${topK} must be an integer between 1 and the number of experts (${sources.length})`,
    );
  }
  const how = combination(rule, opts.weights, sources.length);
  if (rule !== 'seed' && opts.seedCheckpoint)
    throw new MixError('--seed-checkpoint is only used with --combine seed');
  if (rule === 'seed' && !opts.seedCheckpoint && !opts.generalist) {
    throw new MixError('--combine seed needs the seed: --seed-checkpoint DIR (or --generalist DIR)');
  }
  // The seed rule reads one more checkpoint, checked against the experts like any of them.
  const extra =
    rule === 'seed' && opts.seedCheckpoint ? [{ ...opts.seedCheckpoint, name: '(seed checkpoint)' }] : [];

  // Worker threads, if asked for, boot (measured 0.2-1 s on the busy 2-core machine) while the
  // experts are opened (and, by default, their sha256s checked).
  const kernels = KernelPool.start(opts.threads);
  let inputs: OpenExpert[];
  try {
    inputs = await openExperts([...sources, ...extra], opts.verifyInputs ?? true);
  } catch (err) {
    await kernels.close();
    throw err;
  }
  const experts = inputs.slice(0, sources.length);
  const seedIndex = rule === 'seed' ? (extra.length > 0 ? sources.length : sources.length - 1) : undefined;
  const clash = inputs.find(
    (e) => resolve(e.dir) === resolve(opts.out) || resolve(e.dir).startsWith(`${resolve(opts.out)}/`),
  );
  if (clash) {
    await kernels.close();
    await Promise.all(inputs.map((e) => e.reader.close()));
    throw new MixError(
      `--out ${opts.out} would replace the input ${clash.dir}; write the mix somewhere else`,
    );
  }
  let tmp: string | undefined;
  let writer: ShardedWriter | undefined;
  let sideFiles: Promise<WrittenFile[]> | undefined;
  try {
    const dtype = opts.dtype ?? majorityDtype(experts[0]!);
    const plan = planTensors(experts, dtype, seedIndex);
    await mkdir(dirname(opts.out), { recursive: true });
    tmp = await makeTempDir(opts.out);
    const first = experts[0]!;
    const config = mixtralConfigFromLlama(first.config, {
      numExperts: experts.length,
      router,
      topK,
      auxLossCoef,
      expertNames: experts.map((e) => e.name),
      routerInit,
      torchDtype: torchDtypeName(dtype),
    });
    // config.json and the tokenizer files are written (and fsynced) while the tensors stream, not
    // after: each fsync at the end is time the mix waits.
    sideFiles = writeSideFiles(tmp, first.dir, config);
    sideFiles.catch(() => undefined); // awaited below, or settled in finally
    writer = await ShardedWriter.create(tmp, plan, {
      ...(opts.shardSize === undefined ? {} : { shardSize: opts.shardSize }),
      hasher: () => kernels.hasher(),
    });
    log.info('mix started', {
      experts: experts.map((e) => e.name),
      out: opts.out,
      tensors: plan.length,
      dtype,
      router,
      combine: rule,
    });

    let bytesRead = 0;
    const counts = { copy: 0, combine: 0, router: 0 };
    for (const t of plan) counts[t.source.kind]++;
    // One job per slice of each output tensor, through a bounded pipeline (slicePipeline.ts): the
    // reads and combines of the next jobs run while this one is written. Each pipeline slot has its
    // own buffers (one per input, one output slice), reused job after job, so memory stays flat and
    // fresh pages are not faulted in.
    const jobs = planSlices(plan, slice);
    const slots = slotBuffers(inputs, slice, dtype, depth);
    const dtypeOf = (e: number, input: string) => inputs[e]!.reader.info(input).dtype as FloatDType;
    const ioWriter = writer;
    await runPipeline(jobs.length, depth, {
      prepare: async (j, s) => {
        const job = jobs[j]!;
        const src = job.source;
        if (src.kind === 'router') return undefined;
        const slot = slots[s]!;
        const from = src.kind === 'copy' ? [src.from] : experts.map((_, e) => e);
        const slices = await Promise.all(
          from.map((e) => inputs[e]!.reader.readBytes(src.input, job.start, job.count, slot.reads[e])),
        );
        for (const b of slices) bytesRead += b.byteLength;
        // Same dtype, one input: copy the bytes as they are (bit-exact, no decode).
        if (from.length === 1 && dtypeOf(from[0]!, src.input) === dtype) return slices[0]!;
        const combined = slot.out.subarray(0, job.count * DTYPE_BYTES[dtype]);
        await kernels.combine(
          slices.map((b, i) => ({ bytes: b, dtype: dtypeOf(from[i]!, src.input) })),
          from.length === 1 ? { kind: 'mean' } : how,
          combined,
          dtype,
          job.count,
        );
        return combined;
      },
      commit: async (j, _slot, bytes) => {
        const job = jobs[j]!;
        if (bytes) return ioWriter.writeBytes(job.name, bytes);
        if (job.source.kind !== 'router') throw new Error(`mix: job ${j} (${job.name}) has no bytes`);
        const hidden = experts[0]!.config.hidden_size;
        await ioWriter.writeFloat32(
          job.name,
          routerWeights(routerInit, experts.length, hidden, randomSeed, job.source.layer),
        );
      },
    });
    const written: WrittenFile[] = [...(await writer.close()).files];
    writer = undefined;

    written.push(...(await sideFiles));
    const weights = how.kind === 'weighted' ? [...how.weights] : undefined;
    await writeTrainerState(
      tmp,
      {
        stage: 'mix',
        step: 0,
        totalSteps: 0,
        loss: null,
        dataPosition: 0,
        randomSeed,
        time: new Date().toISOString(),
        mix: {
          experts: experts.map((e) => ({ name: e.name, dir: e.dir })),
          router,
          numExpertsPerToken: config.num_experts_per_tok,
          routerInit,
          dtype,
          combine: rule,
          ...(weights ? { weights } : {}),
          ...(seedIndex !== undefined ? { seed: inputs[seedIndex]!.dir } : {}),
        },
      },
      written,
    );
    await commitTempDir(tmp, opts.out);
    tmp = undefined;

    const seconds = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage(startedCpu);
    const bytesWritten = written.reduce((s, f) => s + f.bytes, 0);
    const summary: MixSummary = {
      out: opts.out,
      experts: experts.map((e) => ({ name: e.name, dir: e.dir })),
      dtype,
      router,
      numExpertsPerToken: config.num_experts_per_tok,
      combine: rule,
      ...(weights ? { weights } : {}),
      tensorsStacked: plan.filter((t) => t.source.kind === 'copy' && t.source.from !== seedIndex).length,
      tensorsAveraged:
        counts.combine + plan.filter((t) => t.source.kind === 'copy' && t.source.from === seedIndex).length,
      routersCreated: counts.router,
      shards: written.filter((f) => f.path.endsWith('.safetensors')).length,
      bytesRead,
      bytesWritten,
      seconds,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      megabytesPerSecond: (bytesRead + bytesWritten) / 1e6 / Math.max(seconds, 1e-9),
    };
    log.info('mix finished', { ...summary, experts: summary.experts.map((e) => e.name) });
    return summary;
  } finally {
    await writer?.abort();
    await sideFiles?.catch(() => undefined);
    await kernels.close();
    if (tmp) await rm(tmp, { recursive: true, force: true });
    await Promise.all(inputs.map((e) => e.reader.close()));
  }
}
