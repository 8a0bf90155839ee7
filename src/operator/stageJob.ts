// The single-pod stages (seed, mix, finetune, eval, and the trained baselines) run as Jobs: the Job
// controller retries a crashed pod a few times (the trainer resumes from its checkpoints), each stage
// has its own deadline. The baselines reuse the recipes they are compared with: dense trains like an
// expert (on every domain, weighted as finetune weights them), sparseUpcycling mixes copies of the seed
// like the mix stage and trains the result like the finetune stage, each for the steps that match
// BTX's compute (src/api/compute.ts). Every stage that reads data reads the shards the tokenize stage
// made (BTX_TOKENIZED: never tokenizing on its own).
import type { V1Job, V1PodFailurePolicy } from '@kubernetes/client-node';
import { baselineSteps } from '../api/compute.js';
import type { BTXRun, BTXRunSpec } from '../api/types.js';
import {
  ENV,
  EXIT_INPUT_REFUSED,
  EXIT_USAGE,
  runLayout,
  SEED_DATA_NAME,
  type JobStage,
} from '../api/stageContract.js';
import { stageJobName } from './names.js';
import { runTokensFolder } from './tokensFolder.js';
import { childMeta, envFrom, ownerReference, stagePodTemplate } from './podTemplate.js';

/** Pod retries inside one stage Job; small, because the trainer resumes from checkpoints. */
export const STAGE_BACKOFF_LIMIT = 2;

/** A stage that exits with a usage or refused-input code fails its Job at once: a retry cannot help. */
export const STAGE_POD_FAILURE_POLICY: V1PodFailurePolicy = {
  rules: [{ action: 'FailJob', onExitCodes: { operator: 'In', values: [EXIT_USAGE, EXIT_INPUT_REFUSED] } }],
};

/** The stages of one Job each (tokenize has one per domain: tokenizeJob.ts). */
export type SingleJobStage = Exclude<JobStage, 'tokenize'>;

/** What the later stages read: the checkpoints of the earlier ones. */
export interface StageInputs {
  seedCheckpoint: string;
  /** The experts that go into the mix, in domain order. */
  experts: { name: string; checkpoint: string }[];
  mixCheckpoint: string;
  /** The model eval measures as "btx": the finetuned one, or the mixed one when finetune is skipped. */
  btxCheckpoint: string;
  /** Baselines (spec.baselines), once their stages are done. */
  denseCheckpoint?: string;
  upcycledCheckpoint?: string;
  sparseUpcyclingCheckpoint?: string;
}

/** A stage Job's pod resources and deadline: the fields of the same name in its section of the spec. */
function podLimits(section: Pick<BTXRunSpec['eval'], 'resources' | 'activeDeadlineSeconds'>) {
  return { resources: section.resources, deadline: section.activeDeadlineSeconds };
}

function dataWeightsList(spec: BTXRunSpec): string | undefined {
  const weights = spec.finetune.dataWeights;
  return weights
    ? Object.entries(weights)
        .map(([d, w]) => `${d}=${w}`)
        .join(',')
    : undefined;
}

/** The mix stage's environment for these expert folders (BTX's experts, or copies of the seed). */
function mixEnv(
  spec: BTXRunSpec,
  inputs: StageInputs,
  experts: { name: string; checkpoint: string }[],
  out: string,
  names?: string[],
) {
  return {
    env: envFrom({
      [ENV.experts]: experts.map((e) => e.checkpoint).join(','),
      // Only when a folder name would not tell the experts apart (copies of the seed).
      [ENV.expertNames]: names ? names.join(',') : undefined,
      [ENV.generalist]: spec.mix.includeSeedAsExpert ? inputs.seedCheckpoint : undefined,
      [ENV.router]: spec.mix.router.type,
      [ENV.topK]: spec.mix.router.k,
      [ENV.routerInit]: spec.mix.routerInit,
      [ENV.combine]: spec.mix.combine,
      [ENV.mixWeights]:
        spec.mix.combine === 'weighted'
          ? mixWeights(
              spec,
              experts.map((e) => e.name),
            ).join(',')
          : undefined,
      [ENV.seedCheckpoint]: spec.mix.combine === 'seed' ? inputs.seedCheckpoint : undefined,
      [ENV.dtype]: spec.mix.dtype,
      [ENV.output]: out,
    }),
    ...podLimits(spec.mix),
  };
}

