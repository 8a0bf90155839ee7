// DELETE of one object (200 when removed now, 202 while finalizers or a grace period hold it) or of
// a collection (by label and field selector). DeleteOptions come from the query or the body.
import { isObject } from '../../apimachinery/meta.js';
import { parseFieldSelector, parseLabelSelector } from '../../apimachinery/selectors.js';
import type { DeleteOptions } from '../../registry/genericRegistry.js';
import { apiVersionOf, storageOf } from '../../registry/resources.js';
import { parseObjectBody, readRawBody, sendJson } from '../codec.js';
import { dryRun, intParam, respondObject, view, type RequestScope } from './scope.js';

async function deleteOptions(s: RequestScope): Promise<DeleteOptions> {
  const { q, req } = s;
  const raw = await readRawBody(req);
  const body = raw.toString('utf8').trim()
    ? parseObjectBody(req.headers['content-type'] ?? 'application/json', raw)
    : undefined;
  const o = isObject(body) ? body : {};
  const opts: DeleteOptions = {
    dryRun: dryRun(q) || (Array.isArray(o.dryRun) && o.dryRun.includes('All')),
    propagationPolicy:
      q.get('propagationPolicy') ??
      (typeof o.propagationPolicy === 'string' ? o.propagationPolicy : undefined),
    gracePeriodSeconds:
      intParam(q, 'gracePeriodSeconds') ??
      (typeof o.gracePeriodSeconds === 'number' ? o.gracePeriodSeconds : undefined),
    preconditions: isObject(o.preconditions)
      ? (o.preconditions as DeleteOptions['preconditions'])
      : undefined,
  };
  const orphan =
    q.get('orphanDependents') ??
    (typeof o.orphanDependents === 'boolean' ? String(o.orphanDependents) : null);
  if (!opts.propagationPolicy && orphan !== null)
    opts.propagationPolicy = orphan === 'true' ? 'Orphan' : 'Background';
  return opts;
}

export async function deleteResource(s: RequestScope): Promise<void> {
  const { ctx, info, path, ns, q } = s;
  const { api } = ctx;
  const opts = await deleteOptions(s);
  if (path.name) {
    const gone = api.delete(info, ns, path.name, opts);
    // 200 when removed now, 202 when finalizers or a grace period keep it for a while.
    const stillThere =
      !opts.dryRun &&
      api.store.get(storageOf(info), info.namespaced ? ns : '', path.name)?.metadata.uid ===
        gone.metadata.uid;
    return respondObject(s, stillThere ? 202 : 200, gone);
  }
  const labels = parseLabelSelector(q.get('labelSelector'));
  const fields = parseFieldSelector(q.get('fieldSelector'), info.kind);
  const items = api
    .list(info, path.namespace)
    .filter((x) => labels(x.metadata.labels) && (!fields || fields(x)));
  const deleted = api.deleteCollection(info, items, opts);
  return sendJson(s.res, 200, {
    kind: info.listKind,
    apiVersion: apiVersionOf(info.group, path.version),
    metadata: { resourceVersion: String(api.store.currentRv()) },
    items: deleted.map((o) => view(s, o)),
  });
}
