// Where the embedded kubelet keeps container logs, and where the API server reads them for
// GET pods/{name}/log. One file per container and restart, as the real kubelet does.
import { join } from 'node:path';

export function podDir(dataDir: string, namespace: string, pod: string, uid: string): string {
  return join(dataDir, 'pods', namespace, `${pod}_${uid}`);
}

export function containerLogPath(
  dataDir: string,
  namespace: string,
  pod: string,
  uid: string,
  container: string,
  restartCount = 0,
): string {
  return join(podDir(dataDir, namespace, pod, uid), container, `${restartCount}.log`);
}
