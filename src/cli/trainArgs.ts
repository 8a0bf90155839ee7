// The flags of `btx train seed|expert|finetune` and `btx eval`, each with its BTX_* variable (the stage
// contract's, plus trainer knobs the operator need not set), and their reading into the trainer's
// plain TrainStageSettings. Apart from the commands so they can be tested without training.
import { dirname } from 'node:path';
import { ENV } from '../api/stageContract.js';
import type { ModelSpec } from '../api/stageContract.js';
import { parseNamedList } from '../trainer/data.js';
import { ROUTER_TYPES, type RouterType } from '../trainer/hfConfig.js';
import type { TrainStage, TrainStageSettings } from '../trainer/trainStage.js';
import { type CommandSpec, type Flags, UsageError } from './flags.js';
import { BACKEND_FLAG, DTYPES, sharedFlag } from './sharedFlags.js';

export const TRAIN_STAGES: readonly TrainStage[] = ['seed', 'expert', 'finetune'];

export const TRAIN_COMMAND: CommandSpec = {
  name: 'btx train',
  usage: 'btx train seed|expert|finetune [flags]',
  about: `  seed      pretrain a dense Llama-style model from random init on general data
  expert    branch from the seed checkpoint (--input) and train on one domain
  finetune  train the mixed MoE checkpoint (--input) on all domains`,
  positionals: true,
  flags: [
    {
      name: 'data',
      value: 'DATA',
      env: ENV.data,
      help: 'DOMAIN=PATH,... (seed/expert also take one file or folder, named by --domain)',
    },
    {
      name: 'data-weights',
      value: 'LIST',
      env: ENV.dataWeights,
      help: 'DOMAIN=WEIGHT,... sampling weights of a DOMAIN=PATH list (default equal)',
    },
    {
      name: 'domain',
      value: 'NAME',
      env: ENV.domain,
      help: 'seed/expert with one path: the domain name (logs, checkpoint metadata)',
    },
    {
      name: 'input',
      value: 'DIR',
      env: ENV.input,
      help: 'expert: seed checkpoint; finetune: mixed MoE checkpoint',
    },
    { name: 'out', value: 'DIR', env: ENV.output, help: 'folder for checkpoints step-N (required)' },
    sharedFlag('tokens', 'token shards DIR/<domain>/ (made if missing or stale; default OUT/tokens)'),
    {
      name: 'tokenized',
      env: ENV.tokenized,
      help: 'the shards in --tokens are made already (the tokenize stage): read them, never tokenize',
    },
    { name: 'steps', value: 'N', env: ENV.steps, help: 'total optimizer steps (default 200)' },
    sharedFlag('batch-size', 'windows per step (default 8)'),
    {
      name: 'learning-rate',
      value: 'X',
      env: ENV.learningRate,
      help: 'peak learning rate (default 3e-3 seed, 1e-3 others)',
    },
    {
      name: 'warmup-steps',
      value: 'N',
      env: 'BTX_WARMUP_STEPS',
      help: 'linear warmup steps (default 10% of steps)',
    },
    {
      name: 'min-lr-ratio',
      value: 'X',
      env: 'BTX_MIN_LR_RATIO',
      help: 'final LR / peak LR of the cosine (default 0.1)',
    },
    {
      name: 'weight-decay',
      value: 'X',
      env: 'BTX_WEIGHT_DECAY',
      help: 'AdamW decoupled weight decay (default 0.1)',
    },
    {
      name: 'grad-clip',
      value: 'X',
      env: 'BTX_GRAD_CLIP',
      help: 'clip the global gradient norm (default 1, 0 = off)',
    },
    {
      name: 'checkpoint-every',
      value: 'N',
      env: ENV.checkpointEvery,
      help: 'steps between checkpoints (default 50, 0 = end only)',
    },
    sharedFlag('seed', 'random seed of initialisation and data order (default 1)'),
    {
      name: 'model-config',
      value: 'JSON',
      env: ENV.modelConfig,
      help: 'seed: architecture JSON {vocabSize,dModel,layers,heads,ffnHidden,seqLen,...}',
    },
    sharedFlag('seq-len', "window length (default the config's, at most 256)"),
    sharedFlag('router', "finetune: topK | switch | soft | sampleTop1 (default the checkpoint's)"),
    sharedFlag('k', "finetune: experts per token for topK (default the checkpoint's)"),
    {
      name: 'load-balancing-coef',
      value: 'X',
      env: ENV.loadBalancingCoef,
      help: "finetune: alpha of the load-balancing loss (default the checkpoint's)",
    },
    {
      name: 'freeze-experts',
      env: ENV.freezeExperts,
      help: 'finetune: train only routers and shared weights (the variable: true | false)',
    },
    sharedFlag('dtype', 'checkpoint dtype f32 | f16 | bf16 (default f32: exact resume)'),
    BACKEND_FLAG,
    { name: 'log-every', value: 'N', env: 'BTX_LOG_EVERY', help: 'steps between loss log lines (default 1)' },
  ],
};

