// `btx mix`: dense expert checkpoints -> one Mixtral checkpoint (src/trainer/mix). Flags, or the
// stage contract's BTX_* environment when the operator runs it as the mix stage; flags win.
import { writeFile } from 'node:fs/promises';
import { ENV, TERMINATION_MESSAGE_PATH, type TerminationMessage } from '../api/stageContract.js';
import {
  COMBINE_RULES,
  mixExperts,
  type CombineRule,
  type MixOptions,
  type MixSummary,
} from '../trainer/mix/mixExperts.js';
import type { RouterInit } from '../trainer/mix/routerInit.js';
import { ROUTER_TYPES } from '../trainer/hfConfig.js';
import { containerPath, hostPath } from '../util/containerPaths.js';
import { type CommandSpec, type Flags, parseFlags, UsageError } from './flags.js';
import { DTYPES, sharedFlag } from './sharedFlags.js';

/** transformers' default max_shard_size ("5GB"). */
const DEFAULT_SHARD_SIZE = 5_000_000_000;

const ROUTER_INITS: readonly RouterInit[] = ['normal', 'zeros'];

export const command: CommandSpec = {
  name: 'btx mix',
  usage: 'btx mix --expert DIR [--expert DIR]... [--generalist DIR] --out DIR [flags]',
  about: `Mix dense Llama-architecture checkpoints into one Mixtral (MoE) checkpoint, streaming one tensor at a time:
each layer's feed-forward weights become that layer's experts (w1<-gate_proj, w3<-up_proj, w2<-down_proj),
every other tensor is combined by --combine (default: the float32 mean over all experts), and each layer
gets a new router.`,
  flags: [
    {
      name: 'expert',
      value: 'DIR',
      env: ENV.experts,
      repeatable: true,
      help: 'an expert checkpoint folder, or a training output folder (its newest complete step-N);\nrepeat, in expert order',
    },
    {
      name: 'generalist',
      value: 'DIR',
      env: ENV.generalist,
      help: "the seed, added as the LAST expert (the paper's generalist)",
    },
    {
      name: 'combine',
      value: 'RULE',
      env: ENV.combine,
      help: "how non-feed-forward tensors (attention, norms, embeddings) are combined: average\n(default, the paper: float32 mean over all experts) | seed (copy the seed's, as\nmergekit-moe does) | weighted (sum of w_i x_i, --weights normalised)",
    },
    {
      name: 'weights',
      value: 'W,W,...',
      env: ENV.mixWeights,
      help: "combine weighted: one weight >= 0 per expert, in order, the generalist last\n(e.g. each domain's training tokens)",
    },
    {
      name: 'seed-checkpoint',
      value: 'DIR',
      env: ENV.seedCheckpoint,
      help: 'combine seed: the seed checkpoint (default: --generalist)',
    },
    {
      name: 'out',
      value: 'DIR',
      env: ENV.output,
      help: 'the output checkpoint folder (written to a temp folder, then renamed)',
    },
    sharedFlag('router', 'topK | switch | soft | sampleTop1 (default topK)'),
    sharedFlag('k', 'experts per token for topK (default 2)'),
    sharedFlag('dtype', "f32 | f16 | bf16 (default: the inputs' dtype)"),
    {
      name: 'shard-size',
      value: 'BYTES',
      help: 'largest output shard, e.g. 5GB, 500MB, 1048576 (default 5GB)',
    },
    {
      name: 'router-init',
      value: 'INIT',
      env: ENV.routerInit,
      help: 'normal (default: std 0.02, seeded) | zeros (uniform)',
    },
    {
      name: 'aux-loss-coef',
      value: 'X',
      env: ENV.loadBalancingCoef,
      help: 'router_aux_loss_coef, the load-balancing loss weight (default 0.01)',
    },
    sharedFlag('seed', 'random seed for the router init (default 0)'),
    {
      name: 'expert-name',
      value: 'NAME',
      env: ENV.expertNames,
      repeatable: true,
      help: "names for the experts in order (a last extra one names the generalist);\ndefault: the folder name (the parent's for a step-N folder)",
    },
    { name: 'no-verify', help: "skip checking input checkpoints' sha256s from trainer_state.json" },
  ],
  footer: `As a stage pod (${ENV.stage}=mix, or sparseUpcyclingMix for the baseline) it writes {checkpoint, step: 0, loss: null} to ${TERMINATION_MESSAGE_PATH}.`,
};

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  B: 1,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  KIB: 1024,
  MIB: 1024 ** 2,
  GIB: 1024 ** 3,
};

export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(text.trim());
  const unit = m ? SIZE_UNITS[m[2]!.toUpperCase()] : undefined;
  if (!m || unit === undefined)
    throw new UsageError(`--shard-size must be a size (e.g. 5GB, 1048576), got '${text}'`);
  const bytes = Math.floor(Number(m[1]) * unit);
  if (bytes <= 0) throw new UsageError(`--shard-size must be positive`);
  return bytes;
}

/** Flags + environment as given, for tests. */
export function parseMixArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): MixOptions | 'help' {
  const f = parseFlags(command, argv, env);
  return f === 'help' ? 'help' : mixOptions(f);
}

