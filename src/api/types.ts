// The BTXRun custom resource (btx.ai/v1alpha1): the one TypeScript source of its shape.
// src/api/schema.ts builds the CRD's openAPIV3Schema from the same field list, and a test
// checks that crds/ and the chart's CRD are what it generates.
import type {
  V1ObjectMeta,
  V1ResourceRequirements,
  V1Toleration,
  V1PodTemplateSpec,
} from '@kubernetes/client-node';
import type { ComputeBudget } from './compute.js';
import type { EvalResult, JobStage, MeanResult, ModelSpec, RoutingShare } from './stageContract.js';

export const GROUP = 'btx.ai';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = 'BTXRun';
export const PLURAL = 'btxruns';
export const SINGULAR = 'btxrun';
export const SHORT_NAMES = ['btx'];

export type RouterType = 'topK' | 'switch' | 'soft' | 'sampleTop1';
export type RouterInit = 'zeros' | 'normal';
export type MixCombine = 'average' | 'seed' | 'weighted';

/**
 * The compute-matched baselines a run can train and evaluate beside the BTX model (the paper's
 * comparison): dense (the seed trained further on all domains), sparseUpcycling (an MoE of seed copies,
 * finetuned like the BTX model), btm (Branch-Train-Merge: the experts as a posterior-weighted ensemble).
 */
export const BASELINES = ['dense', 'sparseUpcycling', 'btm'] as const;
export type Baseline = (typeof BASELINES)[number];

export interface StorageSpec {
  /** The PVC mounted at /btx in every stage pod. */
  persistentVolumeClaim: { claimName: string };
}

export interface SeedSpec {
  /** An existing dense safetensors checkpoint (e.g. a Llama model) under /btx. */
  checkpoint?: string;
  /** Or pretrain a small seed first. */
  train?: { data: string; steps: number; batchSize?: number; learningRate?: number };
}

export interface DomainSpec {
  /** DNS label; names the expert, its pod and its checkpoint folder. */
  name: string;
  /** Path under /btx of the domain's .txt/.md/.jsonl data. */
  data: string;
  /** Overrides spec.expert.steps for this domain. */
  steps?: number;
  /** Overrides spec.expert.resources for this domain. */
  resources?: V1ResourceRequirements;
}

/**
 * The tokenize stage: one Job per domain (and one for the seed's training data) turns the text into
 * token shards before any stage trains. The operator cannot see the volume, so a domain's size is
 * learned from its first pod: over `partBytes` of sources, it answers with a split and the domain is
 * tokenized by an Indexed Job of ceil(bytes / partBytes) pods (at most `maxParts`).
 */
export interface TokenizeSpec {
  /** Bytes of source text one pod tokenizes at most (at ~2 MB/s per pod, 1 GiB is ~9 minutes). */
  partBytes: number;
  /** The most pods one domain is split across. */
  maxParts: number;
  activeDeadlineSeconds?: number;
  resources?: V1ResourceRequirements;
}

/** Defaults for every expert pod. */
export interface ExpertSpec {
  steps: number;
  batchSize: number;
  learningRate: number;
  checkpointEvery: number;
  /** Restarts per expert that spend budget (eviction, preemption and node loss do not). */
  maxRestarts: number;
  /** First restart delay; doubles per restart, capped at 10 minutes. */
  backoffSeconds: number;
  activeDeadlineSeconds?: number;
  resources?: V1ResourceRequirements;
  nodeSelector?: Record<string, string>;
  tolerations?: V1Toleration[];
  priorityClassName?: string;
  schedulerName?: string;
  /** Merged under the generated pod (labels, annotations, extra volumes, env, ...). */
  template?: V1PodTemplateSpec;
}

export type FailureAction = 'Restart' | 'FailExpert' | 'Ignore';

export interface FailureRule {
  action: FailureAction;
  /** Matches when the trainer container exited with one of these codes. */
  onExitCodes?: number[];
  /** Matches when the pod has this condition True (e.g. DisruptionTarget). */
  onPodCondition?: string;
}

export interface FailurePolicy {
  /** Evaluated in order; the first match decides. Unmatched failures restart while budget remains. */
  rules?: FailureRule[];
  /** Mix once this many experts have succeeded and the rest failed for good. Default: all domains. */
  minExperts?: number;
}

