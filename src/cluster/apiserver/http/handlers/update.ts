// PUT: replace an object (or its status).
import { methodNotAllowed } from '../../apimachinery/errors.js';
import { parseObjectBody, readRawBody } from '../codec.js';
import { respondObject, writeOptions, type RequestScope } from './scope.js';

export async function updateResource(s: RequestScope): Promise<void> {
  const { ctx, info, path, ns, req } = s;
  if (!path.name) throw methodNotAllowed();
  const body = parseObjectBody(req.headers['content-type'], await readRawBody(req));
  const obj = ctx.api.update(info, path.version, ns, path.name, body, path.subresource, writeOptions(s));
  return respondObject(s, 200, obj);
}
