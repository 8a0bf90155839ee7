// GET of one object (and its `log` subresource).
import { storageOf } from '../../registry/resources.js';
import { serveLogs } from './log.js';
import { boolParam, intParam, respondObject, type RequestScope } from './scope.js';

export async function getResource(s: RequestScope, name: string): Promise<void> {
  const { ctx, info, ns, q } = s;
  const obj = ctx.api.get(info, ns, name);
  if (s.path.subresource === 'log') {
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
      () => ctx.api.store.get(storageOf(info), ns, name),
      s.req,
      s.res,
    );
  }
  return respondObject(s, 200, obj);
}