export interface MixSpec {
  /** Add the seed as one more (generalist) expert, as in the BTX paper. */
  includeSeedAsExpert: boolean;
  router: { type: RouterType; k: number };
  routerInit: RouterInit;
  /**
   * How the non-feed-forward weights (attention, norms, embeddings) are combined: average (the
   * paper), seed (the seed's, as mergekit-moe does), weighted (by the tokens each expert trained on).
   */
  combine: MixCombine;
  dtype?: 'f32' | 'f16' | 'bf16';
  activeDeadlineSeconds?: number;
  resources?: V1ResourceRequirements;
}

export interface FinetuneSpec {
  /** Ignored when computeShare is set (applyDefaults computes the steps from it). */
  steps: number;
  /**
   * The finetune's share of BTX's training FLOPs (experts + finetune), 0 < share < 1; sets the steps
   * from the experts' compute (compute.ts: finetuneStepsForShare). Needs model.
   */
  computeShare?: number;
  batchSize: number;
  learningRate: number;
  loadBalancingCoef: number;
  freezeExperts: boolean;
  checkpointEvery: number;
  /** Sampling weight per domain name; default equal. */
  dataWeights?: Record<string, number>;
  activeDeadlineSeconds?: number;
  resources?: V1ResourceRequirements;
}

export interface EvalSpec {
  enabled: boolean;
  batches: number;
  /** Compare the seed and each expert with the BTX model (not only the BTX model). */
  compareBaselines: boolean;
  activeDeadlineSeconds?: number;
  resources?: V1ResourceRequirements;
}

export interface BTXRunSpec {
  image: string;
  imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
  serviceAccountName?: string;
  /** Extra labels for every stage pod (e.g. kueue.x-k8s.io/queue-name). */
  podLabels?: Record<string, string>;
  storage: StorageSpec;
  model?: ModelSpec;
  seed: SeedSpec;
  domains: DomainSpec[];
  tokenize: TokenizeSpec;
  expert: ExpertSpec;
  failurePolicy?: FailurePolicy;
  mix: MixSpec;
  finetune: FinetuneSpec;
  eval: EvalSpec;
  /** Compute-matched baselines trained (dense, sparseUpcycling) or built (btm) beside the BTX model. */
  baselines?: Baseline[];
  randomSeed: number;
  suspend: boolean;
  ttlSecondsAfterFinished?: number;
}

export const PHASES = [
  'Pending',
  'Tokenizing',
  'Seeding',
  'TrainingExperts',
  'Mixing',
  'Finetuning',
  /** The BTX model is finetuned; compute-matched baselines (spec.baselines) are still training. */
  'TrainingBaselines',
  'Evaluating',
  'Succeeded',
  'Failed',
  'Suspended',
] as const;
export type RunPhase = (typeof PHASES)[number];

export const CONDITION_TYPES = [
  'Tokenized',
  'ExpertsReady',
  'Mixed',
  'Finetuned',
  'Evaluated',
  'Suspended',
  'Restarting',
  'Succeeded',
  'Failed',
  /** False (reason ImmutableFieldChanged) while the spec asks for a change the run cannot make. */
  'SpecApplied',
  /**
   * True while the API server refuses a child the run needs (reason CreateRefused, message the API
   * server's) or the operator cannot plan the run (PlanFailed); a refused object fails the run after
   * a bounded number of attempts.
   */
  'ChildFailure',
] as const;
export type ConditionType = (typeof CONDITION_TYPES)[number];

