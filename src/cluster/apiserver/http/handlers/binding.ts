// pods/{name}/binding: the scheduler's way to set spec.nodeName (409 when the pod is already bound).
import type { ServerResponse } from 'node:http';
import { badRequest, conflict, notFound } from '../../apimachinery/errors.js';
import { clone, isObject, nowTimestamp } from '../../apimachinery/meta.js';
import { storageOf, type ResourceInfo } from '../../registry/resources.js';
import { sendJson } from '../codec.js';
import type { RouteContext } from './scope.js';

/** pods/{name}/binding, as the scheduler binds a pod to a node. */
export function bindPod(
  ctx: RouteContext,
  info: ResourceInfo,
  ns: string,
  name: string,
  body: unknown,
  res: ServerResponse,
): void {
  const pod = ctx.api.get(info, ns, name);
  const target = isObject(body) && isObject(body.target) ? body.target : undefined;
  if (!target || typeof target.name !== 'string' || !target.name)
    throw badRequest('Binding target name is required');
  const spec = isObject(pod.spec) ? pod.spec : {};
  if (spec.nodeName)
    throw conflict('', 'pods', name, `pod ${name} is already assigned to node "${String(spec.nodeName)}"`);
  if (pod.metadata.deletionTimestamp) throw notFound('', 'pods', name);
  const next = clone(pod);
  (next.spec as Record<string, unknown>).nodeName = target.name;
  const status = isObject(next.status) ? next.status : {};
  const conditions = (Array.isArray(status.conditions) ? status.conditions : []).filter(
    (c) => !(isObject(c) && c.type === 'PodScheduled'),
  );
  conditions.push({
    type: 'PodScheduled',
    status: 'True',
    lastProbeTime: null,
    lastTransitionTime: nowTimestamp(),
  });
  next.status = { ...status, conditions };
  ctx.api.store.write(storageOf(info), next, 'MODIFIED');
  sendJson(res, 201, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', code: 201 });
}
