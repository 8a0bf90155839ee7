// Defaulting and validation of the built-in kinds that have behaviour here (pods, jobs, namespaces,
// services, deployments), following the real server's defaults and messages. Other built-in kinds
// are stored as given.
import { fe, type FieldError } from '../apimachinery/errors.js';
import { deepEqual, dns1123LabelErrors, isObject, type KObject } from '../apimachinery/meta.js';

type Obj = Record<string, unknown>;

function obj(v: unknown): Obj {
  return isObject(v) ? v : {};
}

/** `o[key]` as an object, put there (an empty one) when it is missing or not an object, so defaulting
 * can fill it in. */
function objectAt(o: Record<string, unknown>, key: string): Obj {
  const v = obj(o[key]);
  o[key] = v;
  return v;
}

function setDefault(o: Obj, key: string, value: unknown): void {
  if (o[key] === undefined || o[key] === null || o[key] === '') o[key] = value;
}

// --- pods --------------------------------------------------------------------------------------

function defaultContainer(c: Obj): void {
  setDefault(c, 'terminationMessagePath', '/dev/termination-log');
  setDefault(c, 'terminationMessagePolicy', 'File');
  const image = typeof c.image === 'string' ? c.image : '';
  const tagged = /:[^/]+$/.test(image.split('@')[0]!) && !image.endsWith(':latest');
  setDefault(c, 'imagePullPolicy', tagged || image.includes('@') ? 'IfNotPresent' : 'Always');
  setDefault(c, 'resources', {});
  for (const p of Array.isArray(c.ports) ? c.ports : []) if (isObject(p)) setDefault(p, 'protocol', 'TCP');
  for (const e of Array.isArray(c.env) ? c.env : []) {
    const ref =
      isObject(e) && isObject(e.valueFrom) && isObject(e.valueFrom.fieldRef)
        ? e.valueFrom.fieldRef
        : undefined;
    if (ref) setDefault(ref, 'apiVersion', 'v1');
  }
}

/** PodSpec defaults, shared by pods and pod templates (jobs, deployments). */
export function defaultPodSpec(spec: Obj): void {
  setDefault(spec, 'restartPolicy', 'Always');
  setDefault(spec, 'terminationGracePeriodSeconds', 30);
  setDefault(spec, 'dnsPolicy', 'ClusterFirst');
  setDefault(spec, 'securityContext', {});
  setDefault(spec, 'schedulerName', 'default-scheduler');
  for (const list of ['containers', 'initContainers']) {
    for (const c of Array.isArray(spec[list]) ? spec[list] : []) if (isObject(c)) defaultContainer(c);
  }
  for (const v of Array.isArray(spec.volumes) ? spec.volumes : []) {
    if (!isObject(v)) continue;
    for (const src of ['secret', 'configMap']) if (isObject(v[src])) setDefault(v[src], 'defaultMode', 420);
  }
}

function qosClass(spec: Obj): string {
  const containers = (Array.isArray(spec.containers) ? spec.containers : []).filter(isObject);
  let any = false;
  let guaranteed = containers.length > 0;
  for (const c of containers) {
    const r = obj(c.resources);
    const req = obj(r.requests);
    const lim = obj(r.limits);
    if (Object.keys(req).length || Object.keys(lim).length) any = true;
    for (const res of ['cpu', 'memory']) {
      if (lim[res] === undefined || (req[res] !== undefined && req[res] !== lim[res])) guaranteed = false;
    }
  }
  if (!any) return 'BestEffort';
  return guaranteed ? 'Guaranteed' : 'Burstable';
}

export function defaultPod(pod: KObject, isCreate: boolean): void {
  const spec = objectAt(pod, 'spec');
  defaultPodSpec(spec);
  // The ServiceAccount admission plugin.
  setDefault(spec, 'serviceAccountName', 'default');
  setDefault(spec, 'serviceAccount', spec.serviceAccountName);
  setDefault(spec, 'enableServiceLinks', true);
  setDefault(spec, 'preemptionPolicy', 'PreemptLowerPriority');
  setDefault(spec, 'priority', 0);
  // The DefaultTolerationSeconds admission plugin.
  if (isCreate) {
    const tolerations = Array.isArray(spec.tolerations) ? [...spec.tolerations] : [];
    for (const key of ['node.kubernetes.io/not-ready', 'node.kubernetes.io/unreachable']) {
      if (!tolerations.some((t) => isObject(t) && t.key === key))
        tolerations.push({ key, operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 });
    }
    spec.tolerations = tolerations;
    pod.status = { phase: 'Pending', qosClass: qosClass(spec) };
  }
}

/**
 * A path that must stay inside its volume (a mount's subPath), worded as the real server words it:
 * the kubelet joins it to the volume's folder, so `..` or an absolute path would reach the host.
 */
