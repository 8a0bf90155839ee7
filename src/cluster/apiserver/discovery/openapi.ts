// OpenAPI documents: /openapi/v2 (Swagger) and /openapi/v3 (+ one document per group-version)
// carrying every CRD's schema with its descriptions, so `kubectl explain` works for custom resources,
// and every resource's paths with the query parameters the server honours (kubectl reads
// `fieldValidation` from them to choose server-side validation). Built-in kinds have paths but no
// schemas: kubectl then uses its compiled-in types for strategic merge patches.
import { createHash } from 'node:crypto';
import { isObject, type JsonObject } from '../apimachinery/meta.js';
import type { Registry, ResourceInfo } from '../registry/resources.js';

const OBJECT_META = 'io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta';

function objectMetaSchema(refPrefix: string): JsonObject {
  const str = (description: string): JsonObject => ({ type: 'string', description });
  const strMap = (description: string): JsonObject => ({
    type: 'object',
    additionalProperties: { type: 'string', default: '' },
    description,
  });
  return {
    description:
      'ObjectMeta is metadata that all persisted resources must have, which includes all objects users must create.',
    type: 'object',
    properties: {
      annotations: strMap(
        'Annotations is an unstructured key value map stored with a resource that may be set by external tools to store and retrieve arbitrary metadata.',
      ),
      creationTimestamp: {
        type: 'string',
        format: 'date-time',
        description:
          'CreationTimestamp is a timestamp representing the server time when this object was created.',
      },
      deletionGracePeriodSeconds: {
        type: 'integer',
        format: 'int64',
        description:
          'Number of seconds allowed for this object to gracefully terminate before it will be removed from the system.',
      },
      deletionTimestamp: {
        type: 'string',
        format: 'date-time',
        description: 'DeletionTimestamp is RFC 3339 date and time at which this resource will be deleted.',
      },
      finalizers: {
        type: 'array',
        items: { type: 'string', default: '' },
        description: 'Must be empty before the object is deleted from the registry.',
        'x-kubernetes-list-type': 'set',
        'x-kubernetes-patch-strategy': 'merge',
      },
      generateName: str(
        'GenerateName is an optional prefix, used by the server, to generate a unique name ONLY IF the Name field has not been provided.',
      ),
      generation: {
        type: 'integer',
        format: 'int64',
        description: 'A sequence number representing a specific generation of the desired state.',
      },
      labels: strMap(
        'Map of string keys and values that can be used to organize and categorize (scope and select) objects.',
      ),
      managedFields: {
        type: 'array',
        items: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
        description:
          'ManagedFields maps workflow-id and version to the set of fields that are managed by that workflow.',
      },
      name: str('Name must be unique within a namespace.'),
      namespace: str('Namespace defines the space within which each name must be unique.'),
      ownerReferences: {
        type: 'array',
        items: { $ref: `${refPrefix}io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference` },
        description: 'List of objects depended by this object.',
        'x-kubernetes-patch-merge-key': 'uid',
        'x-kubernetes-patch-strategy': 'merge',
      },
      resourceVersion: str('An opaque value that represents the internal version of this object.'),
      selfLink: str(
        'Deprecated: selfLink is a legacy read-only field that is no longer populated by the system.',
      ),
      uid: str('UID is the unique in time and space value for this object.'),
    },
  };
}

function ownerReferenceSchema(): JsonObject {
  return {
    description: 'OwnerReference contains enough information to let you identify an owning object.',
    type: 'object',
    required: ['apiVersion', 'kind', 'name', 'uid'],
    properties: {
      apiVersion: { type: 'string', default: '', description: 'API version of the referent.' },
      blockOwnerDeletion: {
        type: 'boolean',
        description:
          'If true, AND if the owner has the "foregroundDeletion" finalizer, then the owner cannot be deleted from the key-value store until this reference is removed.',
      },
      controller: {
        type: 'boolean',
        description: 'If true, this reference points to the managing controller.',
      },
      kind: { type: 'string', default: '', description: 'Kind of the referent.' },
      name: { type: 'string', default: '', description: 'Name of the referent.' },
      uid: { type: 'string', default: '', description: 'UID of the referent.' },
    },
    'x-kubernetes-map-type': 'atomic',
  };
}

/** `btx.ai` + `v1alpha1` + `BTXRun` -> `ai.btx.v1alpha1.BTXRun`, as the real server names CRD schemas. */
export function definitionName(info: ResourceInfo, version: string): string {
  return `${info.group.split('.').reverse().join('.')}.${version}.${info.kind}`;
}

