// Request routing for resource paths: /api/v1/... and /apis/<group>/<version>/..., namespaced and
// cluster-scoped, subresources (status, log, binding) and the legacy /watch/ prefix.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PATCH_TYPES, type Api, type DeleteOptions } from './api.js';
import {
  ApiError,
  badRequest,
  conflict,
  methodNotAllowed,
  notAcceptable,
  notFound,
  unsupportedMediaType,
} from './errors.js';
import {
  mediaType,
  parseAccept,
  parseObjectBody,
  readBody,
  readRawBody,
  sendJson,
  type AcceptedAs,
} from './http.js';
import { serveLogs } from './logs.js';
import { answerReview } from './reviews.js';
import { clone, isObject, nowTimestamp, type KObject } from './meta.js';
import { apiVersionOf, storageOf, type ResourceInfo } from './registry.js';
import { parseFieldSelector, parseLabelSelector } from './selectors.js';
import { toTable, type IncludeObject } from './table.js';
import { toView } from './views.js';
import { Watcher } from './watch.js';

export interface ResourcePath {
  group: string;
  version: string;
  namespace: string | undefined;
  resource: string;
  name: string | undefined;
  subresource: string | undefined;
  watch: boolean;
}

/** Parses the part of a URL after /api/v1 or /apis/<g>/<v>. */
export function parseResourcePath(group: string, version: string, parts: string[]): ResourcePath | undefined {
  let watch = false;
  if (parts[0] === 'watch') {
    watch = true;
    parts = parts.slice(1);
  }
  if (parts.length === 0) return undefined;
  if (
    parts[0] === 'namespaces' &&
    parts.length >= 3 &&
    !(parts.length === 3 && (parts[2] === 'status' || parts[2] === 'finalize'))
  ) {
    if (parts.length > 5) return undefined;
    return {
      group,
      version,
      namespace: parts[1],
      resource: parts[2]!,
      name: parts[3],
      subresource: parts[4],
      watch,
    };
  }
  if (parts.length > 3) return undefined;
  return {
    group,
    version,
    namespace: undefined,
    resource: parts[0]!,
    name: parts[1],
    subresource: parts[2],
    watch,
  };
}

export interface RouteContext {
  api: Api;
  dataDir: string;
  watchers: Set<Watcher>;
  watchBufferBytes: number;
}

function notFoundPath(): ApiError {
  return new ApiError(404, 'NotFound', 'the server could not find the requested resource', {});
}

function boolParam(q: URLSearchParams, name: string): boolean {
  const v = q.get(name);
  return v === 'true' || v === '1';
}

function dryRun(q: URLSearchParams): boolean {
  const v = q.getAll('dryRun');
  if (v.some((x) => x !== 'All'))
    throw badRequest(`dryRun: Unsupported value: "${v.find((x) => x !== 'All')}": supported values: "All"`);
  return v.length > 0;
}