function localDescendingPathErrors(path: string, field: string): FieldError[] {
  const errs: FieldError[] = [];
  if (path.startsWith('/')) errs.push(fe.invalid(field, path, 'must be a relative path'));
  if (path.replace(/\\/g, '/').split('/').includes('..'))
    errs.push(fe.invalid(field, path, "must not contain '..'"));
  return errs;
}

function validateContainers(list: unknown, path: string, errs: FieldError[], required: boolean): void {
  if (list === undefined || (Array.isArray(list) && list.length === 0)) {
    if (required) errs.push(fe.required(path));
    return;
  }
  if (!Array.isArray(list)) return;
  const names = new Set<string>();
  list.forEach((c, i) => {
    const p = `${path}[${i}]`;
    const co = obj(c);
    if (typeof co.name !== 'string' || co.name === '') errs.push(fe.required(`${p}.name`));
    else {
      for (const msg of dns1123LabelErrors(co.name)) errs.push(fe.invalid(`${p}.name`, co.name, msg));
      if (names.has(co.name)) errs.push(fe.duplicate(`${p}.name`, co.name));
      names.add(co.name);
    }
    if (typeof co.image !== 'string' || co.image.trim() === '') errs.push(fe.required(`${p}.image`));
    const tmp = co.terminationMessagePolicy;
    if (tmp !== undefined && tmp !== 'File' && tmp !== 'FallbackToLogsOnError')
      errs.push(fe.notSupported(`${p}.terminationMessagePolicy`, tmp, ['File', 'FallbackToLogsOnError']));
    (Array.isArray(co.env) ? co.env : []).forEach((e, j) => {
      if (!isObject(e) || typeof e.name !== 'string' || e.name === '')
        errs.push(fe.required(`${p}.env[${j}].name`));
    });
    (Array.isArray(co.volumeMounts) ? co.volumeMounts : []).forEach((m, j) => {
      const mount = obj(m);
      for (const key of ['subPath', 'subPathExpr']) {
        const value = mount[key];
        if (typeof value === 'string' && value !== '')
          errs.push(...localDescendingPathErrors(value, `${p}.volumeMounts[${j}].${key}`));
      }
    });
  });
}

export function validatePodSpec(
  spec: Obj,
  path: string,
  errs: FieldError[],
  restartPolicies = ['Always', 'OnFailure', 'Never'],
): void {
  validateContainers(spec.containers, `${path}.containers`, errs, true);
  validateContainers(spec.initContainers, `${path}.initContainers`, errs, false);
  const rp = spec.restartPolicy;
  if (!restartPolicies.includes(rp as string)) {
    if (rp === undefined || rp === '')
      errs.push(
        fe.required(
          `${path}.restartPolicy`,
          `valid values: ${restartPolicies.map((v) => JSON.stringify(v)).join(', ')}`,
        ),
      );
    else errs.push(fe.notSupported(`${path}.restartPolicy`, rp, restartPolicies));
  }
  const grace = spec.terminationGracePeriodSeconds;
  if (typeof grace === 'number' && grace < 0)
    errs.push(
      fe.invalid(`${path}.terminationGracePeriodSeconds`, grace, 'must be greater than or equal to 0'),
    );
  const dns = spec.dnsPolicy;
  if (
    dns !== undefined &&
    !['ClusterFirstWithHostNet', 'ClusterFirst', 'Default', 'None'].includes(dns as string)
  )
    errs.push(
      fe.notSupported(`${path}.dnsPolicy`, dns, [
        'ClusterFirstWithHostNet',
        'ClusterFirst',
        'Default',
        'None',
      ]),
    );
}

/** Everything in a pod's spec except the fields a pod update may change. */
function mutableStripped(spec: Obj): Obj {
  const copy: Obj = { ...spec };
  delete copy.activeDeadlineSeconds;
  delete copy.tolerations;
  delete copy.terminationGracePeriodSeconds;
  copy.containers = (Array.isArray(spec.containers) ? spec.containers : []).map((c) => ({
    ...obj(c),
    image: undefined,
  }));
  copy.initContainers = (Array.isArray(spec.initContainers) ? spec.initContainers : []).map((c) => ({
    ...obj(c),
    image: undefined,
  }));
  return copy;
}

export function validatePodUpdate(pod: KObject, old: KObject, errs: FieldError[]): void {
  if (!deepEqual(mutableStripped(obj(pod.spec)), mutableStripped(obj(old.spec)))) {
    errs.push(
      fe.forbidden(
        'spec',
        'pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)',
      ),
    );
  }
}

// --- jobs --------------------------------------------------------------------------------------

