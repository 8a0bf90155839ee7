// Builders for plan() tests: a defaulted BTXRun, pods and Jobs in given states, and a tiny "world"
// that applies a plan's actions the way the API server would (without any server).
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import type { BTXRun, BTXRunSpec } from '../../src/api/types.js';
import { plan, type Action, type Plan } from '../../src/operator/plan.js';

export const T0 = new Date('2026-01-01T00:00:00Z');
export const at = (seconds: number) => new Date(T0.getTime() + seconds * 1000);

export function makeSpec(overrides: Partial<BTXRunSpec> = {}): BTXRunSpec {
  return {
    image: 'ghcr.io/btx-ai/btx-trainer:0.1.0',
    imagePullPolicy: 'IfNotPresent',
    storage: { persistentVolumeClaim: { claimName: 'btx-data' } },
    model: { vocabSize: 256, dModel: 16, layers: 1, heads: 2, ffnHidden: 32, seqLen: 16 },
    seed: { train: { data: '/btx/data/seed.txt', steps: 4 } },
    domains: [
      { name: 'code', data: '/btx/data/code.txt' },
      { name: 'math', data: '/btx/data/math.txt' },
      { name: 'prose', data: '/btx/data/prose.txt' },
    ],
    tokenize: { partBytes: 1000, maxParts: 4 },
    expert: {
      steps: 6,
      batchSize: 2,
      learningRate: 0.001,
      checkpointEvery: 2,
      maxRestarts: 2,
      backoffSeconds: 10,
    },
    mix: {
      includeSeedAsExpert: false,
      router: { type: 'topK', k: 2 },
      routerInit: 'zeros',
      combine: 'average',
    },
    finetune: {
      steps: 2,
      batchSize: 2,
      learningRate: 0.001,
      loadBalancingCoef: 0.01,
      freezeExperts: false,
      checkpointEvery: 2,
    },
    eval: { enabled: true, batches: 1, compareBaselines: true },
    randomSeed: 1,
    suspend: false,
    ...overrides,
  };
}

export function makeRun(overrides: Partial<BTXRunSpec> = {}, name = 'demo'): BTXRun {
  return {
    apiVersion: 'btx.ai/v1alpha1',
    kind: 'BTXRun',
    metadata: { name, namespace: 'ml', uid: 'uid-1', generation: 1, resourceVersion: '1' },
    spec: makeSpec(overrides),
  };
}

type PodPatch = {
  phase?: string;
  exitCode?: number;
  message?: string;
  reason?: string;
  condition?: { type: string; reason: string };
  annotations?: Record<string, string>;
};

/** A copy of `pod` in the given state, as a kubelet would report it. */
export function podIn(pod: V1Pod, patch: PodPatch): V1Pod {
  const p = structuredClone(pod);
  p.metadata = { ...p.metadata, uid: p.metadata?.uid ?? `uid-${p.metadata?.name}` };
  if (patch.annotations) p.metadata.annotations = { ...p.metadata.annotations, ...patch.annotations };
  p.status = { ...(p.status ?? {}), phase: patch.phase ?? p.status?.phase ?? 'Running', startTime: T0 };
  if (patch.reason) p.status.reason = patch.reason;
  if (patch.condition)
    p.status.conditions = [{ type: patch.condition.type, status: 'True', reason: patch.condition.reason }];
  if (patch.exitCode !== undefined) {
    p.status.containerStatuses = [
      {
        name: 'trainer',
        image: 'x',
        imageID: 'x',
        ready: false,
        restartCount: 0,
        state: { terminated: { exitCode: patch.exitCode, message: patch.message, finishedAt: at(100) } },
      },
    ];
  }
  return p;
}

export function jobIn(job: V1Job, type: 'Complete' | 'Failed', reason: string = type): V1Job {
  const j = structuredClone(job);
  j.metadata = { ...j.metadata, uid: `uid-${j.metadata?.name}` };
  j.status = {
    conditions: [{ type, status: 'True', reason, message: `${type} ${reason}` }],
    completionTime: at(100),
  };
  return j;
}

/** The pod a Job made, succeeded with a termination message. */
export function jobPod(job: V1Job, message: object): V1Pod {
  const pod: V1Pod = {
    metadata: {
      name: `${job.metadata?.name}-abcde`,
      namespace: job.metadata?.namespace,
      labels: { ...job.spec?.template.metadata?.labels, 'job-name': job.metadata?.name ?? '' },
      ownerReferences: [
        {
          apiVersion: 'batch/v1',
          kind: 'Job',
          name: job.metadata?.name ?? '',
          uid: `uid-${job.metadata?.name}`,
          controller: true,
        },
      ],
    },
    spec: job.spec?.template.spec,
  };
  return podIn(pod, { phase: 'Succeeded', exitCode: 0, message: JSON.stringify(message) });
}

