// One expert = one Pod (restartPolicy Never): the operator, not the kubelet, decides about restarts,
// so each replacement is a new pod named with its attempt, writing to the same BTX_OUTPUT (the trainer
// resumes from the newest checkpoint there).
import type { V1Pod } from '@kubernetes/client-node';
import type { BTXRun, BTXRunSpec, DomainSpec } from '../api/types.js';
import { ENV, runLayout } from '../api/stageContract.js';
import { expertPodName } from './names.js';
import { runTokensFolder } from './tokensFolder.js';
import { childMeta, envFrom, mergeTemplate, ownerReference, stagePodTemplate } from './podTemplate.js';

export interface ExpertPodInput {
  run: BTXRun;
  /** The effective spec (immutable fields as the run started with them). */
  spec: BTXRunSpec;
  domain: DomainSpec;
  attempt: number;
  /** The seed checkpoint the expert branches from. */
  seedCheckpoint: string;
}

export function buildExpertPod(input: ExpertPodInput): V1Pod {
  const { run, spec, domain, attempt } = input;
  const runName = run.metadata.name ?? '';
  const namespace = run.metadata.namespace ?? 'default';
  const name = expertPodName(runName, domain.name, attempt);
  const stageInput = {
    run,
    spec,
    stage: 'expert' as const,
    attempt,
    expert: domain.name,
    env: envFrom({
      [ENV.domain]: domain.name,
      [ENV.data]: domain.data,
      [ENV.tokens]: runTokensFolder(run, spec),
      // The tokenize stage made the shards: the expert reads them and never tokenizes on its own.
      [ENV.tokenized]: true,
      [ENV.input]: input.seedCheckpoint,
      [ENV.output]: runLayout(namespace, runName).expert(domain.name),
      [ENV.steps]: domain.steps ?? spec.expert.steps,
      [ENV.batchSize]: spec.expert.batchSize,
      [ENV.learningRate]: spec.expert.learningRate,
      [ENV.checkpointEvery]: spec.expert.checkpointEvery,
    }),
    resources: domain.resources ?? spec.expert.resources,
    activeDeadlineSeconds: spec.expert.activeDeadlineSeconds,
  };
  const template = mergeTemplate(stagePodTemplate(stageInput), spec.expert.template);
  const generated = childMeta(stageInput, name);
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      ...template.metadata,
      name,
      namespace: generated.namespace,
      ownerReferences: [ownerReference(run)],
    },
    spec: template.spec,
  };
}
