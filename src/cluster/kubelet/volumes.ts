// Where a pod's volumes live on the host, and the container path -> host path map of a container
// (src/util/pathMap.ts): processes share the host's file system, so each mountPath is a folder on
// the host; the kubelet hands the map to the process in the variable its caller names.
import { join, resolve, sep } from 'node:path';
import type { V1Container, V1Pod, V1Volume } from '@kubernetes/client-node';
import type { PathMap } from '../../util/pathMap.js';

/** Kubernetes' default terminationMessagePath (the API server sets it on every container). */
const DEFAULT_TERMINATION_MESSAGE_PATH = '/dev/termination-log';

export interface VolumeLayout {
  dataDir: string;
  /** The pod's own folder (logs, emptyDirs, termination messages). */
  podDir: string;
  /** hostPath volumes under one of these prefixes use the real host path; others map under dataDir. */
  hostPathPrefixes: string[];
}

export type VolumeKind = 'persistentVolumeClaim' | 'emptyDir' | 'hostPath' | 'configMap' | 'secret' | 'other';

export interface VolumeFolder {
  kind: VolumeKind;
  folder: string;
}

function safeSegment(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]/g, '_');
}

function isUnder(path: string, prefix: string): boolean {
  const p = resolve(path);
  const root = resolve(prefix);
  return p === root || p.startsWith(root.endsWith(sep) ? root : root + sep);
}

/** The host folder of one volume. */
export function volumeFolder(volume: V1Volume, namespace: string, layout: VolumeLayout): VolumeFolder {
  const name = safeSegment(volume.name);
  if (volume.persistentVolumeClaim) {
    const claim = safeSegment(volume.persistentVolumeClaim.claimName);
    return {
      kind: 'persistentVolumeClaim',
      folder: join(layout.dataDir, 'volumes', 'pvc', namespace, claim),
    };
  }
  if (volume.hostPath) {
    const path = volume.hostPath.path;
    if (layout.hostPathPrefixes.some((prefix) => isUnder(path, prefix))) {
      return { kind: 'hostPath', folder: resolve(path) };
    }
    // Outside the allowed prefixes, a hostPath is a folder of the cluster (never the real /var, /etc...).
    return { kind: 'hostPath', folder: join(layout.dataDir, 'volumes', 'hostpath', resolve('/', path)) };
  }
  if (volume.emptyDir) return { kind: 'emptyDir', folder: join(layout.podDir, 'volumes', 'empty-dir', name) };
  if (volume.configMap)
    return { kind: 'configMap', folder: join(layout.podDir, 'volumes', 'configmap', name) };
  if (volume.secret) return { kind: 'secret', folder: join(layout.podDir, 'volumes', 'secret', name) };
  return { kind: 'other', folder: join(layout.podDir, 'volumes', 'other', name) };
}

export function podVolumeFolders(pod: V1Pod, layout: VolumeLayout): Map<string, VolumeFolder> {
  const namespace = pod.metadata?.namespace ?? 'default';
  const out = new Map<string, VolumeFolder>();
  for (const v of pod.spec?.volumes ?? []) out.set(v.name, volumeFolder(v, namespace, layout));
  return out;
}

/**
 * A container's path map: every volumeMount (with subPath), the termination message path,
 * and the working directory. Throws when a mount names a volume the pod does not have.
 */
export function containerPathMap(
  container: V1Container,
  volumes: Map<string, VolumeFolder>,
  terminationMessageFile: string,
  workingDirFolder: string,
): PathMap {
  const map: PathMap = {};
  for (const mount of container.volumeMounts ?? []) {
    const volume = volumes.get(mount.name);
    if (!volume) throw new Error(`volume "${mount.name}" not found in the pod's volumes`);
    const folder = mount.subPath ? join(volume.folder, mount.subPath) : volume.folder;
    // The API server refuses such pods; a pod stored before that check must not reach the host either.
    if (!isUnder(folder, volume.folder))
      throw new Error(`subPath "${mount.subPath}" of volume "${mount.name}" leaves the volume`);
    map[mount.mountPath] = folder;
  }
  map[container.terminationMessagePath ?? DEFAULT_TERMINATION_MESSAGE_PATH] = terminationMessageFile;
  // A workingDir outside every mount is the container's own folder (as if it were in the image).
  if (container.workingDir && !Object.keys(map).some((m) => isUnder(container.workingDir ?? '', m))) {
    map[container.workingDir] = workingDirFolder;
  }
  return map;
}
