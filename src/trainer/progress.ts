// Progress of a training stage: a JSON log line per step (through the shared logger) and, in a
// pod, the btx.ai/progress annotation on the pod itself (merge patch, throttled). Lacking
// permission or a reachable API server it warns once and training goes on.
import { writeFile } from 'node:fs/promises';
import { ENV, PROGRESS_ANNOTATION, TERMINATION_MESSAGE_PATH } from '../api/stageContract.js';
import type { Progress, TerminationMessage } from '../api/stageContract.js';
import { hostPath } from '../util/containerPaths.js';
import { errorFields, log } from '../util/log.js';

type Patcher = (annotationValue: string) => Promise<void>;

async function podPatcher(name: string, namespace: string): Promise<Patcher> {
  // Loaded only inside a pod, so local runs and tests skip client-node's start-up cost.
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  kc.loadFromDefault();
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const options = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
  return async (value) => {
    await core.patchNamespacedPod(
      { name, namespace, body: { metadata: { annotations: { [PROGRESS_ANNOTATION]: value } } } },
      options,
    );
  };
}

export class ProgressReporter {
  private patcher: Promise<Patcher | null>;
  private lastPatch = 0;
  private warned = false;
  private inFlight: Promise<void> = Promise.resolve();
  private newestCheckpoint: string | undefined;

  constructor(
    private readonly stage: string,
    private readonly minIntervalMs = 2000,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    const pod = env[ENV.podName];
    const namespace = env[ENV.podNamespace];
    this.patcher =
      pod && namespace
        ? podPatcher(pod, namespace).catch((err: unknown): null => {
            this.warnOnce(err);
            return null;
          })
        : Promise.resolve(null);
  }

  private warnOnce(err: unknown): void {
    if (this.warned) return;
    this.warned = true;
    log.warn('cannot report progress on the pod; training goes on', {
      ...errorFields(err),
      stage: this.stage,
    });
  }

  checkpointWritten(containerDir: string): void {
    this.newestCheckpoint = containerDir;
  }

  /** Record progress; the annotation is patched at most every minIntervalMs unless `force`. */
  report(p: Omit<Progress, 'time' | 'checkpoint'>, force = false): void {
    const now = Date.now();
    if (!force && now - this.lastPatch < this.minIntervalMs) return;
    this.lastPatch = now;
    const value: Progress = {
      ...p,
      ...(this.newestCheckpoint ? { checkpoint: this.newestCheckpoint } : {}),
      time: new Date(now).toISOString(),
    };
    // Patches never overlap and never block a step; a failure only warns.
    this.inFlight = this.inFlight.then(async () => {
      const patch = await this.patcher;
      if (!patch || this.warned) return;
      try {
        await patch(JSON.stringify(value));
      } catch (err) {
        this.warnOnce(err);
      }
    });
  }

  /** Wait for the last patch (call before exiting). */
  async flush(): Promise<void> {
    await this.inFlight;
  }
}

/** True when this process runs as a stage pod (the operator sets BTX_STAGE). */
export function runningAsStage(env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(env[ENV.stage]);
}

/** Write the stage's JSON termination message where Kubernetes (or the embedded kubelet) reads it. */
export async function writeTerminationMessage(message: TerminationMessage): Promise<void> {
  await writeFile(hostPath(TERMINATION_MESSAGE_PATH), JSON.stringify(message));
}
