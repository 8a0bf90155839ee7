// Shared caches of BTXRuns and of the Pods and Jobs this operator manages, kept by client-node
// informers (list, then watch). A 410 Gone re-lists (client-node does it), any other error
// reconnects after a backoff, and `healthy()` says whether a watch has been failing for too long.
import {
  BatchV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  type V1Job,
  type V1Pod,
} from '@kubernetes/client-node';
import { GROUP, PLURAL, VERSION, type BTXRun } from '../api/types.js';
import { ResilientInformer, type ChangeHandler } from '../util/informer.js';
import { MANAGED_SELECTOR } from './names.js';

export interface CacheHandlers {
  run: ChangeHandler<BTXRun>;
  pod: ChangeHandler<V1Pod>;
  job: ChangeHandler<V1Job>;
}

/** BTXRuns, Pods and Jobs, for every watched namespace (or the whole cluster). */
export class Caches {
  private readonly runs: ResilientInformer<BTXRun>[] = [];
  private readonly pods: ResilientInformer<V1Pod>[] = [];
  private readonly jobs: ResilientInformer<V1Job>[] = [];

  constructor(kc: KubeConfig, namespaces: readonly string[] | undefined, handlers: CacheHandlers) {
    const core = kc.makeApiClient(CoreV1Api);
    const batch = kc.makeApiClient(BatchV1Api);
    const custom = kc.makeApiClient(CustomObjectsApi);
    const scopes: (string | undefined)[] =
      namespaces && namespaces.length > 0 ? [...namespaces] : [undefined];
    for (const ns of scopes) {
      const prefix = ns ? `/namespaces/${ns}` : '';
      this.runs.push(
        new ResilientInformer<BTXRun>(
          kc,
          'btxruns',
          `/apis/${GROUP}/${VERSION}${prefix}/${PLURAL}`,
          async () =>
            (ns
              ? await custom.listNamespacedCustomObject({
                  group: GROUP,
                  version: VERSION,
                  namespace: ns,
                  plural: PLURAL,
                })
              : await custom.listClusterCustomObject({
                  group: GROUP,
                  version: VERSION,
                  plural: PLURAL,
                })) as KubernetesListObject<BTXRun>,
          handlers.run,
        ),
      );
      this.pods.push(
        new ResilientInformer<V1Pod>(
          kc,
          'pods',
          `/api/v1${prefix}/pods`,
          () =>
            ns
              ? core.listNamespacedPod({ namespace: ns, labelSelector: MANAGED_SELECTOR })
              : core.listPodForAllNamespaces({ labelSelector: MANAGED_SELECTOR }),
          handlers.pod,
          MANAGED_SELECTOR,
        ),
      );
      this.jobs.push(
        new ResilientInformer<V1Job>(
          kc,
          'jobs',
          `/apis/batch/v1${prefix}/jobs`,
          () =>
            ns
              ? batch.listNamespacedJob({ namespace: ns, labelSelector: MANAGED_SELECTOR })
              : batch.listJobForAllNamespaces({ labelSelector: MANAGED_SELECTOR }),
          handlers.job,
          MANAGED_SELECTOR,
        ),
      );
    }
  }

  private all(): ResilientInformer<KubernetesObject>[] {
    return [...this.runs, ...this.pods, ...this.jobs] as ResilientInformer<KubernetesObject>[];
  }

  /** Lists everything, then watches; resolves once every cache holds a full list. */
  async start(): Promise<void> {
    // Children first: a run reconciled before its pods are cached would look childless.
    await Promise.all([...this.pods, ...this.jobs].map((w) => w.start()));
    await Promise.all(this.runs.map((w) => w.start()));
  }

  async stop(): Promise<void> {
    await Promise.allSettled(this.all().map((w) => w.stop()));
  }

  synced(): boolean {
    return this.all().every((w) => w.synced);
  }

  healthy(now: number = Date.now()): boolean {
    return !this.all().some((w) => w.wedged(now));
  }

  run(namespace: string, name: string): BTXRun | undefined {
    for (const w of this.runs) {
      const r = w.get(name, namespace);
      if (r) return r;
    }
    return undefined;
  }

  allRuns(): BTXRun[] {
    return this.runs.flatMap((w) => [...w.list()]);
  }

  podsIn(namespace: string): V1Pod[] {
    return this.pods.flatMap((w) => [...w.list(namespace)]);
  }

  jobsIn(namespace: string): V1Job[] {
    return this.jobs.flatMap((w) => [...w.list(namespace)]);
  }
}
