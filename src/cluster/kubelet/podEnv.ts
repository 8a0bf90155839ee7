// A container's environment as the kubelet builds it: `env` in order (each value may refer to the
// ones before it), `valueFrom` through the downward API, ConfigMaps and Secrets, and `envFrom`.
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { expand } from './expand.js';
import { parseQuantity } from './resources.js';

/** Reads a key of a ConfigMap or Secret (Secret values decoded); undefined when absent. */
export interface EnvSources {
  configMapKey(namespace: string, name: string, key: string): Promise<string | undefined>;
  secretKey(namespace: string, name: string, key: string): Promise<string | undefined>;
  configMapData(namespace: string, name: string): Promise<Record<string, string> | undefined>;
  secretData(namespace: string, name: string): Promise<Record<string, string> | undefined>;
}

/** A ConfigMap's or Secret's key for `valueFrom`; missing is an error unless the reference is optional. */
async function keyRefValue(
  kind: 'ConfigMap' | 'Secret',
  ref: { name?: string; key: string; optional?: boolean },
  namespace: string,
  read: EnvSources['configMapKey'],
): Promise<string | undefined> {
  const value = await read(namespace, ref.name ?? '', ref.key);
  if (value === undefined && !ref.optional)
    throw new Error(`couldn't find key ${ref.key} in ${kind} ${namespace}/${ref.name}`);
  return value;
}

/** The downward API's fieldRef paths the kubelet supports. */
export function fieldRefValue(pod: V1Pod, fieldPath: string, podIP: string): string {
  const meta = pod.metadata ?? {};
  const mapKey = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(fieldPath);
  if (mapKey) {
    const map = mapKey[1] === 'labels' ? meta.labels : meta.annotations;
    return map?.[mapKey[2] ?? ''] ?? '';
  }
  switch (fieldPath) {
    case 'metadata.name':
      return meta.name ?? '';
    case 'metadata.namespace':
      return meta.namespace ?? '';
    case 'metadata.uid':
      return meta.uid ?? '';
    case 'metadata.labels':
      return Object.entries(meta.labels ?? {})
        .map(([k, v]) => `${k}="${v}"`)
        .join('\n');
    case 'metadata.annotations':
      return Object.entries(meta.annotations ?? {})
        .map(([k, v]) => `${k}="${v}"`)
        .join('\n');
    case 'spec.nodeName':
      return pod.spec?.nodeName ?? '';
    case 'spec.serviceAccountName':
      return pod.spec?.serviceAccountName ?? 'default';
    case 'status.podIP':
    case 'status.hostIP':
      return podIP;
    case 'status.podIPs':
    case 'status.hostIPs':
      return podIP;
    default:
      throw new Error(`unsupported fieldRef fieldPath ${JSON.stringify(fieldPath)}`);
  }
}

function resourceFieldValue(container: V1Container, resource: string, divisor: string | undefined): string {
  const [kind, name] = resource.split('.', 2);
  const table = kind === 'limits' ? container.resources?.limits : container.resources?.requests;
  const raw = table?.[name ?? ''];
  if (raw === undefined) return '0';
  return String(Math.ceil(parseQuantity(String(raw)) / parseQuantity(divisor ?? '1')));
}

/**
 * The container's own variables (base variables the kubelet adds come first and may be overridden).
 * Throws with a clear message when a required ConfigMap/Secret key is missing, as the kubelet's
 * CreateContainerConfigError does.
 */
export async function containerEnv(
  pod: V1Pod,
  container: V1Container,
  podIP: string,
  sources: EnvSources,
  base: Record<string, string> = {},
): Promise<Record<string, string>> {
  const namespace = pod.metadata?.namespace ?? 'default';
  const env: Record<string, string> = { ...base };
  for (const from of container.envFrom ?? []) {
    const prefix = from.prefix ?? '';
    let data: Record<string, string> | undefined;
    if (from.configMapRef) {
      data = await sources.configMapData(namespace, from.configMapRef.name ?? '');
      if (!data && !from.configMapRef.optional)
        throw new Error(`configmap "${from.configMapRef.name}" not found`);
    } else if (from.secretRef) {
      data = await sources.secretData(namespace, from.secretRef.name ?? '');
      if (!data && !from.secretRef.optional) throw new Error(`secret "${from.secretRef.name}" not found`);
    }
    for (const [k, v] of Object.entries(data ?? {})) env[prefix + k] = v;
  }
  for (const e of container.env ?? []) {
    if (e.valueFrom === undefined) {
      env[e.name] = expand(e.value ?? '', (n) => env[n]);
      continue;
    }
    const from = e.valueFrom;
    if (from.fieldRef) {
      env[e.name] = fieldRefValue(pod, from.fieldRef.fieldPath, podIP);
    } else if (from.resourceFieldRef) {
      const target = from.resourceFieldRef.containerName
        ? (pod.spec?.containers.find((c) => c.name === from.resourceFieldRef?.containerName) ?? container)
        : container;
      env[e.name] = resourceFieldValue(target, from.resourceFieldRef.resource, from.resourceFieldRef.divisor);
    } else if (from.configMapKeyRef || from.secretKeyRef) {
      const value = from.configMapKeyRef
        ? await keyRefValue('ConfigMap', from.configMapKeyRef, namespace, sources.configMapKey.bind(sources))
        : await keyRefValue('Secret', from.secretKeyRef!, namespace, sources.secretKey.bind(sources));
      if (value !== undefined) env[e.name] = value;
    }
  }
  return env;
}

/** Command and args after $(VAR) expansion against the container's final environment. */
export function expandCommand(argv: string[], env: Record<string, string>): string[] {
  return argv.map((a) => expand(a, (n) => env[n]));
}
