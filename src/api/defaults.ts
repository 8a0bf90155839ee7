// The defaults of a BTXRun spec: one table (DEFAULTS) that both applyDefaults() and the CRD schema
// (src/api/schema.ts puts them in `default:`) read, so the API server and the operator agree.
// applyDefaults() is pure: it never mutates its input and fills only what is missing, except that
// finetune.computeShare, when set, decides finetune.steps (the CRD's default fills steps regardless).
import type { ModelSpec } from './stageContract.js';
import type {
  Baseline,
  BTXRunSpec,
  DomainSpec,
  EvalSpec,
  ExpertSpec,
  FailurePolicy,
  FinetuneSpec,
  MixSpec,
  SeedSpec,
  StorageSpec,
  TokenizeSpec,
} from './types.js';
import { TRAINER_IMAGE } from './images.js';
import { finetuneStepsForShare } from './compute.js';

/** Byte-level tokenizer: 256 byte symbols + BOS, EOS, PAD (the trainer's vocabulary). */
export const DEFAULT_VOCAB_SIZE = 259;

/** Every default a BTXRun spec gets, by field. Fields absent here have no default. */
export const DEFAULTS = {
  image: TRAINER_IMAGE,
  imagePullPolicy: 'IfNotPresent',
  randomSeed: 0,
  suspend: false,
  seedTrain: { batchSize: 8, learningRate: 6e-4 },
  model: {
    vocabSize: DEFAULT_VOCAB_SIZE,
    ropeTheta: 10000,
    rmsNormEps: 1e-5,
    tieEmbeddings: false,
  },
  tokenize: { partBytes: 1024 ** 3, maxParts: 16 },
  expert: {
    steps: 1000,
    batchSize: 8,
    learningRate: 3e-4,
    checkpointEvery: 100,
    maxRestarts: 3,
    backoffSeconds: 10,
  },
  mix: {
    includeSeedAsExpert: true,
    router: { type: 'topK', k: 2 },
    routerInit: 'normal',
    combine: 'average',
    dtype: 'f32',
  },
  finetune: {
    steps: 200,
    batchSize: 8,
    // The experts' rate: on the sample corpora a finetune at half the experts' rate ended worse (mean
    // held-out loss 1.534 vs 1.529), and equal rates keep the dense (expert rate) and sparse-upcycling
    // (finetune rate) baselines comparable (docs/trainer.md, "What BTX buys at small scale").
    learningRate: 3e-4,
    loadBalancingCoef: 0.01,
    freezeExperts: false,
    checkpointEvery: 100,
  },
  eval: { enabled: true, batches: 8, compareBaselines: true },
  /** No compute-matched baselines unless asked for: they cost as much compute as BTX each. */
  baselines: [],
} as const satisfies {
  image: string;
  imagePullPolicy: BTXRunSpec['imagePullPolicy'];
  randomSeed: number;
  suspend: boolean;
  seedTrain: { batchSize: number; learningRate: number };
  model: Omit<ModelSpec, 'dModel' | 'layers' | 'heads' | 'ffnHidden' | 'seqLen' | 'kvHeads'>;
  tokenize: Pick<TokenizeSpec, 'partBytes' | 'maxParts'>;
  expert: Pick<
    ExpertSpec,
    'steps' | 'batchSize' | 'learningRate' | 'checkpointEvery' | 'maxRestarts' | 'backoffSeconds'
  >;
  mix: Pick<MixSpec, 'includeSeedAsExpert' | 'router' | 'routerInit' | 'combine' | 'dtype'>;
  finetune: Pick<
    FinetuneSpec,
    'steps' | 'batchSize' | 'learningRate' | 'loadBalancingCoef' | 'freezeExperts' | 'checkpointEvery'
  >;
  eval: Pick<EvalSpec, 'enabled' | 'batches' | 'compareBaselines'>;
  baselines: readonly Baseline[];
};

