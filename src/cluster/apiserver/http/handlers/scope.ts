// What every resource handler works from (after client-go's and the apiserver's RequestScope): the
// resource, the parsed path, the query, the representation asked for, and how to answer one object
// (plain JSON, a Table, or PartialObjectMetadata, with the request's Warning headers).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Api } from '../../registry/genericRegistry.js';
import { badRequest } from '../../apimachinery/errors.js';
import type { KObject } from '../../apimachinery/meta.js';
import type { ResourceInfo } from '../../registry/resources.js';
import { toTable, type IncludeObject } from '../../discovery/tables.js';
import { toView } from '../../registry/conversion.js';
import type { Watcher } from '../../watch/watcher.js';
import { sendJson, type AcceptedAs } from '../codec.js';

export interface ResourcePath {
  group: string;
  version: string;
  namespace: string | undefined;
  resource: string;
  name: string | undefined;
  subresource: string | undefined;
  watch: boolean;
}

export interface RouteContext {
  api: Api;
  dataDir: string;
  watchers: Set<Watcher>;
  watchBufferBytes: number;
}

export interface RequestScope {
  ctx: RouteContext;
  info: ResourceInfo;
  path: ResourcePath;
  /** The request's namespace ('' for cluster-scoped requests). */
  ns: string;
  q: URLSearchParams;
  as: AcceptedAs;
  req: IncomingMessage;
  res: ServerResponse;
  includeObject: IncludeObject;
  /** Filled by writes for the response's Warning headers. */
  warnings: string[];
}

export function boolParam(q: URLSearchParams, name: string): boolean {
  const v = q.get(name);
  return v === 'true' || v === '1';
}

export function dryRun(q: URLSearchParams): boolean {
  const v = q.getAll('dryRun');
  if (v.some((x) => x !== 'All'))
    throw badRequest(`dryRun: Unsupported value: "${v.find((x) => x !== 'All')}": supported values: "All"`);
  return v.length > 0;
}

export function intParam(q: URLSearchParams, name: string): number | undefined {
  const v = q.get(name);
  if (v === null || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw badRequest(`invalid value for ${name}: ${v}`);
  return n;
}

/** The options every write takes from the query. */
export function writeOptions(s: RequestScope) {
  return {
    dryRun: dryRun(s.q),
    fieldValidation: s.q.get('fieldValidation') ?? undefined,
    warnings: s.warnings,
  };
}

/** The object as the requested version shows it. */
export function view(s: RequestScope, obj: KObject): KObject {
  return toView(s.info, s.path.version, obj);
}

/** Answers one object in the representation asked for. */
export function respondObject(s: RequestScope, code: number, obj: KObject): void {
  const { res, as, info, path } = s;
  if (s.warnings.length)
    res.setHeader(
      'Warning',
      s.warnings.map((w) => `299 - ${JSON.stringify(w)}`),
    );
  if (as.table)
    return sendJson(
      res,
      code,
      toTable(
        info,
        path.version,
        [view(s, obj)],
        { resourceVersion: obj.metadata.resourceVersion },
        s.includeObject,
      ),
    );
  if (as.partialMetadata)
    return sendJson(res, code, {
      kind: 'PartialObjectMetadata',
      apiVersion: 'meta.k8s.io/v1',
      metadata: obj.metadata,
    });
  sendJson(res, code, view(s, obj));
}
