// The stage contract: what the operator gives every stage pod and what it reads back.
// The one place both sides (src/operator builds pods, src/trainer reads them) take these names from.
// A bring-your-own trainer image needs only this: the environment below, the volume at /btx,
// a JSON termination message, and (optionally) the progress annotation.

/**
 * Every stage of a run, in pipeline order: the one list the operator's stage table, its metrics, the
 * CRD's status schema and `btx local`'s progress view are written from. `expert` is the one stage of
 * pods (one per domain); every other stage runs as Jobs and keeps its status at `status.<stage>`: one
 * Job, except `tokenize`, which runs first, one Job per domain (status.tokenize.domains).
 * `dense`, `sparseUpcyclingMix` and `sparseUpcycling` are the trained baselines (spec.baselines): they
 * start as soon as the seed is there, beside the experts, and eval waits for them.
 */
export const STAGES = [
  'tokenize',
  'seed',
  'expert',
  'mix',
  'finetune',
  'dense',
  'sparseUpcyclingMix',
  'sparseUpcycling',
  'eval',
] as const;
export type Stage = (typeof STAGES)[number];

/** The stages run as Jobs (one Job each, tokenize one per domain). */
export type JobStage = Exclude<Stage, 'expert'>;
export const JOB_STAGES: readonly JobStage[] = STAGES.filter((s): s is JobStage => s !== 'expert');

export function isJobStage(value: unknown): value is JobStage {
  return (JOB_STAGES as readonly unknown[]).includes(value);
}

/** Where the shared volume is mounted in every stage container. */
export const VOLUME_MOUNT_PATH = '/btx';