export const EVAL_COMMAND: CommandSpec = {
  name: 'btx eval',
  usage: 'btx eval --checkpoint NAME=DIR [...] --data DOMAIN=PATH [...] --out results.json [--batches N]',
  about: `Held-out loss, perplexity and bits per byte of each checkpoint on each domain (the same windows
for every model sharing a tokenizer), and for MoE checkpoints the share of each domain's tokens
routed to each expert. Bits per byte = loss / ln 2 x held-out tokens / held-out UTF-8 bytes.`,
  flags: [
    {
      name: 'checkpoint',
      value: 'NAME=DIR',
      env: ENV.checkpoints,
      repeatable: true,
      help: 'a model to evaluate',
    },
    {
      name: 'data',
      value: 'DOMAIN=PATH',
      env: ENV.data,
      repeatable: true,
      help: 'held-out data of a domain',
    },
    { name: 'out', value: 'PATH', env: ENV.output, help: 'results file (.json) or folder for results.json' },
    sharedFlag(
      'tokens',
      'token shards DIR/<domain>/ (made if missing or stale; default tokens/ beside the results)',
    ),
    {
      name: 'btm-expert',
      value: 'NAME=DIR',
      env: ENV.btmExperts,
      repeatable: true,
      help: 'an expert of the Branch-Train-Merge ensemble, scored as model btm (give two or more)',
    },
    {
      name: 'btm-prior',
      value: 'W,W,...',
      env: ENV.btmPrior,
      help: "BTM's prior over the experts, in order, e.g. their training tokens (default uniform)",
    },
    {
      name: 'tokenized',
      env: ENV.tokenized,
      help: "the shards in --tokens are made already (the tokenize stage): read them, never tokenize (the first model's tokenizer)",
    },
    { name: 'batches', value: 'N', env: ENV.evalBatches, help: 'held-out batches per domain (default 4)' },
    sharedFlag('batch-size', 'windows per batch (default 8)'),
    sharedFlag('seq-len', "window length (default the smallest config's, at most 256)"),
    BACKEND_FLAG,
  ],
};

function parseSpec(raw: string): ModelSpec {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (err) {
    throw new UsageError(`--model-config is not JSON: ${(err as Error).message}`, { cause: err });
  }
  const spec = parsed as Partial<ModelSpec> | null;
  for (const key of ['dModel', 'layers', 'heads', 'ffnHidden', 'seqLen'] as const) {
    const v = spec?.[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
      throw new UsageError(`--model-config: ${key} must be a positive integer`);
    }
  }
  return { vocabSize: 0, ...spec } as ModelSpec;
}

/** `NAME=...` at the start of a list item: a DOMAIN=PATH entry, not a path (paths start with / or .). */
const NAMED_ITEM = /^[A-Za-z0-9][-A-Za-z0-9_.]*=/;

/**
 * What a training stage trains on: finetune always takes DOMAIN=PATH,...; seed and expert take the same
 * list (the dense baseline trains an expert on every domain, weighted by --data-weights) or one file or
 * folder, named by --domain.
 */
function trainData(stage: TrainStage, f: Flags): { name: string; path: string }[] {
  const raw = f.required('data');
  const items = raw
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '');
  if (stage === 'finetune' || (items.length > 0 && items.every((x) => NAMED_ITEM.test(x)))) {
    const data = parseNamedList(raw).map((d) => ({ name: d.name, path: d.value }));
    const seen = new Set<string>();
    for (const d of data) {
      if (seen.has(d.name)) throw new UsageError(`--data: domain ${d.name} is listed twice`);
      seen.add(d.name);
    }
    return data;
  }
  return [{ name: f.string('domain') ?? (stage === 'seed' ? 'general' : 'domain'), path: raw }];
}

