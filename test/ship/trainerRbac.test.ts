// Least privilege for stage pods (issue 9): a stage pod runs a user-chosen image with the btx-trainer
// ServiceAccount, so its credentials must not be able to change any pod but its own. This evaluates
// the RBAC and the ValidatingAdmissionPolicy the chart renders, as the API server would (RBAC first,
// then the policy's CEL, with the embedded API server's CEL evaluator), for a patch made with a stage
// pod's token (which names its pod in the `authentication.kubernetes.io/pod-name` claim).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileRule, evaluate } from '../../src/cluster/apiserver/admission/cel.js';
import { helmTemplate, type Manifest } from './deployManifests.js';

const WITH_POLICY = ['--api-versions', 'admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy'];

type Rule = { apiGroups: string[]; resources: string[]; verbs: string[] };
type Subject = { kind: string; name: string; namespace?: string };
type Binding = Manifest & { roleRef: { kind: string; name: string }; subjects?: Subject[] };
type Pod = {
  metadata: {
    name: string;
    namespace: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec: object;
};

interface Patch {
  /** The stage pod whose token makes the request. */
  as: { namespace: string; pod: string };
  target: Pod;
  after: Pod;
}

function rbacAllows(objects: Manifest[], p: Patch): boolean {
  const sa = { kind: 'ServiceAccount', name: 'btx-trainer', namespace: p.as.namespace };
  const bindings = objects.filter(
    (o): o is Binding =>
      (o.kind === 'RoleBinding' && o.metadata.namespace === p.target.metadata.namespace) ||
      o.kind === 'ClusterRoleBinding',
  );
  return bindings.some((b) => {
    const bound = (b.subjects ?? []).some(
      (s) => s.kind === sa.kind && s.name === sa.name && s.namespace === sa.namespace,
    );
    if (!bound) return false;
    const role = objects.find(
      (o) =>
        o.kind === b.roleRef.kind &&
        o.metadata.name === b.roleRef.name &&
        (o.kind === 'ClusterRole' || o.metadata.namespace === b.metadata.namespace),
    ) as (Manifest & { rules: Rule[] }) | undefined;
    return (role?.rules ?? []).some(
      (r) => r.apiGroups.includes('') && r.resources.includes('pods') && r.verbs.includes('patch'),
    );
  });
}

/** The chart's admission policies for this request: the first denial's message, or undefined (admitted). */
function policyDenial(objects: Manifest[], p: Patch): string | undefined {
  const request = {
    name: p.target.metadata.name,
    namespace: p.target.metadata.namespace,
    operation: 'UPDATE',
    userInfo: {
      username: `system:serviceaccount:${p.as.namespace}:btx-trainer`,
      extra: { 'authentication.kubernetes.io/pod-name': [p.as.pod] },
    },
  };
  const env = { request, object: p.after, oldObject: p.target };
  const run = (expression: string) => {
    const node = compileRule(expression);
    if (node instanceof Error) throw node;
    return evaluate(node, env) === true;
  };
  for (const b of objects.filter((o) => o.kind === 'ValidatingAdmissionPolicyBinding')) {
    const spec = (
      b as Manifest & {
        spec: {
          policyName: string;
          matchResources: { namespaceSelector: { matchExpressions: { values: string[] }[] } };
        };
      }
    ).spec;
    const inScope = spec.matchResources.namespaceSelector.matchExpressions.every((e) =>
      e.values.includes(request.namespace),
    );
    const policy = objects.find(
      (o) => o.kind === 'ValidatingAdmissionPolicy' && o.metadata.name === spec.policyName,
    ) as Manifest & {
      spec: {
        matchConditions: { expression: string }[];
        validations: { expression: string; message: string }[];
      };
    };
    if (!inScope || !policy.spec.matchConditions.every((c) => run(c.expression))) continue;
    const failed = policy.spec.validations.find((v) => !run(v.expression));
    if (failed) return failed.message;
  }
  return undefined;
}

function allowed(objects: Manifest[], p: Patch): { rbac: boolean; denial?: string } {
  if (!rbacAllows(objects, p)) return { rbac: false };
  const denial = policyDenial(objects, p);
  return denial ? { rbac: true, denial } : { rbac: true };
}

const pod = (
  namespace: string,
  name: string,
  labels: Record<string, string> = { 'btx.ai/run': 'demo' },
): Pod => ({
  metadata: { name, namespace, labels, annotations: {} },
  spec: { containers: [{ name: 'trainer', image: 'x' }] },
});
const annotated = (p: Pod): Pod => ({
  ...p,
  metadata: { ...p.metadata, annotations: { 'btx.ai/progress': '{"step":3}' } },
});

test("a stage pod's credentials may annotate its own pod and nothing else", () => {
  const objects = helmTemplate(
    ['--set', 'watchNamespaces={ml}', ...WITH_POLICY],
    'btx-operator',
    'btx-system',
  );
  const me = { namespace: 'ml', pod: 'demo-expert-code-1' };
  const own = pod('ml', 'demo-expert-code-1');
  assert.deepEqual(allowed(objects, { as: me, target: own, after: annotated(own) }), { rbac: true });

  const other = pod('ml', 'demo-expert-math-1');
  assert.deepEqual(allowed(objects, { as: me, target: other, after: annotated(other) }), {
    rbac: true,
    denial: 'a stage pod may only change its own pod',
  });
  // Relabelling itself (to pass for another run's pod) or changing its spec is refused too.
  const relabelled = { ...own, metadata: { ...own.metadata, labels: { 'btx.ai/run': 'other' } } };
  assert.equal(
    allowed(objects, { as: me, target: own, after: relabelled }).denial,
    "a stage pod may only change its own pod's annotations",
  );
  // The operator's own pod, in the release namespace: no permission there at all.
  const operatorPod = pod('btx-system', 'btx-operator-5d9f', { 'app.kubernetes.io/name': 'btx-operator' });
  assert.deepEqual(allowed(objects, { as: me, target: operatorPod, after: annotated(operatorPod) }), {
    rbac: false,
  });
});

test('without the ValidatingAdmissionPolicy API a stage pod may write nothing, and by default nothing lands in the release namespace', () => {
  const objects = helmTemplate(['--set', 'watchNamespaces={ml}'], 'btx-operator', 'btx-system');
  const own = pod('ml', 'demo-expert-code-1');
  const me = { namespace: 'ml', pod: 'demo-expert-code-1' };
  assert.deepEqual(allowed(objects, { as: me, target: own, after: annotated(own) }), { rbac: false });
  assert.equal(objects.filter((o) => o.kind === 'ValidatingAdmissionPolicy').length, 0);

  const clusterWide = helmTemplate(WITH_POLICY, 'btx-operator', 'btx-system');
  const trainer = clusterWide.filter(
    (o) =>
      o.metadata.name === 'btx-trainer' || o.metadata.labels?.['app.kubernetes.io/component'] === 'trainer',
  );
  assert.deepEqual(
    trainer.map((o) => `${o.kind} ${o.metadata.namespace ?? ''}`),
    [],
  );
});
