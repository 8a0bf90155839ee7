// The thin I/O layer under plan(): writes a run's status (optimistic concurrency on the
// resourceVersion it was planned from), creates and deletes children with expectations around
// them, and posts Events. 409 on create means the child is already there (deterministic names).
import { BatchV1Api, CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { API_VERSION, GROUP, KIND, PLURAL, VERSION, type BTXRun, type BTXRunStatus } from '../api/types.js';
import { log } from '../util/log.js';
import { statusCode } from '../util/apiErrors.js';
import type { Expectations } from './expectations.js';
import type { Action } from './plan.js';
import { MANAGER } from './names.js';
import { EventRecorder } from '../util/events.js';

/** Counts the API writes this operator makes (the benchmark compares them with the minimum). */
export type WriteCounter = (verb: 'create' | 'delete' | 'update', resource: string) => void;

export class Applier {
  private readonly core: CoreV1Api;
  private readonly batch: BatchV1Api;
  private readonly custom: CustomObjectsApi;
  private readonly recorder: EventRecorder;

  constructor(
    kc: KubeConfig,
    private readonly expectations: Expectations,
    private readonly countWrite: WriteCounter,
    identity: string,
  ) {
    this.core = kc.makeApiClient(CoreV1Api);
    this.batch = kc.makeApiClient(BatchV1Api);
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.recorder = new EventRecorder(this.core, { component: MANAGER, instance: identity }, () =>
      countWrite('create', 'events'),
    );
  }

  /**
   * Replace the status. Returns the resourceVersion the API server stored (the one sent when the
   * write changed nothing), 'conflict' on a 409 (someone wrote since our read), 'gone' on a 404.
   */
  async writeStatus(run: BTXRun, status: BTXRunStatus): Promise<string | 'conflict' | 'gone'> {
    const { name = '', namespace = 'default' } = run.metadata;
    this.countWrite('update', 'btxruns/status');
    try {
      const stored = (await this.custom.replaceNamespacedCustomObjectStatus({
        group: GROUP,
        version: VERSION,
        plural: PLURAL,
        namespace,
        name,
        body: { apiVersion: API_VERSION, kind: KIND, metadata: run.metadata, spec: run.spec, status },
      })) as Partial<BTXRun>;
      return stored.metadata?.resourceVersion ?? '';
    } catch (err) {
      if (statusCode(err) === 409) return 'conflict';
      if (statusCode(err) === 404) return 'gone'; // deleted meanwhile: nothing left to describe
      throw new Error('status update failed', { cause: err });
    }
  }

  /** Creates and deletes, in parallel; throws the first error that is not 409/404 (the key comes back with backoff). */
  async children(runKey: string, namespace: string, actions: readonly Action[]): Promise<void> {
    const results = await Promise.allSettled(actions.map((a) => this.child(runKey, namespace, a)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  private async child(runKey: string, namespace: string, a: Action): Promise<void> {
    if (a.kind === 'createPod' || a.kind === 'createJob') {
      const name = (a.kind === 'createPod' ? a.pod.metadata?.name : a.job.metadata?.name) ?? '';
      this.expectations.expectCreate(runKey, name);
      this.countWrite('create', a.kind === 'createPod' ? 'pods' : 'jobs');
      try {
        if (a.kind === 'createPod') await this.core.createNamespacedPod({ namespace, body: a.pod });
        else await this.batch.createNamespacedJob({ namespace, body: a.job });
        log.info('created child', {
          namespace,
          name,
          run: runKey,
          kind: a.kind === 'createPod' ? 'Pod' : 'Job',
        });
      } catch (err) {
        this.expectations.observedCreate(runKey, name);
        if (statusCode(err) === 409) return; // it exists: deterministic names make this the duplicate guard
        throw new Error(`create ${name} failed`, { cause: err });
      }
    } else if (a.kind === 'deletePod' || a.kind === 'deleteJob') {
      this.expectations.expectDelete(runKey, a.name);
      this.countWrite('delete', a.kind === 'deletePod' ? 'pods' : 'jobs');
      try {
        if (a.kind === 'deletePod') await this.core.deleteNamespacedPod({ namespace, name: a.name });
        else
          await this.batch.deleteNamespacedJob({ namespace, name: a.name, propagationPolicy: 'Background' });
        log.info('deleted child', { namespace, name: a.name, run: runKey, why: a.why });
      } catch (err) {
        this.expectations.observedDelete(runKey, a.name);
        if (statusCode(err) === 404) return;
        throw new Error(`delete ${a.name} failed`, { cause: err });
      }
    }
  }

  /** Resolves when every Event posted so far has been sent (or failed). */
  async flushEvents(): Promise<void> {
    await this.recorder.flush();
  }

  /** The plan's Events, about the run, posted in the background (best effort). */
  events(run: BTXRun, actions: readonly Action[]): void {
    const involved = { apiVersion: API_VERSION, kind: KIND, metadata: run.metadata };
    for (const a of actions) {
      if (a.kind === 'event') this.recorder.emit(involved, a.type, a.reason, a.message);
    }
  }
}
