// PATCH: JSON patch, merge patch, strategic merge patch or server-side apply (which may create).
import { methodNotAllowed, unsupportedMediaType } from '../../apimachinery/errors.js';
import { PATCH_TYPES } from '../../registry/genericRegistry.js';
import { mediaType, readBody } from '../codec.js';
import { boolParam, respondObject, writeOptions, type RequestScope } from './scope.js';

export async function patchResource(s: RequestScope): Promise<void> {
  const { ctx, info, path, ns, q, req } = s;
  if (!path.name) throw methodNotAllowed();
  const type = mediaType(req.headers['content-type']);
  if (!Object.values(PATCH_TYPES).includes(type as never))
    throw unsupportedMediaType([
      PATCH_TYPES.json,
      PATCH_TYPES.merge,
      PATCH_TYPES.apply,
      PATCH_TYPES.strategic,
    ]);
  const { object, created } = ctx.api.patch(
    info,
    path.version,
    ns,
    path.name,
    type,
    await readBody(req),
    path.subresource,
    {
      ...writeOptions(s),
      force: boolParam(q, 'force'),
      fieldManager: q.get('fieldManager') ?? undefined,
    },
  );
  return respondObject(s, created ? 201 : 200, object);
}