/** Flags + environment -> mix options (paths as given: container paths). */
function mixOptions(f: Flags): MixOptions {
  const expertDirs = f.requiredList('expert');
  const out = f.required('out');
  const generalistDir = f.string('generalist');
  const names = f.list('expert-name');
  const maxNames = expertDirs.length + (generalistDir ? 1 : 0);
  if (names.length > maxNames) {
    throw new UsageError(`${names.length} --expert-name for ${maxNames} experts`);
  }
  const shardSize = f.string('shard-size');
  const opts: MixOptions = {
    experts: expertDirs.map((dir, i) => (names[i] ? { dir, name: names[i] } : { dir })),
    out,
    shardSize: shardSize ? parseSize(shardSize) : DEFAULT_SHARD_SIZE,
    verifyInputs: !f.boolean('no-verify', false),
  };
  if (generalistDir) {
    const name = names[expertDirs.length];
    opts.generalist = name ? { dir: generalistDir, name } : { dir: generalistDir };
  }
  const router = f.oneOf('router', ROUTER_TYPES);
  if (router) opts.router = router;
  const topK = f.optionalNumber('k', { integer: true, min: 1 });
  if (topK !== undefined) opts.topK = topK;
  const dtype = f.oneOf('dtype', Object.keys(DTYPES));
  if (dtype) opts.dtype = DTYPES[dtype];
  const routerInit = f.oneOf('router-init', ROUTER_INITS);
  if (routerInit) opts.routerInit = routerInit;
  const auxLossCoef = f.optionalNumber('aux-loss-coef', { min: 0 });
  if (auxLossCoef !== undefined) opts.auxLossCoef = auxLossCoef;
  const randomSeed = f.optionalNumber('seed', { integer: true });
  if (randomSeed !== undefined) opts.randomSeed = randomSeed;
  const combine = f.oneOf('combine', COMBINE_RULES);
  if (combine) opts.combine = combine;
  const weights = f.string('weights');
  if (weights !== undefined) {
    opts.weights = weights.split(',').map((w) => {
      const n = Number(w.trim());
      if (w.trim() === '' || !Number.isFinite(n) || n < 0)
        throw new UsageError(`--weights must be numbers >= 0 separated by commas, got '${weights}'`);
      return n;
    });
  }
  const seedCheckpoint = f.string('seed-checkpoint');
  if (seedCheckpoint) opts.seedCheckpoint = { dir: seedCheckpoint };
  if (opts.combine === 'weighted' && !opts.weights)
    throw new UsageError(`--combine weighted needs --weights (or ${ENV.mixWeights})`);
  if (opts.combine === 'seed' && !opts.seedCheckpoint && !opts.generalist) {
    throw new UsageError(
      `--combine seed needs --seed-checkpoint DIR (or ${ENV.seedCheckpoint}) or --generalist`,
    );
  }
  return opts;
}

const COMBINED: Record<CombineRule, string> = {
  average: 'averaged',
  seed: 'copied from the seed',
  weighted: 'weighted',
};

function formatSummary(s: MixSummary): string {
  const mb = (b: number) => (b / 1e6).toFixed(1);
  return [
    `mixed ${s.experts.length} experts into ${containerPath(s.out)}`,
    ...s.experts.map((e, i) => `  expert ${i}: ${e.name}  ${containerPath(e.dir)}`),
    `  router ${s.router} (${s.numExpertsPerToken} per token), dtype ${s.dtype}, ${s.shards} shard(s)`,
    `  tensors: ${s.tensorsStacked} stacked, ${s.tensorsAveraged} ${COMBINED[s.combine]}, ${s.routersCreated} routers`,
    ...(s.weights ? [`  weights: ${s.weights.map((w) => w.toFixed(4)).join(', ')}`] : []),
    `  read ${mb(s.bytesRead)} MB, wrote ${mb(s.bytesWritten)} MB in ${s.seconds.toFixed(2)} s (${s.megabytesPerSecond.toFixed(0)} MB/s), peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB, CPU ${s.cpuSeconds.toFixed(2)} s`,
    '',
  ].join('\n');
}

export async function run(f: Flags): Promise<number> {
  const parsed = mixOptions(f);
  // Library code takes host paths; messages for other pods keep container paths.
  const opts: MixOptions = {
    ...parsed,
    out: hostPath(parsed.out),
    experts: parsed.experts.map((e) => ({ ...e, dir: hostPath(e.dir) })),
  };
  if (parsed.generalist) opts.generalist = { ...parsed.generalist, dir: hostPath(parsed.generalist.dir) };
  if (parsed.seedCheckpoint)
    opts.seedCheckpoint = { ...parsed.seedCheckpoint, dir: hostPath(parsed.seedCheckpoint.dir) };
  const summary = await mixExperts(opts);
  process.stdout.write(formatSummary(summary));
  // The mix stage, or the sparseUpcycling baseline's mix of seed copies: the operator reads the message.
  if (process.env[ENV.stage]) {
    const message: TerminationMessage = { checkpoint: containerPath(summary.out), step: 0, loss: null };
    await writeFile(hostPath(TERMINATION_MESSAGE_PATH), JSON.stringify(message));
  }
  return 0;
}
