// Which resources the server serves: a table of built-in kinds plus whatever CRDs register.
// Storage is per group+resource (all served versions of a CRD share it, conversion strategy None).
import type { JsonObject } from '../apimachinery/meta.js';

export interface PrinterColumn {
  name: string;
  type: string;
  format?: string;
  description?: string;
  priority?: number;
  jsonPath: string;
}

export interface ResourceInfo {
  group: string;
  /** Served versions; the first is the preferred (storage) one. */
  versions: string[];
  resource: string;
  kind: string;
  listKind: string;
  singular: string;
  namespaced: boolean;
  shortNames: string[];
  categories: string[];
  verbs: string[];
  /** Subresources besides the main resource: `status`, `log`. */
  subresources: string[];
  /** Built-in kinds take strategic merge patches; custom resources do not. */
  builtin: boolean;
  /** Custom resources: their schema per version, printer columns per version. */
  schemas?: Record<string, JsonObject | undefined>;
  printerColumns?: Record<string, PrinterColumn[]>;
  /** The CRD's uid, to tell a re-created CRD from the old one. */
  crdUid?: string;
  /** Where objects live when another resource stores them (events.k8s.io events are core events). */
  storedAs?: string;
}

export const ALL_VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

/** Storage key of a resource: `group/resource` (`/pods` for core). */
export function storageKey(group: string, resource: string): string {
  return `${group}/${resource}`;
}

/** Where a resource's objects are stored. */
export function storageOf(info: ResourceInfo): string {
  return info.storedAs ?? storageKey(info.group, info.resource);
}

export function apiVersionOf(group: string, version: string): string {
  return group ? `${group}/${version}` : version;
}

interface BuiltinSpec {
  gv: string;
  resource: string;
  kind: string;
  namespaced?: boolean;
  shortNames?: string[];
  categories?: string[];
  subresources?: string[];
  verbs?: string[];
}

// Served and stored; only pods/jobs/namespaces get behaviour beyond storage (defaults, validation).
const BUILTINS: BuiltinSpec[] = [
  {
    gv: 'v1',
    resource: 'namespaces',
    kind: 'Namespace',
    namespaced: false,
    shortNames: ['ns'],
    subresources: ['status'],
    verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
  },
  {
    gv: 'v1',
    resource: 'pods',
    kind: 'Pod',
    shortNames: ['po'],
    categories: ['all'],
    subresources: ['status', 'log'],
  },
  { gv: 'v1', resource: 'events', kind: 'Event', shortNames: ['ev'] },
  { gv: 'v1', resource: 'configmaps', kind: 'ConfigMap', shortNames: ['cm'] },
  { gv: 'v1', resource: 'secrets', kind: 'Secret' },
  { gv: 'v1', resource: 'serviceaccounts', kind: 'ServiceAccount', shortNames: ['sa'] },
  {
    gv: 'v1',
    resource: 'services',
    kind: 'Service',
    shortNames: ['svc'],
    categories: ['all'],
    subresources: ['status'],
    verbs: ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'],
  },
  {
    gv: 'v1',
    resource: 'persistentvolumeclaims',
    kind: 'PersistentVolumeClaim',
    shortNames: ['pvc'],
    subresources: ['status'],
  },
  {
    gv: 'v1',
    resource: 'nodes',
    kind: 'Node',
    namespaced: false,
    shortNames: ['no'],
    subresources: ['status'],
  },
  { gv: 'events.k8s.io/v1', resource: 'events', kind: 'Event', shortNames: ['ev'] },
  { gv: 'batch/v1', resource: 'jobs', kind: 'Job', categories: ['all'], subresources: ['status'] },
  { gv: 'coordination.k8s.io/v1', resource: 'leases', kind: 'Lease' },
  {
    gv: 'apiextensions.k8s.io/v1',
    resource: 'customresourcedefinitions',
    kind: 'CustomResourceDefinition',
    namespaced: false,
    shortNames: ['crd', 'crds'],
    categories: ['api-extensions'],
    subresources: ['status'],
  },
  {
    gv: 'apps/v1',
    resource: 'deployments',
    kind: 'Deployment',
    shortNames: ['deploy'],
    categories: ['all'],
    subresources: ['status'],
  },
  {
    gv: 'policy/v1',
    resource: 'poddisruptionbudgets',
    kind: 'PodDisruptionBudget',
    shortNames: ['pdb'],
    subresources: ['status'],
  },
  { gv: 'rbac.authorization.k8s.io/v1', resource: 'roles', kind: 'Role' },
  { gv: 'rbac.authorization.k8s.io/v1', resource: 'rolebindings', kind: 'RoleBinding' },
  { gv: 'rbac.authorization.k8s.io/v1', resource: 'clusterroles', kind: 'ClusterRole', namespaced: false },
  {
    gv: 'rbac.authorization.k8s.io/v1',
    resource: 'clusterrolebindings',
    kind: 'ClusterRoleBinding',
    namespaced: false,
  },
  // Reviews are answered, never stored (http/handlers/reviews.ts).
  {
    gv: 'authorization.k8s.io/v1',
    resource: 'selfsubjectaccessreviews',
    kind: 'SelfSubjectAccessReview',
    namespaced: false,
    verbs: ['create'],
  },
  {
    gv: 'authentication.k8s.io/v1',
    resource: 'selfsubjectreviews',
    kind: 'SelfSubjectReview',
    namespaced: false,
    verbs: ['create'],
  },
];

