// Shared caches of BTXRuns and of the Pods and Jobs this operator manages, kept by client-node
// informers (list, then watch). A 410 Gone re-lists (client-node does it), any other error
// reconnects after a backoff, and `healthy()` says whether a watch has been failing for too long.
import {
  BatchV1Api,
  CoreV1Api,
  CustomObjectsApi,
  makeInformer,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  type V1Job,
  type V1Pod,
} from '@kubernetes/client-node';
import { GROUP, PLURAL, VERSION, type BTXRun } from '../api/types.js';
import { log } from '../util/log.js';
import { apiErrorFields } from './apiErrors.js';
import { MANAGED_SELECTOR } from './names.js';

type Handler<T> = (obj: T, kind: 'add' | 'update' | 'delete') => void;

/** Reconnect delays after watch/list errors: 1 s doubling to 30 s. */
const RECONNECT_BASE_MS = 1000;
const RECONNECT_MAX_MS = 30_000;
/** A watch failing this long makes /healthz fail (the process is alive but blind). */
const WEDGED_AFTER_MS = 120_000;

/** One informer for one resource in one namespace (or all). */
class Watched<T extends KubernetesObject> {
  private readonly informer: ReturnType<typeof makeInformer<T>>;
  private failingSince: number | undefined;
  private failures = 0;
  private retry: NodeJS.Timeout | undefined;
  private stopped = false;
  synced = false;

  constructor(
    kc: KubeConfig,
    readonly what: string,
    path: string,
    list: () => Promise<KubernetesListObject<T>>,
    handler: Handler<T>,
    labelSelector?: string,
  ) {
    // Synced once a list has landed in the cache (client-node adds the items right after the list
    // resolves, so setImmediate runs after them). A failed list leaves it unsynced until a retry.
    const listed = () =>
      list().then((result) => {
        setImmediate(() => (this.synced = true));
        return result;
      });
    this.informer = makeInformer<T>(kc, path, listed, labelSelector);
    this.informer.on('add', (o) => handler(o, 'add'));
    this.informer.on('update', (o) => handler(o, 'update'));
    this.informer.on('delete', (o) => handler(o, 'delete'));
    this.informer.on('connect', () => {
      this.failures = 0;
      this.failingSince = undefined;
    });
    this.informer.on('error', (err: unknown) => {
      if (this.stopped) return;
      this.failingSince ??= Date.now();
      const delay = Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** this.failures++);
      log.warn('watch failed; reconnecting', { resource: what, delayMs: delay, ...apiErrorFields(err) });
      this.retry = setTimeout(() => {
        this.retry = undefined;
        if (!this.stopped) this.informer.start().catch(() => undefined); // errors arrive on 'error'
      }, delay);
    });
  }

  /** Resolves once the cache holds a full list (retrying through errors), or when stopped. */
  async start(): Promise<void> {
    await this.informer.start();
    while (!this.synced && !this.stopped) await new Promise((r) => setTimeout(r, 20));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    await this.informer.stop();
  }

  list(namespace?: string): readonly T[] {
    return this.informer.list(namespace);
  }

  get(name: string, namespace: string): T | undefined {
    return this.informer.get(name, namespace);
  }

  wedged(now: number): boolean {
    return this.failingSince !== undefined && now - this.failingSince > WEDGED_AFTER_MS;
  }
}

export interface CacheHandlers {
  run: Handler<BTXRun>;
  pod: Handler<V1Pod>;
  job: Handler<V1Job>;
}

/** BTXRuns, Pods and Jobs, for every watched namespace (or the whole cluster). */
export class Caches {
  private readonly runs: Watched<BTXRun>[] = [];
  private readonly pods: Watched<V1Pod>[] = [];
  private readonly jobs: Watched<V1Job>[] = [];

  constructor(kc: KubeConfig, namespaces: readonly string[] | undefined, handlers: CacheHandlers) {
    const core = kc.makeApiClient(CoreV1Api);
    const batch = kc.makeApiClient(BatchV1Api);
    const custom = kc.makeApiClient(CustomObjectsApi);
    const scopes: (string | undefined)[] =
      namespaces && namespaces.length > 0 ? [...namespaces] : [undefined];
    for (const ns of scopes) {
      const prefix = ns ? `/namespaces/${ns}` : '';
      this.runs.push(
        new Watched<BTXRun>(
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
        new Watched<V1Pod>(
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
        new Watched<V1Job>(
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

  private all(): Watched<KubernetesObject>[] {
    return [...this.runs, ...this.pods, ...this.jobs] as Watched<KubernetesObject>[];
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