/** Environment variables of the stage contract. */
export const ENV = {
  stage: 'BTX_STAGE',
  run: 'BTX_RUN',
  namespace: 'BTX_NAMESPACE',
  /** expert: the domain's name. */
  domain: 'BTX_DOMAIN',
  /** seed/expert: one data path. finetune/eval: comma-separated `DOMAIN=PATH`. */
  data: 'BTX_DATA',
  /**
   * Token shards: `<BTX_TOKENS>/<domain>/manifest.json` + shards (docs/stage-contract.md). The tokenize
   * stage writes them; seed/expert/finetune/eval read them (and, without BTX_TOKENIZED, make them
   * first if missing or stale).
   */
  tokens: 'BTX_TOKENS',
  /**
   * seed/expert/finetune/eval: `true` when the tokenize stage made every domain's shards under
   * BTX_TOKENS: the stage reads them and fails (naming the domain) instead of tokenizing on its own.
   */
  tokenized: 'BTX_TOKENIZED',
  /** tokenize: the checkpoint folder whose tokenizer to use (absent: the built-in byte tokenizer). */
  tokenizer: 'BTX_TOKENIZER',
  /** tokenize: `i/n`, this pod's part of the domain (or JOB_COMPLETION_INDEX of an Indexed Job + BTX_PARTS). */
  part: 'BTX_PART',
  /** tokenize: how many parts (the Indexed Job's completions) when the index comes from JOB_COMPLETION_INDEX. */
  parts: 'BTX_PARTS',
  /**
   * tokenize, one pod for the whole domain: when the domain is not current and its sources add up to
   * more than this many bytes, tokenize nothing and answer `split` (the operator then runs an Indexed Job).
   */
  partBytes: 'BTX_PART_BYTES',
  /** tokenize: the most parts a `split` answer asks for. */
  maxParts: 'BTX_MAX_PARTS',
  /** The checkpoint a stage starts from: the seed for an expert, the mixed model for finetune. */
  input: 'BTX_INPUT',
  /** mix: comma-separated expert checkpoint folders, in expert order. */
  experts: 'BTX_EXPERTS',
  /** mix: comma-separated names of the experts, in order (default: their folder names). */
  expertNames: 'BTX_EXPERT_NAMES',
  /** mix: the seed checkpoint to add as a generalist expert (optional). */
  generalist: 'BTX_GENERALIST',
  /** mix: how non-feed-forward weights are combined: average | seed | weighted. */
  combine: 'BTX_MIX_COMBINE',
  /** mix, combine weighted: comma-separated weights, one per expert in order (the generalist last). */
  mixWeights: 'BTX_MIX_WEIGHTS',
  /** mix, combine seed: the seed checkpoint whose non-feed-forward weights are copied. */
  seedCheckpoint: 'BTX_SEED_CHECKPOINT',
  /** eval: comma-separated `NAME=CHECKPOINT_DIR`. */
  checkpoints: 'BTX_CHECKPOINTS',
  /** eval: comma-separated `NAME=CHECKPOINT_DIR`, the experts of the Branch-Train-Merge ensemble (model `btm`). */
  btmExperts: 'BTX_BTM_EXPERTS',
  /** eval: comma-separated prior weights of the BTM experts, in order (default uniform). */
  btmPrior: 'BTX_BTM_PRIOR',
  /** The folder a stage writes to (experts: checkpoints step-N inside it). */
  output: 'BTX_OUTPUT',
  /** 1 for the first pod of a stage, +1 for each replacement. */
  attempt: 'BTX_ATTEMPT',
  steps: 'BTX_STEPS',
  batchSize: 'BTX_BATCH_SIZE',
  learningRate: 'BTX_LEARNING_RATE',
  checkpointEvery: 'BTX_CHECKPOINT_EVERY',
  /** Random seed for initialisation and data order. */
  randomSeed: 'BTX_RANDOM_SEED',
  /** seed: the architecture as JSON ({@link ModelSpec}). */
  modelConfig: 'BTX_MODEL_CONFIG',
  /** mix/finetune: topK | switch | soft | sampleTop1. */
  router: 'BTX_ROUTER',
  topK: 'BTX_TOP_K',
  /** mix: how new routers start: zeros | normal. */
  routerInit: 'BTX_ROUTER_INIT',
  loadBalancingCoef: 'BTX_LOAD_BALANCING_COEF',
  freezeExperts: 'BTX_FREEZE_EXPERTS',
  /** finetune: comma-separated `DOMAIN=WEIGHT`. */
  dataWeights: 'BTX_DATA_WEIGHTS',
  /** mix: output dtype f32 | f16 | bf16. */
  dtype: 'BTX_DTYPE',
  /** eval: batches per domain. */
  evalBatches: 'BTX_EVAL_BATCHES',
  /** The pod's own name and namespace (downward API), for the progress annotation. */
  podName: 'BTX_POD_NAME',
  podNamespace: 'BTX_POD_NAMESPACE',
  /**
   * Set only by the embedded kubelet: JSON object mapping container paths (mount paths,
   * the termination message path) to host folders. See src/util/containerPaths.ts.
   */
  localPaths: 'BTX_LOCAL_PATHS',
} as const;

/** Annotation a trainer patches on its own pod: JSON {@link Progress}. */
export const PROGRESS_ANNOTATION = 'btx.ai/progress';

export interface Progress {
  step: number;
  totalSteps: number;
  loss: number | null;
  tokensPerSecond: number | null;
  /** Newest complete checkpoint written by this pod, if any. */
  checkpoint?: string;
  /** RFC 3339 time of this report. */
  time: string;
}

/**
 * The longest window the training stages train on unless told otherwise (BTX_SEQ_LEN): the model's
 * seqLen, at most this. The operator's compute accounting counts tokens with the same rule.
 */
export const MAX_TRAIN_SEQ_LEN = 256;

/**
 * Exit codes a stage uses when trying again cannot help: 2, the command line is wrong; 3, its input is
 * refused (data missing or unreadable, a tokenizer that does not fit). Stage Jobs fail at once on them
 * (podFailurePolicy FailJob) instead of spending their pod retries.
 */
export const EXIT_USAGE = 2;
export const EXIT_INPUT_REFUSED = 3;

