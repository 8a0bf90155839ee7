// The embedded control plane as `btx local` drives it: start/stop, and the few API calls it makes
// (the CRD, the namespace and claim a run needs, the run itself). Custom objects go through
// CustomObjectsApi, which sends the body as it is: client-node's typed CRD model would drop the
// schema's `x-kubernetes-*` keys, `default` and `enum`.
import {
  CoreV1Api,
  CustomObjectsApi,
  KubernetesObjectApi,
  type KubeConfig,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { btxRunCRD } from '../api/crd.js';
import { isJobStage, PROGRESS_ANNOTATION, type Progress } from '../api/stageContract.js';
import { GROUP, PLURAL, VERSION, type BTXRun } from '../api/types.js';
import { LABELS, runLabelValue } from '../operator/names.js';
import type { StageProgress } from './progressView.js';
import { startControlPlane, type ControlPlane } from '../cluster/controlPlane.js';
import { volumeFolder } from '../cluster/kubelet/volumes.js';
import { btxPodRuntime } from './podRuntime.js';
import type { ManifestObject } from './manifests.js';
import { statusCode } from '../util/apiErrors.js';

export type { ManifestObject } from './manifests.js';

const CRD_GROUP = 'apiextensions.k8s.io';
const CRD_PLURAL = 'customresourcedefinitions';

export function isTerminal(run: BTXRun): boolean {
  return run.status?.phase === 'Succeeded' || run.status?.phase === 'Failed';
}

async function ignoreConflict(p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch (err) {
    if (statusCode(err) !== 409) throw err;
  }
}

async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (signal?.aborted) throw new Error(`interrupted while waiting for ${what}`);
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export class LocalCluster {
  private cp: ControlPlane | undefined;

  constructor(private readonly opts: { dataDir: string; kubeconfigPath?: string }) {}

  async start(): Promise<void> {
    this.cp = await startControlPlane({
      dataDir: this.opts.dataDir,
      kubeconfigPath: this.opts.kubeconfigPath,
      ...btxPodRuntime(),
    });
  }

  private get plane(): ControlPlane {
    if (!this.cp) throw new Error('the control plane is not started');
    return this.cp;
  }

  get kubeconfigPath(): string {
    return this.plane.kubeconfigPath;
  }

  kubeConfig(): KubeConfig {
    return this.plane.kubeConfig();
  }

  private custom(): CustomObjectsApi {
    return this.kubeConfig().makeApiClient(CustomObjectsApi);
  }

  /** Creates or replaces the BTXRun CRD, then waits until BTXRuns are served. */
  async applyCrd(): Promise<void> {
    const api = this.custom();
    const crd = btxRunCRD();
    try {
      await api.createClusterCustomObject({ group: CRD_GROUP, version: 'v1', plural: CRD_PLURAL, body: crd });
    } catch (err) {
      if (statusCode(err) !== 409) throw new Error('could not create the BTXRun CRD', { cause: err });
      const existing = (await api.getClusterCustomObject({
        group: CRD_GROUP,
        version: 'v1',
        plural: CRD_PLURAL,
        name: crd.metadata.name,
      })) as KubernetesObject;
      const body = {
        ...crd,
        metadata: { ...crd.metadata, resourceVersion: existing.metadata?.resourceVersion },
      };
      await api.replaceClusterCustomObject({
        group: CRD_GROUP,
        version: 'v1',
        plural: CRD_PLURAL,
        name: crd.metadata.name,
        body,
      });
    }
    await waitFor(
      'the BTXRun API',
      async () => {
        try {
          await api.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL });
          return true;
        } catch (err) {
          if (statusCode(err) === 404) return false;
          throw err;
        }
      },
      30_000,
    );
  }

  async ensureNamespace(name: string): Promise<void> {
    const core = this.kubeConfig().makeApiClient(CoreV1Api);
    await ignoreConflict(core.createNamespace({ body: { metadata: { name } } }));
  }

  async ensureClaim(namespace: string, claimName: string): Promise<void> {
    const core = this.kubeConfig().makeApiClient(CoreV1Api);
    await ignoreConflict(
      core.createNamespacedPersistentVolumeClaim({
        namespace,
        body: {
          metadata: { name: claimName, labels: { 'app.kubernetes.io/managed-by': 'btx-local' } },
          spec: { accessModes: ['ReadWriteMany'], resources: { requests: { storage: '10Gi' } } },
        },
      }),
    );
  }

  /** The host folder the kubelet mounts for this claim (what pods see as /btx). */
  claimFolder(namespace: string, claimName: string): string {
    return volumeFolder({ name: 'btx', persistentVolumeClaim: { claimName } }, namespace, {
      dataDir: this.plane.dataDir,
      podDir: this.plane.dataDir,
      hostPathPrefixes: [],
    }).folder;
  }

  /** Creates any other object of the manifest (a Namespace, a PVC, ...); one that exists is left alone. */
  async applyObject(obj: ManifestObject, namespace: string): Promise<void> {
    const api = KubernetesObjectApi.makeApiClient(this.kubeConfig());
    const body = { ...obj, metadata: { ...obj.metadata, namespace: obj.metadata?.namespace ?? namespace } };
    await ignoreConflict(api.create(body as KubernetesObject));
  }

  async getRun(namespace: string, name: string): Promise<BTXRun> {
    return (await this.custom().getNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: PLURAL,
      name,
    })) as BTXRun;
  }

  /** What the run's Job stage pods (seed, mix, finetune, eval) report in their progress annotation. */
  async stageProgress(namespace: string, runName: string): Promise<StageProgress> {
    const core = this.kubeConfig().makeApiClient(CoreV1Api);
    const pods = await core.listNamespacedPod({
      namespace,
      labelSelector: `${LABELS.run}=${runLabelValue(runName)}`,
    });
    const progress: StageProgress = {};
    for (const pod of pods.items) {
      const stage = pod.metadata?.labels?.[LABELS.stage];
      const raw = pod.metadata?.annotations?.[PROGRESS_ANNOTATION];
      if (!raw || !isJobStage(stage)) continue;
      try {
        const parsed = JSON.parse(raw) as Progress;
        const seen = progress[stage];
        // A restarted stage has several pods: the newest report wins.
        if (!seen || parsed.time > seen.time) progress[stage] = parsed;
      } catch {
        // A half-written or foreign annotation: no progress to show for it.
      }
    }
    return progress;
  }

  async createRun(run: BTXRun): Promise<void> {
    const namespace = run.metadata.namespace ?? 'default';
    await this.custom().createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: PLURAL,
      body: run,
    });
  }

  /** Deletes the run (its pods and Jobs go with it) and waits until it is gone. */
  async deleteRun(namespace: string, name: string, signal?: AbortSignal): Promise<void> {
    const api = this.custom();
    try {
      await api.deleteNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace,
        plural: PLURAL,
        name,
        propagationPolicy: 'Foreground',
      });
    } catch (err) {
      if (statusCode(err) === 404) return;
      throw err;
    }
    await waitFor(
      `the previous run ${namespace}/${name} to be deleted`,
      async () => {
        try {
          await this.getRun(namespace, name);
          return false;
        } catch (err) {
          if (statusCode(err) === 404) return true;
          throw err;
        }
      },
      60_000,
      signal,
    );
  }

  async stop(): Promise<void> {
    await this.cp?.stop();
  }
}
