// A container path -> host path map, and both directions of a lookup through it (longest prefix
// wins). Plain data with no knowledge of where a map comes from: the embedded kubelet builds one per
// container, and src/util/containerPaths.ts reads the project's from its environment variable.

export type PathMap = Record<string, string>;

function under(path: string, prefix: string): boolean {
  return path === prefix || path.startsWith(prefix.endsWith('/') ? prefix : `${prefix}/`);
}

/** The host path of a container path (unchanged when no prefix of the map covers it). */
export function mapPath(containerPath: string, map: PathMap): string {
  let best: string | undefined;
  for (const prefix of Object.keys(map)) {
    if (under(containerPath, prefix) && (best === undefined || prefix.length > best.length)) best = prefix;
  }
  if (best === undefined) return containerPath;
  return map[best] + containerPath.slice(best.length);
}

/** The container path of a host path: the inverse of mapPath. */
export function unmapPath(host: string, map: PathMap): string {
  let best: [string, string] | undefined;
  for (const [prefix, folder] of Object.entries(map)) {
    if (under(host, folder) && (best === undefined || folder.length > best[1].length))
      best = [prefix, folder];
  }
  if (best === undefined) return host;
  return best[0] + host.slice(best[1].length);
}