/** Default terminationMessagePath; a stage writes {@link TerminationMessage} JSON there. */
export const TERMINATION_MESSAGE_PATH = '/dev/termination-log';
/** Kubernetes truncates termination messages at 4096 bytes; stages keep theirs below this. */
export const TERMINATION_MESSAGE_MAX_BYTES = 4096;

export interface EvalResult {
  model: string;
  domain: string;
  loss: number;
  perplexity: number;
  /** loss / ln 2 x held-out tokens / held-out UTF-8 bytes: comparable across tokenizers. */
  bitsPerByte?: number;
}

/** One model's results averaged over the domains, each domain weighted equally (meanResults.ts). */
export interface MeanResult {
  model: string;
  loss: number;
  /** exp(mean loss). */
  perplexity: number;
  bitsPerByte?: number;
  /** How many domains the mean is over. */
  domains: number;
}

/** Share of a domain's tokens routed to an expert, averaged over the MoE layers. */
export interface RoutingShare {
  domain: string;
  expert: string;
  share: number;
}

/** What a tokenize pod did for one domain (its part of it, for an Indexed Job). */
export interface TokenizeSummary {
  domain: string;
  /** `i/n` for one pod of an Indexed Job. */
  part?: string;
  documents: number;
  tokens: number;
  bytes: number;
  heldOutTokens: number;
  /** Shards were current: nothing was tokenized. */
  reused: boolean;
}

/** A tokenize pod's answer for a domain too big for one pod: run it as `parts` parts instead. */
export interface TokenizeSplit {
  domain: string;
  /** Bytes of the domain's source files. */
  bytes: number;
  parts: number;
}

/**
 * The name the seed's own training data (spec.seed.train.data) is tokenized under:
 * `<BTX_TOKENS>/_seed/`. Not a DNS label, so no domain can share its folder.
 */
export const SEED_DATA_NAME = '_seed';

export interface TerminationMessage {
  checkpoint?: string;
  step?: number;
  loss?: number | null;
  /** eval only. */
  results?: EvalResult[];
  /** eval only (MoE models). */
  routing?: RoutingShare[];
  /** tokenize only. */
  tokenized?: TokenizeSummary[];
  /** tokenize only: domains too big for one pod (BTX_PART_BYTES), not tokenized. */
  split?: TokenizeSplit[];
}

/** The architecture of a model trained from scratch (the seed), in BTXRun's terms. */
export interface ModelSpec {
  vocabSize: number;
  dModel: number;
  layers: number;
  heads: number;
  /** Key/value heads (grouped-query attention); defaults to heads. */
  kvHeads?: number;
  ffnHidden: number;
  seqLen: number;
  ropeTheta?: number;
  rmsNormEps?: number;
  tieEmbeddings?: boolean;
}

/**
 * Folder layout of one run on the shared volume. The seed and the experts are shared by every
 * round; a round after the first (domains appended or removed after the run Succeeded) mixes,
 * finetunes and evaluates into `rounds/<n>/`, so it never resumes from (or overwrites) the
 * checkpoints of an earlier round.
 */
export function runLayout(namespace: string, run: string, root: string = VOLUME_MOUNT_PATH, round = 1) {
  const base = `${root}/runs/${namespace}/${run}`;
  const roundBase = round > 1 ? `${base}/rounds/${round}` : base;
  return {
    base,
    seed: `${base}/seed`,
    expert: (domain: string) => `${base}/experts/${domain}`,
    mixed: `${roundBase}/mixed`,
    finetuned: `${roundBase}/finetuned`,
    eval: `${roundBase}/eval`,
    /** Baselines (spec.baselines), per round: the dense continuation, the MoE of seed copies and its training. */
    dense: `${roundBase}/baselines/dense`,
    upcycled: `${roundBase}/baselines/upcycled`,
    sparseUpcycling: `${roundBase}/baselines/sparse-upcycling`,
  };
}
