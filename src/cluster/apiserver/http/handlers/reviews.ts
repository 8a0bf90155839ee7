// SelfSubjectAccessReview (`kubectl auth can-i`) and SelfSubjectReview (`kubectl auth whoami`):
// answered from the one identity the server knows, never stored. The bearer token is the cluster
// admin's, and RBAC objects are stored but not enforced, so every access review is allowed.
import { badRequest } from '../../apimachinery/errors.js';
import { isObject } from '../../apimachinery/meta.js';

export const ADMIN_USER = { username: 'btx-admin', groups: ['system:masters', 'system:authenticated'] };

export function answerReview(kind: string, apiVersion: string, body: unknown): Record<string, unknown> {
  if (!isObject(body)) throw badRequest('the body of the request was in an unknown format');
  const metadata = isObject(body.metadata) ? body.metadata : {};
  if (kind === 'SelfSubjectReview')
    return {
      kind,
      apiVersion,
      metadata: { ...metadata, creationTimestamp: null },
      status: { userInfo: ADMIN_USER },
    };
  return {
    kind,
    apiVersion,
    metadata: { ...metadata, creationTimestamp: null },
    spec: isObject(body.spec) ? body.spec : {},
    status: { allowed: true, reason: 'the embedded API server does not enforce RBAC' },
  };
}
