// Request routing for resource paths: /api/v1/... and /apis/<group>/<version>/..., namespaced and
// cluster-scoped, subresources (status, log, binding) and the legacy /watch/ prefix. handleResource
// checks what every verb shares, then hands the request to its verb's handler in handlers/.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError, methodNotAllowed, notAcceptable } from '../apimachinery/errors.js';
import type { IncludeObject } from '../discovery/tables.js';
import { parseAccept } from './codec.js';
import { createResource } from './handlers/create.js';
import { deleteResource } from './handlers/delete.js';
import { getResource } from './handlers/get.js';
import { listResource } from './handlers/list.js';
import { patchResource } from './handlers/patch.js';
import { boolParam, type RequestScope, type ResourcePath, type RouteContext } from './handlers/scope.js';
import { updateResource } from './handlers/update.js';
import { watchResource } from './handlers/watch.js';

export type { ResourcePath, RouteContext } from './handlers/scope.js';

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

function notFoundPath(): ApiError {
  return new ApiError(404, 'NotFound', 'the server could not find the requested resource', {});
}

export async function handleResource(
  ctx: RouteContext,
  path: ResourcePath,
  url: URL,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const info = ctx.api.registry.lookup(path.group, path.version, path.resource);
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
  const accept = parseAccept(req.headers.accept);
  if (accept === 'unacceptable' && !(method === 'GET' && path.subresource === 'log')) throw notAcceptable();
  if (info.namespaced && path.name && path.namespace === undefined) throw notFoundPath();
  const scope: RequestScope = {
    ctx,
    info,
    path,
    ns: path.namespace ?? '',
    q,
    as: accept === 'unacceptable' ? {} : accept,
    req,
    res,
    includeObject: (q.get('includeObject') ?? 'Metadata') as IncludeObject,
    warnings: [],
  };
  switch (method) {
    case 'GET':
      if (path.name) return getResource(scope, path.name);
      if (path.watch || boolParam(q, 'watch')) return watchResource(scope);
      return listResource(scope);
    case 'POST':
      return createResource(scope);
    case 'PUT':
      return updateResource(scope);
    case 'PATCH':
      return patchResource(scope);
    case 'DELETE':
      return deleteResource(scope);
    default:
      throw methodNotAllowed();
  }
}
