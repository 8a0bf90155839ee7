// The single-pod stages (seed, mix, finetune, eval) run as Jobs: the Job controller retries a crashed
// pod a few times (the trainer resumes from its checkpoints), each stage has its own deadline.
import type { V1Job } from '@kubernetes/client-node';
import type { BTXRun, BTXRunSpec } from '../api/types.js';
import { ENV, runLayout, type JobStage } from '../api/stageContract.js';
import { stageJobName } from './names.js';
import { tokensFolder } from './tokensFolder.js';
import { childMeta, envFrom, ownerReference, stagePodTemplate } from './podTemplate.js';

/** Pod retries inside one stage Job; small, because the trainer resumes from checkpoints. */
export const STAGE_BACKOFF_LIMIT = 2;

/** What the later stages read: the checkpoints of the earlier ones. */
export interface StageInputs {
  seedCheckpoint: string;
  /** The experts that go into the mix, in domain order. */
  experts: { name: string; checkpoint: string }[];
  mixCheckpoint: string;
  /** The model eval measures as "btx": the finetuned one, or the mixed one when finetune is skipped. */
  btxCheckpoint: string;
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

/** A stage Job's pod resources and deadline: the fields of the same name in its section of the spec. */
function podLimits(section: Pick<BTXRunSpec['eval'], 'resources' | 'activeDeadlineSeconds'>) {
  return { resources: section.resources, deadline: section.activeDeadlineSeconds };
}

function stageEnv(run: BTXRun, spec: BTXRunSpec, stage: JobStage, round: number, inputs: StageInputs) {
  const layout = runLayout(run.metadata.namespace ?? 'default', run.metadata.name ?? '', undefined, round);
  switch (stage) {
    case 'seed': {
      const train = spec.seed.train;
      return {
        env: envFrom({
          [ENV.data]: train?.data,
          [ENV.tokens]: tokensFolder(spec),
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
      return {
        env: envFrom({
          [ENV.experts]: inputs.experts.map((e) => e.checkpoint).join(','),
          [ENV.generalist]: spec.mix.includeSeedAsExpert ? inputs.seedCheckpoint : undefined,
          [ENV.router]: spec.mix.router.type,
          [ENV.topK]: spec.mix.router.k,
          [ENV.routerInit]: spec.mix.routerInit,
          [ENV.combine]: spec.mix.combine,
          [ENV.mixWeights]:
            spec.mix.combine === 'weighted'
              ? mixWeights(
                  spec,
                  inputs.experts.map((e) => e.name),
                ).join(',')
              : undefined,
          [ENV.seedCheckpoint]: spec.mix.combine === 'seed' ? inputs.seedCheckpoint : undefined,
          [ENV.dtype]: spec.mix.dtype,
          [ENV.output]: layout.mixed,
        }),
        ...podLimits(spec.mix),
      };
    case 'finetune': {
      const weights = spec.finetune.dataWeights;
      return {
        env: envFrom({
          [ENV.input]: inputs.mixCheckpoint,
          [ENV.data]: domainList(spec),
          [ENV.tokens]: tokensFolder(spec),
          [ENV.dataWeights]: weights
            ? Object.entries(weights)
                .map(([d, w]) => `${d}=${w}`)
                .join(',')
            : undefined,
          [ENV.steps]: spec.finetune.steps,
          [ENV.batchSize]: spec.finetune.batchSize,
          [ENV.learningRate]: spec.finetune.learningRate,
          [ENV.loadBalancingCoef]: spec.finetune.loadBalancingCoef,
          [ENV.freezeExperts]: spec.finetune.freezeExperts,
          [ENV.checkpointEvery]: spec.finetune.checkpointEvery,
          [ENV.router]: spec.mix.router.type,
          [ENV.topK]: spec.mix.router.k,
          [ENV.output]: layout.finetuned,
        }),
        ...podLimits(spec.finetune),
      };
    }
    case 'eval': {
      const checkpoints = [`btx=${inputs.btxCheckpoint}`];
      if (spec.eval.compareBaselines) {
        checkpoints.push(`seed=${inputs.seedCheckpoint}`);
        for (const e of inputs.experts) checkpoints.push(`${e.name}=${e.checkpoint}`);
      }
      return {
        env: envFrom({
          [ENV.data]: domainList(spec),
          [ENV.tokens]: tokensFolder(spec),
          [ENV.checkpoints]: checkpoints.join(','),
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
  stage: JobStage;
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
      completions: 1,
      parallelism: 1,
      template: stagePodTemplate(podInput),
    },
  };
  if (deadline !== undefined && job.spec) job.spec.activeDeadlineSeconds = deadline;
  return job;
}