export function defaultJob(job: KObject, isCreate: boolean): void {
  const spec = objectAt(job, 'spec');
  setDefault(spec, 'parallelism', 1);
  setDefault(spec, 'completions', 1);
  setDefault(spec, 'backoffLimit', 6);
  setDefault(spec, 'completionMode', 'NonIndexed');
  if (spec.suspend === undefined) spec.suspend = false;
  if (spec.podFailurePolicy === undefined) setDefault(spec, 'podReplacementPolicy', 'TerminatingOrFailed');
  spec.manualSelector = spec.manualSelector === true ? true : undefined;
  if (spec.manualSelector === undefined) delete spec.manualSelector;
  const template = objectAt(spec, 'template');
  const tmeta = objectAt(template, 'metadata');
  if (isCreate && spec.manualSelector !== true) {
    // The real server generates the selector and template labels from the Job's uid.
    const uid = job.metadata.uid!;
    const name = job.metadata.name!;
    spec.selector = { matchLabels: { 'batch.kubernetes.io/controller-uid': uid } };
    tmeta.labels = {
      ...obj(tmeta.labels),
      'batch.kubernetes.io/controller-uid': uid,
      'batch.kubernetes.io/job-name': name,
      'controller-uid': uid,
      'job-name': name,
    };
  }
  const tspec = objectAt(template, 'spec');
  defaultPodSpec(tspec);
  if (isCreate) job.status = {};
}

export function validateJob(job: KObject, old: KObject | undefined, errs: FieldError[]): void {
  const spec = obj(job.spec);
  validatePodSpec(obj(obj(spec.template).spec), 'spec.template.spec', errs, ['OnFailure', 'Never']);
  for (const f of [
    'parallelism',
    'completions',
    'backoffLimit',
    'activeDeadlineSeconds',
    'ttlSecondsAfterFinished',
  ]) {
    const v = spec[f];
    if (typeof v === 'number' && v < 0)
      errs.push(fe.invalid(`spec.${f}`, v, 'must be greater than or equal to 0'));
  }
  if (typeof spec.activeDeadlineSeconds === 'number' && spec.activeDeadlineSeconds === 0)
    errs.push(fe.invalid('spec.activeDeadlineSeconds', 0, 'must be greater than 0'));
  if (old) {
    const oldSpec = obj(old.spec);
    if (!deepEqual(spec.template, oldSpec.template))
      errs.push(fe.invalid('spec.template', spec.template, 'field is immutable'));
    if (!deepEqual(spec.selector, oldSpec.selector))
      errs.push(fe.invalid('spec.selector', spec.selector, 'field is immutable'));
    if (!deepEqual(spec.completions, oldSpec.completions) && spec.completionMode !== 'Indexed')
      errs.push(fe.invalid('spec.completions', spec.completions, 'field is immutable'));
  }
}

// --- namespaces, services, deployments ---------------------------------------------------------

export function defaultNamespace(ns: KObject, isCreate: boolean): void {
  ns.metadata.labels = { ...(ns.metadata.labels ?? {}), 'kubernetes.io/metadata.name': ns.metadata.name! };
  if (isCreate) {
    ns.spec = { finalizers: ['kubernetes'] };
    ns.status = { phase: 'Active' };
  }
}

let nextClusterIp = 1;

export function defaultService(svc: KObject, old: KObject | undefined): void {
  const spec = objectAt(svc, 'spec');
  setDefault(spec, 'type', 'ClusterIP');
  setDefault(spec, 'sessionAffinity', 'None');
  setDefault(spec, 'internalTrafficPolicy', 'Cluster');
  if (spec.clusterIP !== 'None') {
    const prior = old ? obj(old.spec).clusterIP : undefined;
    if (!spec.clusterIP) {
      const n = nextClusterIp++;
      spec.clusterIP = typeof prior === 'string' ? prior : `10.96.${Math.floor(n / 250)}.${(n % 250) + 1}`;
    }
    spec.clusterIPs = [spec.clusterIP];
    setDefault(spec, 'ipFamilies', ['IPv4']);
    setDefault(spec, 'ipFamilyPolicy', 'SingleStack');
  }
  for (const p of Array.isArray(spec.ports) ? spec.ports : []) {
    if (!isObject(p)) continue;
    setDefault(p, 'protocol', 'TCP');
    setDefault(p, 'targetPort', p.port);
  }
  if (!old) svc.status = { loadBalancer: {} };
}

export function defaultDeployment(dep: KObject, isCreate: boolean): void {
  const spec = objectAt(dep, 'spec');
  setDefault(spec, 'replicas', 1);
  setDefault(spec, 'revisionHistoryLimit', 10);
  setDefault(spec, 'progressDeadlineSeconds', 600);
  setDefault(spec, 'strategy', {
    type: 'RollingUpdate',
    rollingUpdate: { maxUnavailable: '25%', maxSurge: '25%' },
  });
  const template = objectAt(spec, 'template');
  const tspec = objectAt(template, 'spec');
  defaultPodSpec(tspec);
  if (isCreate) dep.status = {};
}

export function validateDeployment(dep: KObject, errs: FieldError[]): void {
  const spec = obj(dep.spec);
  if (!isObject(spec.selector)) errs.push(fe.required('spec.selector'));
  validatePodSpec(obj(obj(spec.template).spec), 'spec.template.spec', errs, ['Always']);
}
