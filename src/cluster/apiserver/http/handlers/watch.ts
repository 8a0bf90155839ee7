// `?watch=true` (or the legacy /watch/ prefix) on a collection: a Watcher streams the changes.
import { parseFieldSelector, parseLabelSelector } from '../../apimachinery/selectors.js';
import { toTable } from '../../discovery/tables.js';
import { storageOf } from '../../registry/resources.js';
import { Watcher } from '../../watch/watcher.js';
import { boolParam, intParam, type RequestScope } from './scope.js';

export function watchResource(s: RequestScope): void {
  const { ctx, info, path, q } = s;
  const labels = parseLabelSelector(q.get('labelSelector'));
  const fields = parseFieldSelector(q.get('fieldSelector'), info.kind);
  const sendInitial = q.get('sendInitialEvents');
  const watcher = new Watcher(
    ctx.api.store,
    {
      info,
      key: storageOf(info),
      version: path.version,
      namespace: path.namespace,
      labels,
      fields,
      resourceVersion: q.get('resourceVersion') ?? '',
      allowBookmarks: boolParam(q, 'allowWatchBookmarks'),
      sendInitialEvents: sendInitial === null ? undefined : sendInitial === 'true',
      timeoutSeconds: intParam(q, 'timeoutSeconds'),
      maxBuffered: ctx.watchBufferBytes,
      table: s.as.table ? (objs) => toTable(info, path.version, objs, {}, s.includeObject, true) : undefined,
    },
    s.res,
    (w) => ctx.watchers.delete(w),
  );
  ctx.watchers.add(watcher);
  watcher.start(s.req);
}