export function trainSettingsFromFlags(stage: TrainStage, f: Flags): TrainStageSettings {
  const steps = f.number('steps', 200, { integer: true, min: 1 });
  const data = trainData(stage, f);
  let weights: number[] | undefined;
  const weightsRaw = f.string('data-weights');
  if (weightsRaw) {
    const byName = new Map(parseNamedList(weightsRaw).map((w) => [w.name, Number(w.value)]));
    for (const name of byName.keys()) {
      if (!data.some((d) => d.name === name))
        throw new UsageError(
          `--data-weights: ${name} is not a domain of --data (${data.map((d) => d.name).join(', ')})`,
        );
    }
    weights = data.map((d) => {
      const w = byName.get(d.name) ?? 1;
      if (!Number.isFinite(w) || w < 0) throw new UsageError(`--data-weights: bad weight for ${d.name}`);
      return w;
    });
  }
  const router = f.oneOf<RouterType>('router', ROUTER_TYPES);
  const dtype = DTYPES[f.oneOf('dtype', Object.keys(DTYPES)) ?? 'f32']!;
  const specRaw = f.string('model-config');
  const input = f.string('input');
  const tokens = f.string('tokens');
  const seqLen = f.optionalNumber('seq-len', { integer: true, min: 1 });
  const k = f.optionalNumber('k', { integer: true, min: 1 });
  const loadBalancingCoef = f.optionalNumber('load-balancing-coef', { min: 0 });
  return {
    stage,
    data,
    ...(weights ? { weights } : {}),
    ...(input ? { input } : {}),
    ...(tokens ? { tokens } : {}),
    tokenized: f.boolean('tokenized', false),
    out: f.required('out'),
    steps,
    batchSize: f.number('batch-size', 8, { integer: true, min: 1 }),
    learningRate: f.number('learning-rate', stage === 'seed' ? 3e-3 : 1e-3, { min: 0 }),
    warmupSteps: f.number('warmup-steps', Math.max(1, Math.round(steps / 10)), { integer: true, min: 0 }),
    minLrRatio: f.number('min-lr-ratio', 0.1, { min: 0 }),
    weightDecay: f.number('weight-decay', 0.1, { min: 0 }),
    gradClip: f.number('grad-clip', 1, { min: 0 }),
    checkpointEvery: f.number('checkpoint-every', 50, { integer: true, min: 0 }),
    seed: f.number('seed', 1, { integer: true }),
    ...(specRaw ? { spec: parseSpec(specRaw) } : {}),
    ...(seqLen !== undefined ? { seqLen } : {}),
    ...(router ? { router } : {}),
    ...(k !== undefined ? { k } : {}),
    ...(loadBalancingCoef !== undefined ? { loadBalancingCoef } : {}),
    freezeExperts: f.boolean('freeze-experts', false),
    dtype,
    logEvery: f.number('log-every', 1, { integer: true, min: 1 }),
  };
}

/** `btx eval`'s settings (runEval's input). */
export function evalSettingsFromFlags(f: Flags) {
  const seqLen = f.optionalNumber('seq-len', { integer: true, min: 1 });
  const out = f.required('out');
  const btmExperts =
    f.list('btm-expert').length > 0 ? f.named('btm-expert').map((c) => ({ name: c.name, dir: c.value })) : [];
  const priorRaw = f.string('btm-prior');
  const prior = priorRaw?.split(',').map((w) => {
    const n = Number(w.trim());
    if (w.trim() === '' || !Number.isFinite(n) || n < 0)
      throw new UsageError(`--btm-prior must be numbers >= 0 separated by commas, got '${priorRaw}'`);
    return n;
  });
  if (prior && prior.length !== btmExperts.length)
    throw new UsageError(`--btm-prior has ${prior.length} weights for ${btmExperts.length} --btm-expert`);
  return {
    ...(btmExperts.length > 0 ? { btm: { experts: btmExperts, ...(prior ? { prior } : {}) } } : {}),
    tokens: f.string('tokens') ?? `${out.endsWith('.json') ? dirname(out) : out}/tokens`,
    tokenized: f.boolean('tokenized', false),
    checkpoints: f.named('checkpoint').map((c) => ({ name: c.name, dir: c.value })),
    data: f.named('data').map((d) => ({ name: d.name, path: d.value })),
    out,
    batches: f.number('batches', 4, { integer: true, min: 1 }),
    batchSize: f.number('batch-size', 8, { integer: true, min: 1 }),
    ...(seqLen !== undefined ? { seqLen } : {}),
  };
}