/** The finetune stage's environment: this MoE checkpoint on every domain for `steps` steps. */
function finetuneEnv(run: BTXRun, spec: BTXRunSpec, input: string, steps: number, out: string) {
  return {
    env: envFrom({
      [ENV.input]: input,
      [ENV.data]: domainList(spec),
      [ENV.tokens]: runTokensFolder(run, spec),
      [ENV.tokenized]: true,
      [ENV.dataWeights]: dataWeightsList(spec),
      [ENV.steps]: steps,
      [ENV.batchSize]: spec.finetune.batchSize,
      [ENV.learningRate]: spec.finetune.learningRate,
      [ENV.loadBalancingCoef]: spec.finetune.loadBalancingCoef,
      [ENV.freezeExperts]: spec.finetune.freezeExperts,
      [ENV.checkpointEvery]: spec.finetune.checkpointEvery,
      [ENV.router]: spec.mix.router.type,
      [ENV.topK]: spec.mix.router.k,
      [ENV.output]: out,
    }),
    ...podLimits(spec.finetune),
  };
}

/** The steps of a trained baseline; the spec is validated (model set), so a budget exists. */
function budgetSteps(spec: BTXRunSpec, model: 'dense' | 'sparseUpcycling'): number {
  const steps = baselineSteps(spec, model);
  if (steps === undefined)
    throw new Error(`no compute budget for the ${model} baseline (is spec.model set?)`);
  return steps;
}

function domainList(spec: BTXRunSpec, names?: readonly string[]): string {
  const keep = names ? new Set(names) : undefined;
  return spec.domains
    .filter((d) => !keep || keep.has(d.name))
    .map((d) => `${d.name}=${d.data}`)
    .join(',');
}

/**
 * combine weighted: each mixed expert's weight is the tokens it trained on, steps x batch size (all
 * share the sequence length); the generalist's is the seed's training tokens when the run trains
 * the seed, else the mean of the experts' (a downloaded seed's pretraining tokens are unknown).
 */
export function mixWeights(spec: BTXRunSpec, experts: readonly string[]): number[] {
  const batch = spec.expert.batchSize;
  const weights = experts.map(
    (name) => (spec.domains.find((d) => d.name === name)?.steps ?? spec.expert.steps) * batch,
  );
  if (!spec.mix.includeSeedAsExpert) return weights;
  const train = spec.seed.train;
  const mean = weights.reduce((a, b) => a + b, 0) / Math.max(1, weights.length);
  return [...weights, train ? train.steps * (train.batchSize ?? batch) : mean];
}

