// The one pod builder of the tests (before: a createPod in each kubelet test file): a pod named
// `name` that runs once (restartPolicy Never) unless the spec overrides it, and a container that
// runs a node script, since every image here is this node process with a script.
import type { V1Container, V1ObjectMeta, V1Pod, V1PodSpec } from '@kubernetes/client-node';

/** A pod named `name`: restartPolicy Never and no containers, unless `spec` or `metadata` say otherwise. */
export function testPod(
  name: string,
  spec: Partial<V1PodSpec> = {},
  metadata: Partial<V1ObjectMeta> = {},
): V1Pod {
  return {
    metadata: { name, ...metadata },
    spec: { restartPolicy: 'Never', containers: [], ...spec },
  };
}

/** A container named main, image node:20, that runs `script` in this node binary. */
export function nodeContainer(script: string, extra: Partial<V1Container> = {}): V1Container {
  return { name: 'main', image: 'node:20', command: [process.execPath, '-e', script], ...extra };
}
