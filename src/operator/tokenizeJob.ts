// The tokenize stage's Jobs: one per domain (and one for the seed's own training data), each running
// `btx tokenize` on that one domain into the run's shards folder. A domain whose first pod answered
// that it is too big for one pod gets an Indexed Job instead: `parts` pods, each tokenizing part
// JOB_COMPLETION_INDEX of BTX_PARTS, the last one to finish merging the manifest.
import type { V1Job } from '@kubernetes/client-node';
import { ENV, SEED_DATA_NAME } from '../api/stageContract.js';
import type { BTXRun, BTXRunSpec } from '../api/types.js';
import { tokenizeJobName } from './names.js';
import { childMeta, envFrom, ownerReference, stagePodTemplate } from './podTemplate.js';
import { STAGE_BACKOFF_LIMIT, STAGE_POD_FAILURE_POLICY } from './stageJob.js';
import { runTokensFolder } from './tokensFolder.js';

/** What one tokenize Job tokenizes: a domain, or the seed's training data (named SEED_DATA_NAME). */
export interface TokenizeTarget {
  name: string;
  data: string;
}

/** Every domain in spec order, then the seed's training data when the seed is trained here. */
export function tokenizeTargets(spec: BTXRunSpec): TokenizeTarget[] {
  const targets = spec.domains.map((d) => ({ name: d.name, data: d.data }));
  if (spec.seed.train) targets.push({ name: SEED_DATA_NAME, data: spec.seed.train.data });
  return targets;
}

export interface TokenizeJobInput {
  run: BTXRun;
  spec: BTXRunSpec;
  target: TokenizeTarget;
  attempt: number;
  /** 1: one pod for the domain; more: an Indexed Job of this many pods. */
  parts: number;
}

export function buildTokenizeJob(input: TokenizeJobInput): V1Job {
  const { run, spec, target, attempt, parts } = input;
  const name = tokenizeJobName(run.metadata.name ?? '', target.name, attempt, parts);
  const split = parts > 1;
  const env = envFrom({
    [ENV.data]: `${target.name}=${target.data}`,
    [ENV.tokens]: runTokensFolder(run, spec),
    // The domains are tokenized with the seed's tokenizer: a given seed checkpoint's tokenizer.json,
    // or (unset) the built-in byte tokenizer that a seed trained here is created with.
    [ENV.tokenizer]: spec.seed.checkpoint,
    [ENV.parts]: split ? parts : undefined,
    [ENV.partBytes]: split ? undefined : spec.tokenize.partBytes,
    [ENV.maxParts]: split ? undefined : spec.tokenize.maxParts,
  });
  const podInput = {
    run,
    spec,
    stage: 'tokenize' as const,
    attempt,
    // The seed's data has no domain label (its name is deliberately not a label value).
    ...(target.name === SEED_DATA_NAME ? {} : { expert: target.name }),
    env,
    ...(spec.tokenize.resources ? { resources: spec.tokenize.resources } : {}),
  };
  const job: V1Job = {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { ...childMeta(podInput, name), ownerReferences: [ownerReference(run)] },
    spec: {
      // Each pod may be retried a few times: a part's output is committed whole or not at all.
      backoffLimit: STAGE_BACKOFF_LIMIT * parts,
      podFailurePolicy: STAGE_POD_FAILURE_POLICY,
      completions: parts,
      parallelism: parts,
      ...(split ? { completionMode: 'Indexed' } : {}),
      template: stagePodTemplate(podInput),
    },
  };
  if (spec.tokenize.activeDeadlineSeconds !== undefined && job.spec)
    job.spec.activeDeadlineSeconds = spec.tokenize.activeDeadlineSeconds;
  return job;
}