export interface Condition {
  type: ConditionType;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

/** Stopped: the run ended (failed) before this expert finished; its checkpoints are kept. */
export type ExpertPhase = 'Pending' | 'Running' | 'Restarting' | 'Succeeded' | 'Failed' | 'Stopped';

export interface ExpertFailure {
  attempt: number;
  reason: string;
  message: string;
  exitCode?: number;
  /** Whether this failure spent restart budget (eviction, preemption, node loss do not). */
  countsAgainstBudget: boolean;
  time: string;
}

export interface ExpertStatus {
  name: string;
  phase: ExpertPhase;
  /** 1-based; each replacement pod is attempt + 1. */
  attempt: number;
  /** Restarts that spent budget. */
  restarts: number;
  /** All restarts, budget or not. */
  totalRestarts?: number;
  pod?: string;
  step?: number;
  totalSteps?: number;
  loss?: number | null;
  checkpoint?: string;
  startTime?: string;
  completionTime?: string;
  /** When the next attempt may start (backoff). */
  nextAttemptTime?: string;
  lastFailure?: ExpertFailure;
}

export type StagePhase = 'Pending' | 'Running' | 'Succeeded' | 'Failed';

export interface StageStatus {
  job?: string;
  /** 1 for the first Job of the stage; +1 when a suspend stopped it and resuming starts it again. */
  attempt?: number;
  phase: StagePhase;
  checkpoint?: string;
  startTime?: string;
  completionTime?: string;
  message?: string;
}

/** One domain of the tokenize stage (or the seed's training data, named `_seed`). */
export interface TokenizeDomainStatus {
  /** The domain's name, or `_seed` (SEED_DATA_NAME) for spec.seed.train.data. */
  name: string;
  phase: StagePhase;
  /** The current (or last) Job. */
  job?: string;
  /** More than 1: the domain is tokenized by an Indexed Job of this many pods. */
  parts?: number;
  /** Bytes of the source files, when a pod measured them (a split). */
  sourceBytes?: number;
  documents?: number;
  tokens?: number;
  /** UTF-8 bytes of the documents' text. */
  bytes?: number;
  heldOutTokens?: number;
  /** The shards were current: nothing was tokenized. */
  reused?: boolean;
  message?: string;
}

/** `status.tokenize`: the stage, its shards folder and each domain. */
export interface TokenizeStatus extends StageStatus {
  /** The folder of the run's shards (BTX_TOKENS): `<tokens>/<domain>/manifest.json`. */
  tokens?: string;
  domains?: TokenizeDomainStatus[];
}

/** `status.seed`, `status.mix`, ...: one entry per Job stage (STAGES in stageContract.ts). */
export type JobStageStatuses = Partial<Record<JobStage, StageStatus>>;

export interface BTXRunStatus extends JobStageStatuses {
  tokenize?: TokenizeStatus;
  phase?: RunPhase;
  conditions?: Condition[];
  observedGeneration?: number;
  startTime?: string;
  completionTime?: string;
  /** "ready/total", for the printer column. */
  expertsReady?: string;
  /** Sum of expert restarts, for the printer column. */
  restarts?: number;
  experts?: ExpertStatus[];
  results?: EvalResult[];
  /** Each model's results averaged over the domains (the paper's "average" column). */
  meanResults?: MeanResult[];
  routing?: RoutingShare[];
  /** Training compute of the BTX model and of each trained baseline (spec.baselines), matched to it. */
  compute?: ComputeBudget[];
  /**
   * The immutable fields as the current round started with them. A later change to them is
   * reported (reason ImmutableFieldChanged) and not applied; kept here so it derives from the API
   * server. A new round (domains appended or removed after Succeeded) records its domains here.
   */
  startedWith?: StartedWith;
  /** The current round: 1, +1 each time domains are appended or removed after the run Succeeded. */
  round?: number;
  /** The earlier rounds, oldest first (at most {@link MAX_ROUNDS_KEPT}: the oldest go first). */
  rounds?: RoundStatus[];
}

/** How many earlier rounds status.rounds keeps. */
export const MAX_ROUNDS_KEPT = 16;

/** What one finished round produced, kept when the next round starts. */
export interface RoundStatus {
  round: number;
  /** The domains of the round, in expert order (experts dropped by minExperts included). */
  domains: string[];
  /** The round's BTX model: the finetuned checkpoint, or the mixed one when finetune was skipped. */
  checkpoint?: string;
  /** When the round Succeeded. */
  completionTime?: string;
  results?: EvalResult[];
  routing?: RoutingShare[];
}

export interface StartedWith {
  domains: DomainSpec[];
  model?: ModelSpec;
  storage: StorageSpec;
  /** Absent only in runs started by an operator that did not record it yet. */
  seed?: SeedSpec;
}

export interface BTXRun {
  apiVersion: typeof API_VERSION;
  kind: typeof KIND;
  metadata: V1ObjectMeta;
  spec: BTXRunSpec;
  status?: BTXRunStatus;
}
