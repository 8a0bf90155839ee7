// What every stage pod shares: the trainer container with the stage contract's environment, the
// run's volume at /btx, the scheduling fields, labels, and the ownerReference to the BTXRun.
import type {
  V1Container,
  V1EnvVar,
  V1ObjectMeta,
  V1OwnerReference,
  V1PodSpec,
  V1PodTemplateSpec,
  V1ResourceRequirements,
} from '@kubernetes/client-node';
import { API_VERSION, KIND, type BTXRun, type BTXRunSpec } from '../api/types.js';
import { ENV, TERMINATION_MESSAGE_PATH, VOLUME_MOUNT_PATH, type Stage } from '../api/stageContract.js';
import { childLabels, RUN_NAME_ANNOTATION } from './names.js';
import { TRAINER_CONTAINER } from './failure.js';

export const VOLUME_NAME = 'btx';

/**
 * The CLI arguments of each stage (the trainer image's entrypoint is `btx`). The baselines run the
 * commands of the stages whose recipe they share: dense trains like an expert, sparseUpcycling mixes
 * like mix and trains like finetune.
 */
export function stageArgs(stage: Stage): string[] {
  switch (stage) {
    case 'mix':
    case 'sparseUpcyclingMix':
      return ['mix'];
    case 'dense':
      return ['train', 'expert'];
    case 'sparseUpcycling':
      return ['train', 'finetune'];
    case 'eval':
      return ['eval'];
    case 'tokenize':
      return ['tokenize'];
    default:
      return ['train', stage];
  }
}

export function ownerReference(run: BTXRun): V1OwnerReference {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    name: run.metadata.name ?? '',
    uid: run.metadata.uid ?? '',
    controller: true,
    blockOwnerDeletion: true,
  };
}

/** Environment entries from a map; undefined values are left out. */
export function envFrom(values: Record<string, string | number | boolean | undefined>): V1EnvVar[] {
  const env: V1EnvVar[] = [];
  for (const [name, value] of Object.entries(values)) {
    if (value !== undefined) env.push({ name, value: String(value) });
  }
  return env;
}

