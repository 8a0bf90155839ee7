// Whether a pod may run on the node by its labels: spec.nodeSelector and the required part of
// spec.affinity.nodeAffinity (terms OR'ed, expressions AND'ed), as the scheduler's NodeAffinity plugin.
import type { V1NodeSelectorRequirement, V1Pod } from '@kubernetes/client-node';

function requirementHolds(req: V1NodeSelectorRequirement, values: Record<string, string>): boolean {
  const value = values[req.key];
  const list = req.values ?? [];
  switch (req.operator) {
    case 'In':
      return value !== undefined && list.includes(value);
    case 'NotIn':
      return value === undefined || !list.includes(value);
    case 'Exists':
      return value !== undefined;
    case 'DoesNotExist':
      return value === undefined;
    case 'Gt':
    case 'Lt': {
      const have = Number(value);
      const want = Number(list[0]);
      if (value === undefined || !Number.isInteger(have) || !Number.isInteger(want)) return false;
      return req.operator === 'Gt' ? have > want : have < want;
    }
    default:
      return false;
  }
}

export function matchesNode(pod: V1Pod, nodeName: string, labels: Record<string, string>): boolean {
  const selector = pod.spec?.nodeSelector ?? {};
  if (!Object.entries(selector).every(([k, v]) => labels[k] === v)) return false;
  const required = pod.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution;
  if (!required) return true;
  return required.nodeSelectorTerms.some((term) => {
    const exprs = term.matchExpressions ?? [];
    const fields = term.matchFields ?? [];
    // An empty term matches nothing, as in Kubernetes.
    if (exprs.length === 0 && fields.length === 0) return false;
    return (
      exprs.every((r) => requirementHolds(r, labels)) &&
      fields.every((r) => requirementHolds(r, { 'metadata.name': nodeName }))
    );
  });
}
