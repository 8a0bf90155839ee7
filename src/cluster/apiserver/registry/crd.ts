// CustomResourceDefinitions: validation and defaults of the CRD itself, its status conditions
// (NamesAccepted, Established), and the ResourceInfo under which its custom resources are served.
import { fe, type FieldError } from '../apimachinery/errors.js';
import { isObject, nowTimestamp, type JsonObject, type KObject } from '../apimachinery/meta.js';
import { ALL_VERBS, type PrinterColumn, type Registry, type ResourceInfo } from './resources.js';
import type { Schema } from '../admission/structuralSchema.js';

interface CrdNames {
  plural?: string;
  singular?: string;
  kind?: string;
  listKind?: string;
  shortNames?: string[];
  categories?: string[];
}

interface CrdVersion {
  name?: string;
  served?: boolean;
  storage?: boolean;
  schema?: { openAPIV3Schema?: Schema };
  subresources?: { status?: object; scale?: object };
  additionalPrinterColumns?: PrinterColumn[];
}

interface CrdSpec {
  group?: string;
  names?: CrdNames;
  scope?: string;
  versions?: CrdVersion[];
}

function specOf(crd: KObject): CrdSpec {
  return (isObject(crd.spec) ? crd.spec : {}) as CrdSpec;
}

export function defaultCrd(crd: KObject): void {
  const spec = specOf(crd);
  crd.spec = spec;
  const names = spec.names ?? {};
  if (names.kind) {
    names.singular ??= names.kind.toLowerCase();
    names.listKind ??= `${names.kind}List`;
  }
  const s = spec as Record<string, unknown>;
  s.conversion ??= { strategy: 'None' };
}

export function validateCrd(crd: KObject, errs: FieldError[]): void {
  const spec = specOf(crd);
  const names = spec.names ?? {};
  if (!spec.group) errs.push(fe.required('spec.group'));
  else if (!spec.group.includes('.'))
    errs.push(fe.invalid('spec.group', spec.group, 'should be a domain with at least one dot'));
  if (!names.plural) errs.push(fe.required('spec.names.plural'));
  if (!names.kind) errs.push(fe.required('spec.names.kind'));
  if (names.plural && spec.group && crd.metadata.name !== `${names.plural}.${spec.group}`)
    errs.push(fe.invalid('metadata.name', crd.metadata.name, 'must be spec.names.plural+"."+spec.group'));
  if (spec.scope !== 'Namespaced' && spec.scope !== 'Cluster') {
    if (!spec.scope) errs.push(fe.required('spec.scope'));
    else errs.push(fe.notSupported('spec.scope', spec.scope, ['Cluster', 'Namespaced']));
  }
  const versions = spec.versions ?? [];
  if (versions.length === 0)
    errs.push(
      fe.invalid('spec.versions', versions, 'must have exactly one version marked as storage version'),
    );
  else if (versions.filter((v) => v.storage).length !== 1)
    errs.push(
      fe.invalid('spec.versions', versions, 'must have exactly one version marked as storage version'),
    );
  versions.forEach((v, i) => {
    if (!v.name) errs.push(fe.required(`spec.versions[${i}].name`));
    if (!v.schema?.openAPIV3Schema)
      errs.push(fe.required(`spec.versions[${i}].schema.openAPIV3Schema`, 'schemas are required'));
  });
}

/** Status the real apiextensions controllers would set once names are checked. */
export function crdStatus(crd: KObject, registry: Registry, previous: unknown): JsonObject {
  const spec = specOf(crd);
  const names = spec.names ?? {};
  const existing = registry.get(spec.group ?? '', names.plural ?? '');
  const conflict = existing && (existing.builtin || existing.crdUid !== crd.metadata.uid);
  const now = nowTimestamp();
  const prevConds =
    isObject(previous) && Array.isArray(previous.conditions) ? (previous.conditions as JsonObject[]) : [];
  const cond = (type: string, ok: boolean, reason: string, message: string): JsonObject => {
    const before = prevConds.find((c) => c.type === type);
    const status = ok ? 'True' : 'False';
    return {
      type,
      status,
      lastTransitionTime: before && before.status === status ? before.lastTransitionTime! : now,
      reason,
      message,
    };
  };
  const storage = (spec.versions ?? []).find((v) => v.storage)?.name;
  const storedBefore =
    isObject(previous) && Array.isArray(previous.storedVersions) ? (previous.storedVersions as string[]) : [];
  return {
    conditions: conflict
      ? [
          cond('NamesAccepted', false, 'MultipleNameConflict', `"${names.plural}" is already in use`),
          cond('Established', false, 'NotAccepted', 'not all names are accepted'),
        ]
      : [
          cond('NamesAccepted', true, 'NoConflicts', 'no conflicts found'),
          cond('Established', true, 'InitialNamesAccepted', 'the initial names have been accepted'),
        ],
    acceptedNames: conflict ? { plural: '', kind: '' } : (names as JsonObject),
    storedVersions: [...new Set([...storedBefore, ...(storage ? [storage] : [])])],
  };
}

export function isEstablished(crd: KObject): boolean {
  const status = isObject(crd.status) ? crd.status : {};
  const conds = Array.isArray(status.conditions) ? status.conditions : [];
  return conds.some((c) => isObject(c) && c.type === 'Established' && c.status === 'True');
}

/** The served resource a CRD defines. */
export function crdResource(crd: KObject): ResourceInfo {
  const spec = specOf(crd);
  const names = spec.names ?? {};
  const served = (spec.versions ?? []).filter((v) => v.served !== false && v.name);
  // Storage version first: it is the one objects are stored in.
  served.sort((a, b) => Number(!!b.storage) - Number(!!a.storage));
  const hasStatus = served.some((v) => v.subresources?.status !== undefined);
  const schemas: Record<string, JsonObject | undefined> = {};
  const printerColumns: Record<string, PrinterColumn[]> = {};
  for (const v of served) {
    schemas[v.name!] = v.schema?.openAPIV3Schema as JsonObject | undefined;
    printerColumns[v.name!] = v.additionalPrinterColumns ?? [];
  }
  return {
    group: spec.group!,
    versions: served.map((v) => v.name!),
    resource: names.plural!,
    kind: names.kind!,
    listKind: names.listKind ?? `${names.kind}List`,
    singular: names.singular ?? names.kind!.toLowerCase(),
    namespaced: spec.scope !== 'Cluster',
    shortNames: names.shortNames ?? [],
    categories: names.categories ?? [],
    verbs: ALL_VERBS,
    subresources: hasStatus ? ['status'] : [],
    builtin: false,
    schemas,
    printerColumns,
    crdUid: crd.metadata.uid,
  };
}
