// A BTXRun with every field of types.ts set (the Full type makes the compiler insist), so tests
// can walk it against the schema: a field added to the types without a schema node fails a test.
import type { V1ResourceRequirements } from '@kubernetes/client-node';
import type { BTXRun } from '../../src/api/types.js';

/** Fields of Kubernetes' own types: not ours to cover field by field (their schema nodes are tested apart). */
type OpaqueKey = 'metadata' | 'template' | 'resources' | 'tolerations';

/** T with every optional field required, recursively, except the Kubernetes types. */
export type Full<T> = T extends (infer U)[]
  ? Full<U>[]
  : T extends object
    ? { [K in keyof T]-?: K extends OpaqueKey ? NonNullable<T[K]> : Full<NonNullable<T[K]>> }
    : T;

const resources: V1ResourceRequirements = {
  requests: { cpu: '500m', memory: '1Gi' },
  limits: { 'nvidia.com/gpu': 1 as unknown as string },
  claims: [{ name: 'gpu', request: 'one' }],
};

const domain = { name: 'math', data: '/btx/data/math', steps: 10, resources };
const model = {
  vocabSize: 259,
  dModel: 64,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  ffnHidden: 192,
  seqLen: 64,
  ropeTheta: 10000,
  rmsNormEps: 1e-5,
  tieEmbeddings: false,
};
const storage = { persistentVolumeClaim: { claimName: 'btx-data' } };
const fullRunSeed = {
  checkpoint: '/btx/seed',
  train: { data: '/btx/data', steps: 10, batchSize: 4, learningRate: 1e-3 },
};
const time = '2026-01-01T00:00:00Z';
const stage = {
  job: 'run-mix-1',
  attempt: 1,
  phase: 'Succeeded' as const,
  checkpoint: '/btx/runs/ns/run/mixed',
  startTime: time,
  completionTime: time,
  message: 'done',
};

export const fullRun: Full<BTXRun> = {
  apiVersion: 'btx.ai/v1alpha1',
  kind: 'BTXRun',
  metadata: { name: 'run', namespace: 'ns' },
  spec: {
    image: 'ghcr.io/btx-ai/btx-trainer:0.1.0',
    imagePullPolicy: 'IfNotPresent',
    serviceAccountName: 'trainer',
    podLabels: { 'kueue.x-k8s.io/queue-name': 'team-a' },
    storage,
    model,
    seed: fullRunSeed,
    domains: [domain],
    tokenize: { partBytes: 1 << 30, maxParts: 8, activeDeadlineSeconds: 600, resources },
    expert: {
      steps: 10,
      batchSize: 4,
      learningRate: 1e-3,
      checkpointEvery: 5,
      maxRestarts: 2,
      backoffSeconds: 1,
      activeDeadlineSeconds: 600,
      resources,
      nodeSelector: { pool: 'gpu' },
      tolerations: [
        { key: 'gpu', operator: 'Exists', effect: 'NoSchedule', tolerationSeconds: 5, value: 'x' },
      ],
      priorityClassName: 'high',
      schedulerName: 'volcano',
      template: { metadata: { labels: { a: 'b' } } },
    },
    failurePolicy: {
      rules: [{ action: 'FailExpert', onExitCodes: [2], onPodCondition: 'DisruptionTarget' }],
      minExperts: 1,
    },
    mix: {
      includeSeedAsExpert: true,
      router: { type: 'topK', k: 2 },
      routerInit: 'normal',
      combine: 'weighted',
      dtype: 'bf16',
      activeDeadlineSeconds: 60,
      resources,
    },
    finetune: {
      steps: 10,
      batchSize: 4,
      learningRate: 1e-4,
      loadBalancingCoef: 0.01,
      freezeExperts: true,
      computeShare: 0.23,
      checkpointEvery: 5,
      dataWeights: { math: 1 },
      activeDeadlineSeconds: 60,
      resources,
    },
    eval: { enabled: true, batches: 2, compareBaselines: true, activeDeadlineSeconds: 60, resources },
    baselines: ['dense', 'sparseUpcycling', 'btm'],
    randomSeed: 1,
    suspend: false,
    ttlSecondsAfterFinished: 3600,
  },
  status: {
    phase: 'Succeeded',
    conditions: [
      {
        type: 'Succeeded',
        status: 'True',
        reason: 'Evaluated',
        message: 'done',
        lastTransitionTime: time,
        observedGeneration: 1,
      },
    ],
    observedGeneration: 1,
    startTime: time,
    completionTime: time,
    tokenize: {
      ...stage,
      job: 'run-tokenize-math-1',
      checkpoint: '/btx/tokens/0123456789abcdef',
      tokens: '/btx/tokens/0123456789abcdef',
      domains: [
        {
          name: 'math',
          phase: 'Succeeded',
          job: 'run-tokenize-math-1-2parts',
          parts: 2,
          sourceBytes: 2000,
          documents: 10,
          tokens: 2100,
          bytes: 2000,
          heldOutTokens: 200,
          reused: false,
          message: 'done',
        },
      ],
    },
    expertsReady: '1/1',
    restarts: 0,
    experts: [
      {
        name: 'math',
        phase: 'Succeeded',
        attempt: 2,
        restarts: 1,
        totalRestarts: 1,
        pod: 'run-math-2',
        step: 10,
        totalSteps: 10,
        loss: 1.5,
        checkpoint: '/btx/runs/ns/run/experts/math/step-10',
        startTime: time,
        completionTime: time,
        nextAttemptTime: time,
        lastFailure: {
          attempt: 1,
          reason: 'Error',
          message: 'exit 1',
          exitCode: 1,
          countsAgainstBudget: true,
          time,
        },
      },
    ],
    seed: stage,
    mix: stage,
    finetune: stage,
    eval: stage,
    dense: stage,
    sparseUpcyclingMix: stage,
    sparseUpcycling: stage,
    results: [{ model: 'btx', domain: 'math', loss: 1.2, perplexity: 3.3, bitsPerByte: 1.7 }],
    meanResults: [{ model: 'btx', loss: 1.2, perplexity: 3.3, bitsPerByte: 1.7, domains: 1 }],
    compute: [{ model: 'btx', steps: 30, tokens: 7680, flops: 1e9, relativeToBtx: 1, finetuneShare: 0.23 }],
    routing: [{ domain: 'math', expert: 'math', share: 0.7 }],
    startedWith: { domains: [domain], model, storage, seed: fullRunSeed },
    round: 2,
    rounds: [
      {
        round: 1,
        domains: ['math', 'code'],
        checkpoint: '/btx/runs/ns/run/finetuned/step-10',
        completionTime: time,
        results: [{ model: 'btx', domain: 'math', loss: 1.3, perplexity: 3.7, bitsPerByte: 1.8 }],
        routing: [{ domain: 'math', expert: 'code', share: 0.4 }],
      },
    ],
  },
};
