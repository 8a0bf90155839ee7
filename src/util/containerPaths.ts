// Container paths -> host paths for stage processes run by the embedded kubelet.
//
// In a real pod, /btx is a mounted volume and the trainer opens paths under it directly.
// The embedded kubelet runs pods as plain processes, so it passes BTX_LOCAL_PATHS, a JSON object
// {containerPath: hostFolder} (e.g. {"/btx": "/data/pvc/btx-data", "/dev/termination-log": "..."}),
// and every file the trainer opens goes through hostPath(). Unset (a real cluster), it is the identity.
import { ENV } from '../api/stageContract.js';

export type PathMap = Record<string, string>;

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
  let best: string | undefined;
  for (const prefix of Object.keys(map)) {
    const matches =
      containerPath === prefix || containerPath.startsWith(prefix.endsWith('/') ? prefix : `${prefix}/`);
    if (matches && (best === undefined || prefix.length > best.length)) best = prefix;
  }
  if (best === undefined) return containerPath;
  return map[best] + containerPath.slice(best.length);
}

/** The inverse: a host path back to the container path (for messages other pods will read). */
export function containerPath(
  host: string,
  map: PathMap = parsePathMap(process.env[ENV.localPaths]),
): string {
  let best: [string, string] | undefined;
  for (const [prefix, folder] of Object.entries(map)) {
    const matches = host === folder || host.startsWith(folder.endsWith('/') ? folder : `${folder}/`);
    if (matches && (best === undefined || folder.length > best[1].length)) best = [prefix, folder];
  }
  if (best === undefined) return host;
  return best[0] + host.slice(best[1].length);
}
