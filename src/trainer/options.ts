// Flags and their BTX_* environment variables for `btx train` and `btx eval`.
// A flag wins over its variable; a stage pod sets only the variables (the stage contract).
import { ENV } from '../api/stageContract.js';

export interface FlagSpec {
  flag: string;
  env: string;
  help: string;
  /** Takes no value (`--freeze-experts`, or `--freeze-experts=false`). */
  boolean?: boolean;
  /** May be given several times; the variable holds a comma-separated list. */
  repeatable?: boolean;
}

/** Variables this trainer adds to the stage contract's (tuning knobs the operator need not set). */
export const TRAINER_ENV = {
  warmupSteps: 'BTX_WARMUP_STEPS',
  minLrRatio: 'BTX_MIN_LR_RATIO',
  weightDecay: 'BTX_WEIGHT_DECAY',
  gradClip: 'BTX_GRAD_CLIP',
  seqLen: 'BTX_SEQ_LEN',
  backend: 'BTX_BACKEND',
  logEvery: 'BTX_LOG_EVERY',
  /** MoE dispatch override, dense | sparse (no flag: read by moe.ts for training, eval and benches). */
  moeDispatch: 'BTX_MOE_DISPATCH',
} as const;

export type ParsedFlags = Map<string, string[]>;

export function parseFlags(argv: string[], specs: FlagSpec[], command: string): ParsedFlags | 'help' {
  const byFlag = new Map(specs.map((s) => [s.flag, s]));
  const out: ParsedFlags = new Map();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') return 'help';
    if (!arg.startsWith('--')) throw new Error(`${command}: unexpected argument '${arg}'`);
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(2, eq) : arg.slice(2);
    const spec = byFlag.get(name);
    if (!spec) throw new Error(`${command}: unknown flag --${name} (see --help)`);
    let value: string;
    if (eq > 0) value = arg.slice(eq + 1);
    else if (spec.boolean) value = 'true';
    else {
      const next = argv[++i];
      if (next === undefined) throw new Error(`${command}: --${name} needs a value`);
      value = next;
    }
    out.set(name, spec.repeatable ? [...(out.get(name) ?? []), value] : [value]);
  }
  // Variables fill in what the flags left out.
  for (const s of specs) {
    if (out.has(s.flag)) continue;
    const v = process.env[s.env];
    if (v !== undefined && v !== '') out.set(s.flag, s.repeatable ? v.split(',').map((x) => x.trim()) : [v]);
  }
  return out;
}

export function helpText(usage: string, specs: FlagSpec[]): string {
  const rows = specs.map((s) => {
    const left = `--${s.flag}${s.boolean ? '' : ' VALUE'}${s.repeatable ? ' (repeatable)' : ''}`;
    return `  ${left.padEnd(34)} ${s.env.padEnd(26)} ${s.help}`;
  });
  return `${usage}\n\nflags (a flag wins over its environment variable):\n${rows.join('\n')}\n`;
}

export class Flags {
  constructor(
    private readonly values: ParsedFlags,
    private readonly command: string,
  ) {}

  has(flag: string): boolean {
    return this.values.has(flag);
  }

  string(flag: string): string | undefined {
    return this.values.get(flag)?.[0];
  }

  list(flag: string): string[] {
    return this.values.get(flag) ?? [];
  }

  required(flag: string, env: string): string {
    const v = this.string(flag);
    if (v === undefined) throw new Error(`${this.command}: --${flag} (or ${env}) is required`);
    return v;
  }

  number(flag: string, fallback: number, opts: { integer?: boolean; min?: number } = {}): number {
    const raw = this.string(flag);
    if (raw === undefined) return fallback;
    const v = Number(raw);
    if (!Number.isFinite(v) || (opts.integer && !Number.isInteger(v)) || v < (opts.min ?? -Infinity)) {
      throw new Error(
        `${this.command}: --${flag} must be ${opts.integer ? 'an integer' : 'a number'}${opts.min !== undefined ? ` >= ${opts.min}` : ''}, got '${raw}'`,
      );
    }
    return v;
  }

  boolean(flag: string, fallback: boolean): boolean {
    const raw = this.string(flag);
    if (raw === undefined) return fallback;
    if (['true', '1', 'yes'].includes(raw.toLowerCase())) return true;
    if (['false', '0', 'no'].includes(raw.toLowerCase())) return false;
    throw new Error(`${this.command}: --${flag} must be true or false, got '${raw}'`);
  }
}