/** A fake cluster: applies createPod/createJob/delete actions and stores the status plan() returns. */
export class World {
  pods = new Map<string, V1Pod>();
  jobs = new Map<string, V1Job>();
  last: Plan | undefined;
  constructor(public run: BTXRun) {}

  step(now: Date = T0, problems: { field: string; message: string }[] = []): Plan {
    const result = plan({
      run: this.run,
      observed: { pods: [...this.pods.values()], jobs: [...this.jobs.values()] },
      now,
      problems,
    });
    this.run = { ...this.run, status: result.status };
    for (const a of result.actions) this.apply(a);
    this.last = result;
    return result;
  }

  private apply(a: Action): void {
    if (a.kind === 'createPod') {
      const name = a.pod.metadata?.name ?? '';
      if (!this.pods.has(name))
        this.pods.set(name, {
          ...a.pod,
          metadata: { ...a.pod.metadata, uid: `uid-${name}` },
          status: { phase: 'Pending' },
        });
    } else if (a.kind === 'createJob') {
      const name = a.job.metadata?.name ?? '';
      if (!this.jobs.has(name))
        this.jobs.set(name, { ...a.job, metadata: { ...a.job.metadata, uid: `uid-${name}` }, status: {} });
    } else if (a.kind === 'deletePod') this.pods.delete(a.name);
    else if (a.kind === 'deleteJob') {
      this.jobs.delete(a.name);
      // The garbage collector takes the Job's pods with it (they name the Job as their owner).
      for (const [name, pod] of this.pods)
        if (pod.metadata?.ownerReferences?.some((o) => o.kind === 'Job' && o.name === a.name))
          this.pods.delete(name);
    }
  }

  pod(name: string): V1Pod {
    const p = this.pods.get(name);
    if (!p) throw new Error(`no pod ${name}; have ${[...this.pods.keys()].join(', ')}`);
    return p;
  }

  job(name: string): V1Job {
    const j = this.jobs.get(name);
    if (!j) throw new Error(`no job ${name}; have ${[...this.jobs.keys()].join(', ')}`);
    return j;
  }

  setPod(name: string, patch: PodPatch): void {
    this.pods.set(name, podIn(this.pod(name), patch));
  }

  /** Finish a Job stage successfully, with its pod's termination message. */
  completeJob(name: string, message: object): void {
    const job = jobIn(this.job(name), 'Complete');
    this.jobs.set(name, job);
    const pod = jobPod(job, message);
    this.pods.set(pod.metadata?.name ?? '', pod);
  }

  /** What a tokenize pod says for a domain it tokenized (or found current). */
  static tokenized(domain: string, tokens = 1000, reused = false): object {
    return {
      checkpoint: '/btx/tokens/x',
      tokenized: [{ domain, documents: 10, tokens, bytes: tokens, heldOutTokens: tokens / 10, reused }],
    };
  }

  /** Start the tokenize stage and finish each of its Jobs (every domain, then the seed's data). */
  throughTokenize(): void {
    this.step();
    for (const job of [...this.jobs.keys()].filter((n) => n.includes('tokenize')))
      this.completeJob(
        job,
        World.tokenized(this.jobs.get(job)?.metadata?.labels?.['btx.ai/expert'] ?? '_seed'),
      );
  }

  /** Tokenized, seed done and every expert succeeded. */
  throughExperts(): void {
    this.throughTokenize();
    this.step();
    this.completeJob('demo-seed', { checkpoint: '/btx/runs/ml/demo/seed/step-4' });
    this.step();
    for (const d of this.run.spec.domains) {
      this.setPod(`demo-expert-${d.name}-1`, {
        phase: 'Succeeded',
        exitCode: 0,
        message: JSON.stringify({
          checkpoint: `/btx/runs/ml/demo/experts/${d.name}/step-6`,
          step: 6,
          loss: 2.5,
        }),
      });
    }
    this.step();
  }
}

export function env(pod: V1Pod | V1Job): Record<string, string> {
  const spec = 'template' in (pod.spec ?? {}) ? (pod as V1Job).spec?.template.spec : (pod as V1Pod).spec;
  const out: Record<string, string> = {};
  for (const e of spec?.containers[0]?.env ?? []) if (e.value !== undefined) out[e.name] = e.value;
  return out;
}

export function kinds(p: Plan, kind: Action['kind']): Action[] {
  return p.actions.filter((a) => a.kind === kind);
}

export function eventReasons(p: Plan): string[] {
  return p.actions.flatMap((a) => (a.kind === 'event' ? [a.reason] : []));
}
