// Container paths -> host paths for stage processes run by the embedded kubelet.
//
// In a real pod, /btx is a mounted volume and the trainer opens paths under it directly.
// The embedded kubelet runs pods as plain processes, so it passes BTX_LOCAL_PATHS, a JSON object
// {containerPath: hostFolder} (e.g. {"/btx": "/data/pvc/btx-data", "/dev/termination-log": "..."}),
// and every file the trainer opens goes through hostPath(). Unset (a real cluster), it is the identity.
import { ENV } from '../api/stageContract.js';
import { mapPath, unmapPath, type PathMap } from './pathMap.js';

export type { PathMap } from './pathMap.js';

export function parsePathMap(raw: string | undefined): PathMap {
  if (!raw) return {};
  const parsed: unknown = JSON.parse(raw);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new Error(`${ENV.localPaths} must be a JSON object of container path -> host path`);
  }
  const map: PathMap = {};
  for (const [k, v] of Object.entries(parsed)) {
    if (typeof v !== 'string') throw new Error(`${ENV.localPaths}[${k}] must be a string`);
    map[k] = v;
  }
  return map;
}

/** Map a container path to the host path the current process must open (longest prefix wins). */
export function hostPath(
  containerPath: string,
  map: PathMap = parsePathMap(process.env[ENV.localPaths]),
): string {
  return mapPath(containerPath, map);
}

/** The inverse: a host path back to the container path (for messages other pods will read). */
export function containerPath(
  host: string,
  map: PathMap = parsePathMap(process.env[ENV.localPaths]),
): string {
  return unmapPath(host, map);
}