export const TRAIN_FLAGS: FlagSpec[] = [
  { flag: 'data', env: ENV.data, help: 'seed/expert: a file or folder; finetune: DOMAIN=PATH,...' },
  { flag: 'data-weights', env: ENV.dataWeights, help: 'finetune: DOMAIN=WEIGHT,... (default equal)' },
  { flag: 'domain', env: ENV.domain, help: 'expert: the domain name (logs, checkpoint metadata)' },
  { flag: 'input', env: ENV.input, help: 'expert: seed checkpoint; finetune: mixed MoE checkpoint' },
  { flag: 'out', env: ENV.output, help: 'folder for checkpoints step-N (required)' },
  { flag: 'steps', env: ENV.steps, help: 'total optimizer steps (default 200)' },
  { flag: 'batch-size', env: ENV.batchSize, help: 'windows per step (default 8)' },
  {
    flag: 'learning-rate',
    env: ENV.learningRate,
    help: 'peak learning rate (default 3e-3 seed, 1e-3 others)',
  },
  { flag: 'warmup-steps', env: TRAINER_ENV.warmupSteps, help: 'linear warmup steps (default 10% of steps)' },
  {
    flag: 'min-lr-ratio',
    env: TRAINER_ENV.minLrRatio,
    help: 'final LR / peak LR of the cosine (default 0.1)',
  },
  { flag: 'weight-decay', env: TRAINER_ENV.weightDecay, help: 'AdamW decoupled weight decay (default 0.1)' },
  {
    flag: 'grad-clip',
    env: TRAINER_ENV.gradClip,
    help: 'clip the global gradient norm (default 1, 0 = off)',
  },
  {
    flag: 'checkpoint-every',
    env: ENV.checkpointEvery,
    help: 'steps between checkpoints (default 50, 0 = end only)',
  },
  { flag: 'seed', env: ENV.randomSeed, help: 'random seed of initialisation and data order (default 1)' },
  {
    flag: 'model-config',
    env: ENV.modelConfig,
    help: 'seed: architecture JSON {vocabSize,dModel,layers,heads,ffnHidden,seqLen,...}',
  },
  { flag: 'seq-len', env: TRAINER_ENV.seqLen, help: "window length (default the config's, at most 256)" },
  {
    flag: 'router',
    env: ENV.router,
    help: "finetune: topK | switch | soft | sampleTop1 (default the checkpoint's)",
  },
  { flag: 'k', env: ENV.topK, help: "finetune: experts per token for topK (default the checkpoint's)" },
  {
    flag: 'load-balancing-coef',
    env: ENV.loadBalancingCoef,
    help: "finetune: alpha of the load-balancing loss (default the checkpoint's)",
  },
  {
    flag: 'freeze-experts',
    env: ENV.freezeExperts,
    help: 'finetune: train only routers and shared weights',
    boolean: true,
  },
  { flag: 'dtype', env: ENV.dtype, help: 'checkpoint dtype f32 | f16 | bf16 (default f32: exact resume)' },
  {
    flag: 'backend',
    env: TRAINER_ENV.backend,
    help: 'tensorflow-gpu | tensorflow | wasm | cpu | auto (default auto)',
  },
  { flag: 'log-every', env: TRAINER_ENV.logEvery, help: 'steps between loss log lines (default 1)' },
];

export const EVAL_FLAGS: FlagSpec[] = [
  { flag: 'checkpoint', env: ENV.checkpoints, help: 'NAME=DIR of a model to evaluate', repeatable: true },
  { flag: 'data', env: ENV.data, help: 'DOMAIN=PATH of held-out data', repeatable: true },
  { flag: 'out', env: ENV.output, help: 'results file (.json) or folder for results.json' },
  { flag: 'batches', env: ENV.evalBatches, help: 'held-out batches per domain (default 4)' },
  { flag: 'batch-size', env: ENV.batchSize, help: 'windows per batch (default 8)' },
  {
    flag: 'seq-len',
    env: TRAINER_ENV.seqLen,
    help: "window length (default the smallest config's, at most 256)",
  },
  {
    flag: 'backend',
    env: TRAINER_ENV.backend,
    help: 'tensorflow-gpu | tensorflow | wasm | cpu | auto (default auto)',
  },
];
