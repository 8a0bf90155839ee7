// POST: create an object (or, on pods/{name}/binding, bind a pod; on the self reviews, answer).
import { methodNotAllowed } from '../../apimachinery/errors.js';
import { apiVersionOf } from '../../registry/resources.js';
import { parseObjectBody, readRawBody, sendJson } from '../codec.js';
import { bindPod } from './binding.js';
import { answerReview } from './reviews.js';
import { respondObject, writeOptions, type RequestScope } from './scope.js';

export async function createResource(s: RequestScope): Promise<void> {
  const { ctx, info, path, ns, req } = s;
  const body = parseObjectBody(req.headers['content-type'], await readRawBody(req));
  if (path.name && path.subresource === 'binding') return bindPod(ctx, info, ns, path.name, body, s.res);
  if (path.name) throw methodNotAllowed();
  if (info.resource === 'selfsubjectaccessreviews' || info.resource === 'selfsubjectreviews')
    return sendJson(s.res, 201, answerReview(info.kind, apiVersionOf(info.group, path.version), body));
  const obj = ctx.api.create(info, path.version, ns, body, writeOptions(s));
  return respondObject(s, 201, obj);
}