function intParam(q: URLSearchParams, name: string): number | undefined {
  const v = q.get(name);
  if (v === null || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw badRequest(`invalid value for ${name}: ${v}`);
  return n;
}

export async function handleResource(
  ctx: RouteContext,
  path: ResourcePath,
  url: URL,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const { api } = ctx;
  const info = api.registry.lookup(path.group, path.version, path.resource);
  if (!info) throw notFoundPath();
  if (path.namespace !== undefined && !info.namespaced) throw notFoundPath();
  if (
    path.subresource &&
    !info.subresources.includes(path.subresource) &&
    !(info.resource === 'pods' && info.group === '' && path.subresource === 'binding')
  )
    throw notFoundPath();
  const q = url.searchParams;
  const method = req.method ?? 'GET';
  const ns = path.namespace ?? '';
  const accept = parseAccept(req.headers.accept);
  if (accept === 'unacceptable' && !(method === 'GET' && path.subresource === 'log')) throw notAcceptable();
  const as: AcceptedAs = accept === 'unacceptable' ? {} : accept;
  if (info.namespaced && path.name && path.namespace === undefined) throw notFoundPath();

  const warnings: string[] = [];
  const writeOpts = () => ({
    dryRun: dryRun(q),
    fieldValidation: q.get('fieldValidation') ?? undefined,
    warnings,
  });
  const view = (obj: KObject): KObject => toView(info, path.version, obj);
  const includeObject = (q.get('includeObject') ?? 'Metadata') as IncludeObject;
  const single = (code: number, obj: KObject): void => {
    if (warnings.length)
      res.setHeader(
        'Warning',
        warnings.map((w) => `299 - ${JSON.stringify(w)}`),
      );
    if (as.table)
      return sendJson(
        res,
        code,
        toTable(
          info,
          path.version,
          [view(obj)],
          { resourceVersion: obj.metadata.resourceVersion },
          includeObject,
        ),
      );
    if (as.partialMetadata)
      return sendJson(res, code, {
        kind: 'PartialObjectMetadata',
        apiVersion: 'meta.k8s.io/v1',
        metadata: obj.metadata,
      });
    sendJson(res, code, view(obj));
  };

  switch (method) {
    case 'GET': {
      if (path.name) {
        const obj = api.get(info, ns, path.name);
        if (path.subresource === 'log') {
          return serveLogs(
            ctx.dataDir,
            obj,
            {
              container: q.get('container') ?? undefined,
              follow: boolParam(q, 'follow'),
              previous: boolParam(q, 'previous'),
              tailLines: intParam(q, 'tailLines'),
              limitBytes: intParam(q, 'limitBytes'),
            },
            () => api.store.get(storageOf(info), ns, path.name!),
            req,
            res,
          );
        }
        return single(200, obj);
      }
      const labels = parseLabelSelector(q.get('labelSelector'));
      const fields = parseFieldSelector(q.get('fieldSelector'), info.kind);
      if (path.watch || boolParam(q, 'watch')) {
        const sendInitial = q.get('sendInitialEvents');
        const watcher = new Watcher(
          api.store,
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
            table: as.table
              ? (objs) => toTable(info, path.version, objs, {}, includeObject, true)
              : undefined,
          },
          res,
          (w) => ctx.watchers.delete(w),
        );
        ctx.watchers.add(watcher);
        watcher.start(req);
        return;
      }
      const rv = String(api.store.currentRv());
      const items = api
        .list(info, path.namespace)
        .filter((o) => labels(o.metadata.labels) && (!fields || fields(o)));
      if (as.table)
        return sendJson(
          res,
          200,
          toTable(info, path.version, items.map(view), { resourceVersion: rv }, includeObject),
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
        items: items.map(view),
      });
    }
    case 'POST': {
      const body = parseObjectBody(req.headers['content-type'], await readRawBody(req));
      if (path.name && path.subresource === 'binding') return bind(ctx, info, ns, path.name, body, res);
      if (path.name) throw methodNotAllowed();
      if (info.resource === 'selfsubjectaccessreviews' || info.resource === 'selfsubjectreviews')
        return sendJson(res, 201, answerReview(info.kind, apiVersionOf(info.group, path.version), body));
      const obj = api.create(info, path.version, ns, body, writeOpts());
      return single(201, obj);
    }
    case 'PUT': {
      if (!path.name) throw methodNotAllowed();
      const body = parseObjectBody(req.headers['content-type'], await readRawBody(req));
      const obj = api.update(info, path.version, ns, path.name, body, path.subresource, writeOpts());
      return single(200, obj);
    }
    case 'PATCH': {
      if (!path.name) throw methodNotAllowed();
      const type = mediaType(req.headers['content-type']);
      if (!Object.values(PATCH_TYPES).includes(type as never))
        throw unsupportedMediaType([
          PATCH_TYPES.json,
          PATCH_TYPES.merge,
          PATCH_TYPES.apply,
          PATCH_TYPES.strategic,
        ]);
      const { object, created } = api.patch(
        info,
        path.version,
        ns,
        path.name,
        type,
        await readBody(req),
        path.subresource,
        {
          ...writeOpts(),
          force: boolParam(q, 'force'),
          fieldManager: q.get('fieldManager') ?? undefined,
        },
      );
      return single(created ? 201 : 200, object);
    }
    case 'DELETE': {
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
      if (path.name) {
        const gone = api.delete(info, ns, path.name, opts);
        // 200 when removed now, 202 when finalizers or a grace period keep it for a while.
        const stillThere =
          !opts.dryRun &&
          api.store.get(storageOf(info), info.namespaced ? ns : '', path.name)?.metadata.uid ===
            gone.metadata.uid;
        return single(stillThere ? 202 : 200, gone);
      }
      const labels = parseLabelSelector(q.get('labelSelector'));
      const fields = parseFieldSelector(q.get('fieldSelector'), info.kind);
      const items = api
        .list(info, path.namespace)
        .filter((x) => labels(x.metadata.labels) && (!fields || fields(x)));
      const deleted = api.deleteCollection(info, items, opts);
      return sendJson(res, 200, {
        kind: info.listKind,
        apiVersion: apiVersionOf(info.group, path.version),
        metadata: { resourceVersion: String(api.store.currentRv()) },
        items: deleted.map(view),
      });
    }
    default:
      throw methodNotAllowed();
  }
}

/** pods/{name}/binding, as the scheduler binds a pod to a node. */
function bind(
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