function singularOf(kind: string): string {
  return kind.toLowerCase();
}

export function builtinResources(): ResourceInfo[] {
  return BUILTINS.map((b) => {
    const [group, version] = b.gv.includes('/') ? (b.gv.split('/') as [string, string]) : ['', b.gv];
    return {
      group,
      versions: [version],
      resource: b.resource,
      kind: b.kind,
      listKind: `${b.kind}List`,
      singular: singularOf(b.kind),
      namespaced: b.namespaced ?? true,
      shortNames: b.shortNames ?? [],
      categories: b.categories ?? [],
      verbs: b.verbs ?? ALL_VERBS,
      subresources: b.subresources ?? [],
      builtin: true,
      storedAs: b.gv === 'events.k8s.io/v1' ? storageKey('', 'events') : undefined,
    };
  });
}

/** All served resources, looked up by group/version/resource, and listed by group. */
export class Registry {
  private byKey = new Map<string, ResourceInfo>();

  constructor() {
    for (const r of builtinResources()) this.add(r);
  }

  add(info: ResourceInfo): void {
    this.byKey.set(storageKey(info.group, info.resource), info);
    this.version++;
  }

  /** Bumped on every change, so discovery and OpenAPI documents can be cached. */
  version = 0;

  remove(group: string, resource: string): void {
    this.byKey.delete(storageKey(group, resource));
    this.version++;
  }

  get(group: string, resource: string): ResourceInfo | undefined {
    return this.byKey.get(storageKey(group, resource));
  }

  /** The resource served at group/version/resource, if that version is served. */
  lookup(group: string, version: string, resource: string): ResourceInfo | undefined {
    const info = this.byKey.get(storageKey(group, resource));
    return info && info.versions.includes(version) ? info : undefined;
  }

  byKind(group: string, kind: string): ResourceInfo | undefined {
    for (const r of this.byKey.values()) if (r.group === group && r.kind === kind) return r;
    return undefined;
  }

  all(): ResourceInfo[] {
    return [...this.byKey.values()];
  }

  /** Groups with their served versions, core ('') first, in registration order otherwise. */
  groups(): Map<string, string[]> {
    const out = new Map<string, string[]>();
    for (const r of this.byKey.values()) {
      const versions = out.get(r.group) ?? [];
      for (const v of r.versions) if (!versions.includes(v)) versions.push(v);
      out.set(r.group, versions);
    }
    return out;
  }

  inGroupVersion(group: string, version: string): ResourceInfo[] {
    return this.all().filter((r) => r.group === group && r.versions.includes(version));
  }
}