/** What a user may write: the spec with every defaulted field optional. */
export interface BTXRunSpecInput {
  image?: string;
  imagePullPolicy?: BTXRunSpec['imagePullPolicy'];
  serviceAccountName?: string;
  podLabels?: Record<string, string>;
  storage: StorageSpec;
  model?: Partial<ModelSpec>;
  seed: SeedSpec;
  domains: DomainSpec[];
  tokenize?: Partial<TokenizeSpec>;
  expert?: Partial<ExpertSpec>;
  failurePolicy?: FailurePolicy;
  mix?: Partial<Omit<MixSpec, 'router'>> & { router?: Partial<MixSpec['router']> };
  finetune?: Partial<FinetuneSpec>;
  eval?: Partial<EvalSpec>;
  baselines?: Baseline[];
  randomSeed?: number;
  suspend?: boolean;
  ttlSecondsAfterFinished?: number;
}

/** Copy `value` without the keys whose value is undefined (so `{...defaults, ...value}` keeps defaults). */
function defined<T extends object>(value: T | undefined): Partial<T> {
  if (!value) return {};
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function clone<T>(value: T): T {
  return value === undefined ? value : (structuredClone(value) as T);
}

/**
 * The spec with every default filled in. Pure: the input is not changed and the result shares no
 * objects with it. Defaults that depend on other fields:
 * - `failurePolicy.minExperts`: the number of domains (every expert must succeed);
 * - `failurePolicy.rules`: `[]` (unmatched failures restart while budget remains);
 * - `model.kvHeads`: `model.heads` (plain multi-head attention);
 * - `model` is only defaulted when it is given (it is required with `seed.train`).
 */
export function applyDefaults(input: BTXRunSpecInput | BTXRunSpec): BTXRunSpec {
  const spec = clone(input) as BTXRunSpecInput;
  const domains = spec.domains ?? [];
  const out: BTXRunSpec = {
    image: spec.image || DEFAULTS.image,
    imagePullPolicy: spec.imagePullPolicy ?? DEFAULTS.imagePullPolicy,
    storage: spec.storage,
    seed: spec.seed?.train
      ? {
          ...spec.seed,
          train: {
            ...spec.seed.train,
            batchSize: spec.seed.train.batchSize ?? DEFAULTS.seedTrain.batchSize,
            learningRate: spec.seed.train.learningRate ?? DEFAULTS.seedTrain.learningRate,
          },
        }
      : (spec.seed ?? {}),
    domains,
    tokenize: { ...DEFAULTS.tokenize, ...defined(spec.tokenize) },
    expert: { ...DEFAULTS.expert, ...defined(spec.expert) },
    failurePolicy: {
      rules: spec.failurePolicy?.rules ?? [],
      minExperts: spec.failurePolicy?.minExperts ?? domains.length,
    },
    mix: {
      ...DEFAULTS.mix,
      ...defined(spec.mix),
      router: { ...DEFAULTS.mix.router, ...defined(spec.mix?.router) },
    },
    finetune: { ...DEFAULTS.finetune, ...defined(spec.finetune) },
    eval: { ...DEFAULTS.eval, ...defined(spec.eval) },
    baselines: [...(spec.baselines ?? DEFAULTS.baselines)],
    randomSeed: spec.randomSeed ?? DEFAULTS.randomSeed,
    suspend: spec.suspend ?? DEFAULTS.suspend,
  };
  if (spec.model) {
    const model = { ...DEFAULTS.model, ...defined(spec.model) } as ModelSpec;
    out.model = { ...model, kvHeads: model.kvHeads ?? model.heads };
  }
  // The finetune's compute share decides its steps (validation requires model with it).
  const share = out.finetune.computeShare;
  if (typeof share === 'number' && out.model && share > 0 && share < 1)
    out.finetune.steps = finetuneStepsForShare(out, out.model, share);
  if (spec.serviceAccountName !== undefined) out.serviceAccountName = spec.serviceAccountName;
  if (spec.podLabels !== undefined) out.podLabels = spec.podLabels;
  if (spec.ttlSecondsAfterFinished !== undefined) {
    out.ttlSecondsAfterFinished = spec.ttlSecondsAfterFinished;
  }
  return out;
}