function stageEnv(run: BTXRun, spec: BTXRunSpec, stage: SingleJobStage, round: number, inputs: StageInputs) {
  const layout = runLayout(run.metadata.namespace ?? 'default', run.metadata.name ?? '', undefined, round);
  switch (stage) {
    case 'seed': {
      const train = spec.seed.train;
      return {
        env: envFrom({
          [ENV.data]: train?.data,
          [ENV.domain]: SEED_DATA_NAME,
          [ENV.tokens]: runTokensFolder(run, spec),
          [ENV.tokenized]: true,
          [ENV.output]: layout.seed,
          [ENV.steps]: train?.steps,
          [ENV.batchSize]: train?.batchSize ?? spec.expert.batchSize,
          [ENV.learningRate]: train?.learningRate ?? spec.expert.learningRate,
          [ENV.checkpointEvery]: spec.expert.checkpointEvery,
          [ENV.modelConfig]: spec.model ? JSON.stringify(spec.model) : undefined,
        }),
        ...podLimits(spec.expert),
      };
    }
    case 'mix':
      return mixEnv(spec, inputs, inputs.experts, layout.mixed);
    case 'finetune':
      return finetuneEnv(run, spec, inputs.mixCheckpoint, spec.finetune.steps, layout.finetuned);
    case 'dense':
      // The seed trained further on every domain, as an expert is trained on one.
      return {
        env: envFrom({
          [ENV.input]: inputs.seedCheckpoint,
          [ENV.data]: domainList(spec),
          [ENV.tokens]: runTokensFolder(run, spec),
          [ENV.tokenized]: true,
          [ENV.dataWeights]: dataWeightsList(spec),
          [ENV.output]: layout.dense,
          [ENV.steps]: budgetSteps(spec, 'dense'),
          [ENV.batchSize]: spec.expert.batchSize,
          [ENV.learningRate]: spec.expert.learningRate,
          [ENV.checkpointEvery]: spec.expert.checkpointEvery,
        }),
        ...podLimits(spec.expert),
      };
    case 'sparseUpcyclingMix':
      // As many copies of the seed as BTX mixes experts (the generalist is added by mixEnv as for BTX).
      return mixEnv(
        spec,
        inputs,
        spec.domains.map(() => ({ name: 'seed', checkpoint: inputs.seedCheckpoint })),
        layout.upcycled,
        spec.domains.map((_, i) => `seed-copy-${i + 1}`),
      );
    case 'sparseUpcycling':
      return finetuneEnv(
        run,
        spec,
        inputs.upcycledCheckpoint ?? layout.upcycled,
        budgetSteps(spec, 'sparseUpcycling'),
        layout.sparseUpcycling,
      );
    case 'eval': {
      const checkpoints = [`btx=${inputs.btxCheckpoint}`];
      if (spec.eval.compareBaselines) {
        checkpoints.push(`seed=${inputs.seedCheckpoint}`);
        for (const e of inputs.experts) checkpoints.push(`${e.name}=${e.checkpoint}`);
      }
      const baselines = spec.baselines ?? [];
      if (baselines.includes('dense')) checkpoints.push(`dense=${inputs.denseCheckpoint ?? layout.dense}`);
      if (baselines.includes('sparseUpcycling'))
        checkpoints.push(`sparseUpcycling=${inputs.sparseUpcyclingCheckpoint ?? layout.sparseUpcycling}`);
      const btm = baselines.includes('btm')
        ? inputs.experts.map((e) => `${e.name}=${e.checkpoint}`).join(',')
        : undefined;
      return {
        env: envFrom({
          [ENV.data]: domainList(spec),
          [ENV.tokens]: runTokensFolder(run, spec),
          [ENV.tokenized]: true,
          [ENV.checkpoints]: checkpoints.join(','),
          [ENV.btmExperts]: btm,
          [ENV.evalBatches]: spec.eval.batches,
          [ENV.router]: spec.mix.router.type,
          [ENV.topK]: spec.mix.router.k,
          [ENV.output]: layout.eval,
        }),
        ...podLimits(spec.eval),
      };
    }
  }
}

export interface StageJobInput {
  run: BTXRun;
  spec: BTXRunSpec;
  stage: SingleJobStage;
  attempt: number;
  /** The run's round (status.round): a later round's Jobs have their own names and folders. */
  round?: number;
  inputs: StageInputs;
}

export function buildStageJob(input: StageJobInput): V1Job {
  const { run, spec, stage, attempt } = input;
  const round = input.round ?? 1;
  const name = stageJobName(run.metadata.name ?? '', stage, attempt, round);
  const { env, resources, deadline } = stageEnv(run, spec, stage, round, input.inputs);
  const podInput = { run, spec, stage, attempt, env, ...(resources ? { resources } : {}) };
  const meta = childMeta(podInput, name);
  const job: V1Job = {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { ...meta, ownerReferences: [ownerReference(run)] },
    spec: {
      backoffLimit: STAGE_BACKOFF_LIMIT,
      podFailurePolicy: STAGE_POD_FAILURE_POLICY,
      completions: 1,
      parallelism: 1,
      template: stagePodTemplate(podInput),
    },
  };
  if (deadline !== undefined && job.spec) job.spec.activeDeadlineSeconds = deadline;
  return job;
}
