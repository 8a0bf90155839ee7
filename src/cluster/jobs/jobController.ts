// The batch/v1 Job controller: informers on Jobs and pods, a work queue of Job keys, and
// planJob() (jobPlan.ts) applied through the API. Expectations remember the creates and deletes
// in flight, so a cache that has not seen them yet never makes it create a second pod.
import {
  BatchV1Api,
  CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type V1Job,
  type V1Pod,
  type V1PodSpec,
} from '@kubernetes/client-node';
import { log, errorFields } from '../../util/log.js';
import { EventRecorder } from '../../util/events.js';
import { ResilientInformer } from '../../util/informer.js';
import { statusCode } from '../../util/apiErrors.js';
import { stableJson } from '../kubelet/podStatus.js';
import { runWorkers, WorkQueue } from '../../util/workQueue.js';
import { Expectations } from './expectations.js';
import { COMPLETION_INDEX } from './completionIndexes.js';
import { planJob } from './jobPlan.js';

const MERGE_PATCH = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
/** Status fields the controller owns (absent in the plan = removed). */
const OWNED_STATUS = [
  'completedIndexes',
  'active',
  'ready',
  'terminating',
  'succeeded',
  'failed',
  'uncountedTerminatedPods',
  'conditions',
  'startTime',
  'completionTime',
];

export interface JobControllerOptions {
  kubeConfig: KubeConfig;
  /** First delay before replacing a failed pod (10 s in Kubernetes); doubles per failure. */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  resyncMs?: number;
}

function keyOf(namespace: string | undefined, name: string | undefined): string {
  return `${namespace ?? 'default'}/${name ?? ''}`;
}

function controllerJob(pod: V1Pod): { uid: string; name: string } | undefined {
  const ref = pod.metadata?.ownerReferences?.find(
    (r) => r.controller && r.kind === 'Job' && r.apiVersion === 'batch/v1',
  );
  return ref ? { uid: ref.uid, name: ref.name } : undefined;
}

export class JobController {
  private readonly core: CoreV1Api;
  private readonly batch: BatchV1Api;
  private readonly queue: WorkQueue;
  private readonly events: EventRecorder;
  private readonly expectations = new Expectations();
  private jobs?: ResilientInformer<V1Job>;
  private pods?: ResilientInformer<V1Pod>;
  private resync?: NodeJS.Timeout;

  constructor(private readonly opts: JobControllerOptions) {
    this.core = opts.kubeConfig.makeApiClient(CoreV1Api);
    this.batch = opts.kubeConfig.makeApiClient(BatchV1Api);
    this.queue = new WorkQueue({ baseDelayMs: 100, maxDelayMs: 30_000 });
    void runWorkers(this.queue, 'job-controller', 4, (key) => this.sync(key));
    this.events = new EventRecorder(this.core, { component: 'job-controller' });
  }

  async start(): Promise<void> {
    this.pods = new ResilientInformer<V1Pod>(
      this.opts.kubeConfig,
      'pods',
      '/api/v1/pods',
      () => this.core.listPodForAllNamespaces(),
      (pod) => this.onPod(pod),
    );
    this.jobs = new ResilientInformer<V1Job>(
      this.opts.kubeConfig,
      'jobs',
      '/apis/batch/v1/jobs',
      () => this.batch.listJobForAllNamespaces(),
      (job) => this.queue.add(keyOf(job.metadata?.namespace, job.metadata?.name)),
    );
    await Promise.all([this.pods.start(), this.jobs.start()]);
    this.resync = setInterval(() => {
      for (const j of this.jobs?.list() ?? []) this.queue.add(keyOf(j.metadata?.namespace, j.metadata?.name));
    }, this.opts.resyncMs ?? 30_000);
    this.resync.unref();
  }

  async stop(): Promise<void> {
    this.queue.shutDown();
    if (this.resync) clearInterval(this.resync);
    await Promise.all([this.jobs?.stop(), this.pods?.stop()]);
  }

  private onPod(pod: V1Pod): void {
    const owner = controllerJob(pod);
    if (!owner) return;
    const key = keyOf(pod.metadata?.namespace, owner.name);
    const uid = pod.metadata?.uid ?? '';
    const gone = !this.pods?.get(pod.metadata?.name ?? '', pod.metadata?.namespace);
    this.expectations.observe(key, uid, gone || Boolean(pod.metadata?.deletionTimestamp));
    this.queue.add(key);
  }

  private ownedPods(job: V1Job): V1Pod[] {
    const uid = job.metadata?.uid;
    return (this.pods?.list(job.metadata?.namespace) ?? []).filter((p) => controllerJob(p)?.uid === uid);
  }