function crSchema(info: ResourceInfo, version: string, metaRef: JsonObject): JsonObject {
  const schema = (info.schemas?.[version] ?? {
    type: 'object',
    'x-kubernetes-preserve-unknown-fields': true,
  }) as JsonObject;
  const props = isObject(schema.properties) ? (schema.properties as JsonObject) : {};
  return {
    ...schema,
    type: 'object',
    properties: {
      ...props,
      apiVersion: {
        type: 'string',
        description:
          'APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources',
      },
      kind: {
        type: 'string',
        description:
          'Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds',
      },
      metadata: metaRef,
    },
    'x-kubernetes-group-version-kind': [{ group: info.group, kind: info.kind, version }],
  };
}

const QUERY_PARAMS = ['dryRun', 'fieldManager', 'fieldValidation', 'force', 'pretty'];

function pathsFor(info: ResourceInfo, version: string): JsonObject {
  // On operations the extension is one object (kubectl's query-param verifier reads it so); on
  // schemas it is a list.
  const gvk = { group: info.group, kind: info.kind, version };
  const prefix = info.group ? `/apis/${info.group}/${version}` : `/api/${version}`;
  const base = info.namespaced
    ? `${prefix}/namespaces/{namespace}/${info.resource}`
    : `${prefix}/${info.resource}`;
  const params = QUERY_PARAMS.map((name) => ({
    name,
    in: 'query',
    schema: { type: name === 'force' ? 'boolean' : 'string', uniqueItems: true },
  }));
  const op = (action: string): JsonObject => ({
    operationId: `${action}${info.kind}`,
    parameters: params,
    'x-kubernetes-action': action,
    'x-kubernetes-group-version-kind': gvk,
    responses: { '200': { description: 'OK' } },
  });
  const paths: JsonObject = {
    [base]: { get: op('list'), post: op('post'), delete: op('deletecollection') },
    [`${base}/{name}`]: { get: op('get'), put: op('put'), patch: op('patch'), delete: op('delete') },
  };
  if (info.subresources.includes('status'))
    paths[`${base}/{name}/status`] = { get: op('get'), put: op('put'), patch: op('patch') };
  return paths;
}

function sharedSchemas(refPrefix: string): JsonObject {
  return {
    [OBJECT_META]: objectMetaSchema(refPrefix),
    'io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference': ownerReferenceSchema(),
  };
}

/** The /openapi/v3 document of one group-version. */
export function openApiV3Document(
  registry: Registry,
  group: string,
  version: string,
): JsonObject | undefined {
  const resources = registry.inGroupVersion(group, version);
  if (resources.length === 0) return undefined;
  const schemas: JsonObject = {};
  let paths: JsonObject = {};
  for (const r of resources) {
    paths = { ...paths, ...pathsFor(r, version) };
    if (!r.builtin) {
      schemas[definitionName(r, version)] = crSchema(r, version, {
        allOf: [{ $ref: `#/components/schemas/${OBJECT_META}` }],
        default: {},
        description:
          "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
      });
    }
  }
  Object.assign(schemas, sharedSchemas('#/components/schemas/'));
  return {
    openapi: '3.0.0',
    info: { title: 'Kubernetes', version: 'v1.35.0' },
    paths,
    components: { schemas },
  };
}

function gvPath(group: string, version: string): string {
  return group ? `apis/${group}/${version}` : `api/${version}`;
}

/** /openapi/v3: where each group-version's document is, with a hash that changes with it. */
export function openApiV3Root(registry: Registry): JsonObject {
  const paths: JsonObject = {};
  for (const [group, versions] of registry.groups()) {
    for (const version of versions) {
      const doc = openApiV3Document(registry, group, version);
      const hash = createHash('sha512').update(JSON.stringify(doc)).digest('hex').slice(0, 128).toUpperCase();
      const p = gvPath(group, version);
      paths[p] = { serverRelativeURL: `/openapi/v3/${p}?hash=${hash}` };
    }
  }
  return { paths };
}

/** /openapi/v2: one Swagger document with every CRD's schema. */
export function openApiV2(registry: Registry): JsonObject {
  const definitions: JsonObject = sharedSchemas('#/definitions/');
  let paths: JsonObject = {};
  for (const r of registry.all()) {
    for (const version of r.versions) {
      const p = pathsFor(r, version);
      for (const ops of Object.values(p)) {
        for (const op of Object.values(ops as JsonObject)) {
          const o = op as JsonObject;
          o.parameters = QUERY_PARAMS.map((name) => ({
            name,
            in: 'query',
            type: name === 'force' ? 'boolean' : 'string',
            uniqueItems: true,
          }));
        }
      }
      paths = { ...paths, ...p };
      if (!r.builtin) {
        definitions[definitionName(r, version)] = crSchema(r, version, {
          $ref: `#/definitions/${OBJECT_META}`,
        });
      }
    }
  }
  return { swagger: '2.0', info: { title: 'Kubernetes', version: 'v1.35.0' }, paths, definitions };
}
