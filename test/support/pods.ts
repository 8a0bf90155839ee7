// The one pod builder of the tests (before: a createPod in each kubelet test file): a pod named
// `name` that runs once (restartPolicy Never) unless the spec overrides it, and a container that
// runs a node script, since every image here is this node process with a script; and the one wait
// on a pod's state (before: a waitForPod in each kubelet test file).
import type { CoreV1Api, V1Container, V1ObjectMeta, V1Pod, V1PodSpec } from '@kubernetes/client-node';
import { waitForState } from './waitFor.js';

/** A Pod as a client sends it: apiVersion, kind, the name and what is given (no containers unless
 * `spec` has some); the API server defaults the rest. */
export function podManifest(
  name: string,
  spec: Partial<V1PodSpec> = {},
  metadata: Partial<V1ObjectMeta> = {},
): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, ...metadata },
    spec: { containers: [], ...spec },
  };
}

/** A pod named `name` that runs once: restartPolicy Never, unless `spec` says otherwise. */
export function testPod(
  name: string,
  spec: Partial<V1PodSpec> = {},
  metadata: Partial<V1ObjectMeta> = {},
): V1Pod {
  return podManifest(name, { restartPolicy: 'Never', ...spec }, metadata);
}

/** A container named main, image node:20, that runs `script` in this node binary. */
export function nodeContainer(script: string, extra: Partial<V1Container> = {}): V1Container {
  return { name: 'main', image: 'node:20', command: [process.execPath, '-e', script], ...extra };
}

/** Reads pod `name` until `ok` holds for it (a pod not created yet is read again); the last status on timeout. */
export function waitForPod(
  core: CoreV1Api,
  name: string,
  ok: (p: V1Pod) => boolean,
  what: string,
  timeoutMs = 20_000,
  namespace = 'default',
): Promise<V1Pod> {
  return waitForState(
    `pod ${name} to get ${what}`,
    () => core.readNamespacedPod({ name, namespace }),
    ok,
    timeoutMs,
  );
}

/** Waits until pod `name` is deleted (its reads answer 404). */
export async function waitForPodGone(
  core: CoreV1Api,
  name: string,
  timeoutMs = 20_000,
  namespace = 'default',
): Promise<void> {
  const read = async () => {
    try {
      return await core.readNamespacedPod({ name, namespace });
    } catch (err) {
      if ((err as { code?: number }).code !== 404) throw err;
      return undefined;
    }
  };
  await waitForState(`pod ${name} to be deleted`, read, (p) => p === undefined, timeoutMs);
}