  private async sync(key: string): Promise<number | void> {
    const [namespace = '', name = ''] = key.split('/', 2);
    const job = this.jobs?.get(name, namespace);
    if (!job) {
      this.expectations.forget(key);
      return;
    }
    if (job.metadata?.deletionTimestamp) return;
    // Until the cache has seen our own creates and deletes, its pod list is not to be trusted.
    if (!this.expectations.satisfied(key)) return 1000;
    const pods = this.ownedPods(job);
    const plan = planJob(job, pods, Date.now(), {
      backoffBaseMs: this.opts.backoffBaseMs ?? 10_000,
      backoffMaxMs: this.opts.backoffMaxMs ?? 360_000,
    });

    if (plan.deleteJob) {
      await this.batch
        .deleteNamespacedJob({ name, namespace, propagationPolicy: 'Background' })
        .catch((err: unknown) => {
          if (statusCode(err) !== 404) throw err;
        });
      return;
    }
    try {
      await this.writeStatus(job, plan.status);
    } catch (err) {
      // 409: the cache was behind the Job (our own last write); decide again once it has caught up.
      if (statusCode(err) === 409) return 200;
      throw err;
    }
    for (const e of plan.events)
      this.events.emit({ ...job, kind: 'Job', apiVersion: 'batch/v1' }, e.type, e.reason, e.message);

    const deletions = plan.deletePods.filter((p) => !p.metadata?.deletionTimestamp);
    if (deletions.length) {
      this.expectations.expectDeletions(
        key,
        deletions.map((p) => p.metadata?.uid ?? ''),
      );
      await Promise.all(deletions.map((p) => this.deletePod(key, job, p)));
    }
    if (plan.createPods > 0) {
      this.expectations.expectCreations(key, plan.createPods);
      const indexes = plan.createIndexes.length
        ? plan.createIndexes
        : Array.from({ length: plan.createPods }, () => undefined);
      await Promise.all(indexes.map((index) => this.createPod(key, job, index)));
    }
    return plan.requeueAfterMs;
  }

  private async writeStatus(job: V1Job, desired: Record<string, unknown>): Promise<void> {
    const current = (job.status ?? {}) as Record<string, unknown>;
    const patch: Record<string, unknown> = {};
    for (const k of OWNED_STATUS) {
      const want = desired[k];
      if (want === undefined) {
        if (current[k] !== undefined && current[k] !== null) patch[k] = null;
      } else if (stableJson(want) !== stableJson(current[k])) {
        patch[k] = want;
      }
    }
    if (Object.keys(patch).length === 0) return;
    await this.batch.patchNamespacedJobStatus(
      {
        name: job.metadata?.name ?? '',
        namespace: job.metadata?.namespace ?? 'default',
        // The resourceVersion makes it conditional: a decision from a stale cache is refused (409).
        body: { metadata: { resourceVersion: job.metadata?.resourceVersion }, status: patch },
      },
      MERGE_PATCH,
    );
  }

  private podFromTemplate(job: V1Job, index?: number): V1Pod {
    const template = job.spec?.template;
    const uid = job.metadata?.uid ?? '';
    const name = job.metadata?.name ?? '';
    const spec: V1PodSpec = structuredClone(template?.spec ?? { containers: [] });
    const indexed: Record<string, string> = index !== undefined ? { [COMPLETION_INDEX]: String(index) } : {};
    if (index !== undefined) {
      // As the real controller: the index in an annotation, a label, the hostname and JOB_COMPLETION_INDEX.
      spec.hostname = `${name}-${index}`;
      for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
        c.env = [
          ...(c.env ?? []),
          {
            name: 'JOB_COMPLETION_INDEX',
            valueFrom: { fieldRef: { fieldPath: `metadata.annotations['${COMPLETION_INDEX}']` } },
          },
        ];
      }
    }
    return {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        generateName: index !== undefined ? `${name}-${index}-` : `${name}-`,
        namespace: job.metadata?.namespace,
        labels: {
          ...(template?.metadata?.labels ?? {}),
          'batch.kubernetes.io/controller-uid': uid,
          'batch.kubernetes.io/job-name': name,
          'controller-uid': uid,
          'job-name': name,
          ...indexed,
        },
        annotations: { ...(template?.metadata?.annotations ?? {}), ...indexed },
        ownerReferences: [
          { apiVersion: 'batch/v1', kind: 'Job', name, uid, controller: true, blockOwnerDeletion: true },
        ],
      },
      spec,
    };
  }

  private async createPod(key: string, job: V1Job, index?: number): Promise<void> {
    try {
      const pod = await this.core.createNamespacedPod({
        namespace: job.metadata?.namespace ?? 'default',
        body: this.podFromTemplate(job, index),
      });
      this.events.emit(
        { ...job, kind: 'Job', apiVersion: 'batch/v1' },
        'Normal',
        'SuccessfulCreate',
        `Created pod: ${pod.metadata?.name}`,
      );
    } catch (err) {
      // The create will never be observed: stop waiting for it.
      this.expectations.creationFailed(key);
      log.warn('job pod create failed', {
        namespace: job.metadata?.namespace,
        job: job.metadata?.name,
        ...errorFields(err),
      });
      this.events.emit(
        { ...job, kind: 'Job', apiVersion: 'batch/v1' },
        'Warning',
        'FailedCreate',
        `Error creating: ${err instanceof Error ? err.message : String(err)}`,
      );
      throw err;
    }
  }

  private async deletePod(key: string, job: V1Job, pod: V1Pod): Promise<void> {
    const name = pod.metadata?.name ?? '';
    try {
      await this.core.deleteNamespacedPod({ name, namespace: pod.metadata?.namespace ?? 'default' });
      this.events.emit(
        { ...job, kind: 'Job', apiVersion: 'batch/v1' },
        'Normal',
        'SuccessfulDelete',
        `Deleted pod: ${name}`,
      );
    } catch (err) {
      this.expectations.deletionFailed(key, pod.metadata?.uid ?? '');
      if (statusCode(err) !== 404) throw err;
    }
  }
}
