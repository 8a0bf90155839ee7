// Per-kind defaulting and validation on every write (the real server's strategies and admission
// plugins), and schema handling for custom resources.
import {
  defaultDeployment,
  defaultJob,
  defaultNamespace,
  defaultPod,
  defaultService,
  validateDeployment,
  validateJob,
  validatePodSpec,
  validatePodUpdate,
} from './builtinKinds.js';
import { defaultCrd, validateCrd } from '../registry/crd.js';
import { fe, invalid, type FieldError } from '../apimachinery/errors.js';
import { dns1123LabelErrors, dns1123SubdomainErrors, isObject, type KObject } from '../apimachinery/meta.js';
import type { ResourceInfo } from '../registry/resources.js';
import { applyDefaults, prune, validate, type Schema } from './structuralSchema.js';
import { validateRules } from './validationRules.js';

export interface AdmitResult {
  /** Fields dropped by pruning (custom resources), for strict field validation. */
  pruned: string[];
}

function validateName(info: ResourceInfo, obj: KObject, errs: FieldError[]): void {
  const name = obj.metadata.name ?? '';
  const msgs = info.resource === 'namespaces' ? dns1123LabelErrors(name) : dns1123SubdomainErrors(name);
  for (const m of msgs) errs.push(fe.invalid('metadata.name', name, m));
  const ns = obj.metadata.namespace;
  if (info.namespaced && ns)
    for (const m of dns1123LabelErrors(ns)) errs.push(fe.invalid('metadata.namespace', ns, m));
  for (const [k, v] of Object.entries(obj.metadata.labels ?? {})) {
    if (typeof v !== 'string') errs.push(fe.invalid(`metadata.labels`, v, 'must be a string'));
    else if (v.length > 63 || !/^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/.test(v))
      errs.push(
        fe.invalid(
          'metadata.labels',
          v,
          "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
        ),
      );
    if (
      !/^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/.test(
        k,
      )
    )
      errs.push(
        fe.invalid(
          'metadata.labels',
          k,
          "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
        ),
      );
  }
}

/**
 * Defaults and validates `obj` in place for a create (`old` undefined) or an update; throws 422
 * Invalid with field causes.
 */
export function admit(
  info: ResourceInfo,
  version: string,
  obj: KObject,
  old: KObject | undefined,
): AdmitResult {
  const errs: FieldError[] = [];
  const isCreate = !old;
  const pruned: string[] = [];
  if (info.builtin) {
    switch (`${info.group}/${info.resource}`) {
      case '/pods':
        defaultPod(obj, isCreate);
        validatePodSpec(isObject(obj.spec) ? obj.spec : {}, 'spec', errs);
        if (old) validatePodUpdate(obj, old, errs);
        break;
      case 'batch/jobs':
        defaultJob(obj, isCreate);
        validateJob(obj, old, errs);
        break;
      case '/namespaces':
        defaultNamespace(obj, isCreate);
        break;
      case '/secrets':
        if (!obj.type) obj.type = 'Opaque';
        break;
      case '/services':
        defaultService(obj, old);
        break;
      case 'apps/deployments':
        defaultDeployment(obj, isCreate);
        validateDeployment(obj, errs);
        break;
      case 'apiextensions.k8s.io/customresourcedefinitions':
        defaultCrd(obj);
        validateCrd(obj, errs);
        break;
    }
  } else {
    const schema = info.schemas?.[version] as Schema | undefined;
    if (schema) {
      applyDefaults(schema, obj);
      prune(schema, obj, '', pruned, true);
      // metadata, apiVersion and kind are the server's business, not the schema's.
      const { metadata: _m, apiVersion: _a, kind: _k, ...rest } = obj;
      const bodySchema: Schema = { ...schema, properties: { ...(schema.properties ?? {}) } };
      delete bodySchema.properties!.metadata;
      delete bodySchema.properties!.apiVersion;
      delete bodySchema.properties!.kind;
      validate(bodySchema, rest, '', errs);
      // CEL rules run on well-typed data only.
      if (errs.length === 0) {
        const { metadata: _om, apiVersion: _oa, kind: _ok, ...oldRest } = old ?? ({} as KObject);
        validateRules(bodySchema, rest, old ? oldRest : undefined, '', errs);
      }
    }
  }
  validateName(info, obj, errs);
  if (errs.length) throw invalid(info.kind, info.group, obj.metadata.name ?? '', errs);
  return { pruned };
}