function downwardEnv(): V1EnvVar[] {
  return [
    { name: ENV.podName, valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
    { name: ENV.podNamespace, valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
  ];
}

export interface StagePodInput {
  run: BTXRun;
  spec: BTXRunSpec;
  stage: Stage;
  attempt: number;
  expert?: string;
  env: V1EnvVar[];
  resources?: V1ResourceRequirements;
  activeDeadlineSeconds?: number;
}

/** Labels and annotations of a child object (and of the pods a child Job makes). */
export function childMeta(input: StagePodInput, name?: string): V1ObjectMeta {
  const runName = input.run.metadata.name ?? '';
  const meta: V1ObjectMeta = {
    labels: {
      ...(input.spec.podLabels ?? {}),
      ...childLabels(runName, input.stage, input.attempt, input.expert),
    },
    annotations: { [RUN_NAME_ANNOTATION]: runName },
  };
  if (name !== undefined) {
    meta.name = name;
    meta.namespace = input.run.metadata.namespace ?? 'default';
  }
  return meta;
}

/** The pod template of a stage: one trainer container following the stage contract. */
export function stagePodTemplate(input: StagePodInput): V1PodTemplateSpec {
  const { run, spec, stage } = input;
  const container: V1Container = {
    name: TRAINER_CONTAINER,
    image: spec.image,
    imagePullPolicy: spec.imagePullPolicy,
    args: stageArgs(stage),
    env: [
      ...envFrom({
        [ENV.stage]: stage,
        [ENV.run]: run.metadata.name,
        [ENV.namespace]: run.metadata.namespace ?? 'default',
        [ENV.attempt]: input.attempt,
        [ENV.randomSeed]: spec.randomSeed,
      }),
      ...input.env,
      ...downwardEnv(),
    ],
    volumeMounts: [{ name: VOLUME_NAME, mountPath: VOLUME_MOUNT_PATH }],
    terminationMessagePath: TERMINATION_MESSAGE_PATH,
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
  if (input.resources) container.resources = input.resources;
  const podSpec: V1PodSpec = {
    restartPolicy: 'Never',
    containers: [container],
    volumes: [
      {
        name: VOLUME_NAME,
        persistentVolumeClaim: { claimName: spec.storage.persistentVolumeClaim.claimName },
      },
    ],
  };
  const ex = spec.expert;
  if (ex.nodeSelector) podSpec.nodeSelector = ex.nodeSelector;
  if (ex.tolerations) podSpec.tolerations = ex.tolerations;
  if (ex.priorityClassName) podSpec.priorityClassName = ex.priorityClassName;
  if (ex.schedulerName) podSpec.schedulerName = ex.schedulerName;
  if (spec.serviceAccountName) podSpec.serviceAccountName = spec.serviceAccountName;
  if (input.activeDeadlineSeconds !== undefined) podSpec.activeDeadlineSeconds = input.activeDeadlineSeconds;
  return { metadata: childMeta(input), spec: podSpec };
}

function mergeEnv(generated: V1EnvVar[] = [], extra: V1EnvVar[] = []): V1EnvVar[] {
  const names = new Set(generated.map((e) => e.name));
  return [...generated, ...extra.filter((e) => !names.has(e.name))];
}

function mergeByName<T extends { name: string }>(generated: T[] = [], extra: T[] = []): T[] {
  const names = new Set(generated.map((e) => e.name));
  return [...generated, ...extra.filter((e) => !names.has(e.name))];
}

/**
 * Merge a user template under the generated one: the template adds labels, annotations, volumes,
 * env, sidecars and any pod field we do not set; the stage contract (our env names, the /btx mount,
 * our labels) wins where both speak. The template's trainer container may set command/args.
 */
export function mergeTemplate(
  generated: V1PodTemplateSpec,
  user: V1PodTemplateSpec | undefined,
): V1PodTemplateSpec {
  if (!user) return generated;
  const gSpec = generated.spec as V1PodSpec;
  const uSpec: Partial<V1PodSpec> = user.spec ?? {};
  const uContainers = uSpec.containers ?? [];
  const uTrainer = uContainers.find((c) => c.name === TRAINER_CONTAINER) ?? uContainers[0];
  const gTrainer = gSpec.containers[0] as V1Container;
  const trainer: V1Container = {
    ...uTrainer,
    ...gTrainer,
    env: mergeEnv(gTrainer.env, uTrainer?.env),
    volumeMounts: mergeByName(gTrainer.volumeMounts, uTrainer?.volumeMounts),
  };
  if (uTrainer?.command) trainer.command = uTrainer.command;
  if (uTrainer?.args) trainer.args = uTrainer.args;
  if (uTrainer?.image) trainer.image = uTrainer.image;
  if (!gTrainer.resources && uTrainer?.resources) trainer.resources = uTrainer.resources;
  const sidecars = uContainers.filter((c) => c !== uTrainer);
  return dropUndefined({
    metadata: {
      ...user.metadata,
      labels: { ...(user.metadata?.labels ?? {}), ...(generated.metadata?.labels ?? {}) },
      annotations: { ...(user.metadata?.annotations ?? {}), ...(generated.metadata?.annotations ?? {}) },
    },
    spec: {
      ...uSpec,
      ...gSpec,
      nodeSelector: gSpec.nodeSelector ?? uSpec.nodeSelector,
      tolerations: gSpec.tolerations ?? uSpec.tolerations,
      priorityClassName: gSpec.priorityClassName ?? uSpec.priorityClassName,
      schedulerName: gSpec.schedulerName ?? uSpec.schedulerName,
      serviceAccountName: gSpec.serviceAccountName ?? uSpec.serviceAccountName,
      activeDeadlineSeconds: gSpec.activeDeadlineSeconds ?? uSpec.activeDeadlineSeconds,
      containers: [trainer, ...sidecars],
      volumes: mergeByName(gSpec.volumes, uSpec.volumes),
    },
  });
}

/** A copy without undefined-valued keys at the top two levels (so objects compare and print cleanly). */
function dropUndefined(t: V1PodTemplateSpec): V1PodTemplateSpec {
  const spec = Object.fromEntries(Object.entries(t.spec ?? {}).filter(([, v]) => v !== undefined));
  return { metadata: t.metadata, spec: spec as unknown as V1PodSpec };
}
