// GET of a collection, filtered by label and field selectors: a List, a Table or
// PartialObjectMetadataList.
import { parseFieldSelector, parseLabelSelector } from '../../apimachinery/selectors.js';
import { toTable } from '../../discovery/tables.js';
import { apiVersionOf } from '../../registry/resources.js';
import { sendJson } from '../codec.js';
import { view, type RequestScope } from './scope.js';

export function listResource(s: RequestScope): void {
  const { ctx, info, path, q, as, res } = s;
  const labels = parseLabelSelector(q.get('labelSelector'));
  const fields = parseFieldSelector(q.get('fieldSelector'), info.kind);
  const rv = String(ctx.api.store.currentRv());
  const items = ctx.api
    .list(info, path.namespace)
    .filter((o) => labels(o.metadata.labels) && (!fields || fields(o)));
  if (as.table)
    return sendJson(
      res,
      200,
      toTable(
        info,
        path.version,
        items.map((o) => view(s, o)),
        { resourceVersion: rv },
        s.includeObject,
      ),
    );
  if (as.partialMetadata)
    return sendJson(res, 200, {
      kind: 'PartialObjectMetadataList',
      apiVersion: 'meta.k8s.io/v1',
      metadata: { resourceVersion: rv },
      items: items.map((o) => ({
        kind: 'PartialObjectMetadata',
        apiVersion: 'meta.k8s.io/v1',
        metadata: o.metadata,
      })),
    });
  return sendJson(res, 200, {
    kind: info.listKind,
    apiVersion: apiVersionOf(info.group, path.version),
    metadata: { resourceVersion: rv },
    items: items.map((o) => view(s, o)),
  });
}
