// The storage-level verbs of the API server (create, update, patch, delete, get, list), as
// k8s.io/apiserver's generic registry Store provides them, with the real server's object semantics:
// uid, resourceVersion, generation, generateName, status subresources, finalizers, graceful pod
// deletion and ownerReference garbage collection.
import { randomUUID } from 'node:crypto';
import { parse as parseYaml } from 'yaml';
import { admit } from '../admission/admission.js';
import { AppliedConfigs } from '../patch/serverSideApply.js';
import { crdResource, crdStatus, isEstablished } from './crd.js';
import {
  alreadyExists,
  ApiError,
  badRequest,
  conflict,
  fe,
  forbidden,
  invalid,
  notFound,
  STALE_RV,
  unsupportedMediaType,
} from '../apimachinery/errors.js';
import {
  clone,
  deepEqual,
  generateNameSuffix,
  isObject,
  nowTimestamp,
  type KObject,
} from '../apimachinery/meta.js';
import { checkNestingDepth } from '../http/nesting.js';
import { jsonPatch, mergePatch, strategicMergePatch } from '../patch/patches.js';
import { apiVersionOf, Registry, storageKey, storageOf, type ResourceInfo } from './resources.js';
import { Store } from '../storage/store.js';
import { fromView, toView } from './conversion.js';

export interface WriteOptions {
  dryRun?: boolean;
  /** Strict: unknown fields fail the request; Warn (the default): they come back as warnings. */
  fieldValidation?: string;
  /** Filled with warnings for the response's Warning headers. */
  warnings?: string[];
}

export interface DeleteOptions extends WriteOptions {
  propagationPolicy?: string;
  gracePeriodSeconds?: number;
  preconditions?: { uid?: string; resourceVersion?: string };
}

export const PATCH_TYPES = {
  json: 'application/json-patch+json',
  merge: 'application/merge-patch+json',
  strategic: 'application/strategic-merge-patch+json',
  apply: 'application/apply-patch+yaml',
} as const;

const NAMESPACES = storageKey('', 'namespaces');
const FOREGROUND = 'foregroundDeletion';
const CRDS = storageKey('apiextensions.k8s.io', 'customresourcedefinitions');

/** The part of an object whose change bumps metadata.generation. */
function specPart(info: ResourceInfo, obj: KObject): Record<string, unknown> {
  const { metadata: _m, status, apiVersion: _a, kind: _k, ...rest } = obj;
  return info.subresources.includes('status') || info.builtin ? rest : { ...rest, status };
}

function withoutRv(obj: KObject): KObject {
  return { ...obj, metadata: { ...obj.metadata, resourceVersion: undefined } };
}

export class Api {
  readonly registry = new Registry();
  private readonly applied = new AppliedConfigs();
  readonly store: Store;

  constructor(historySize?: number) {
    this.store = new Store(historySize);
  }

  /** default and kube-system exist from the start, as in a real cluster. */
  bootstrap(): void {
    const info = this.registry.get('', 'namespaces')!;
    for (const name of ['default', 'kube-system', 'kube-public', 'kube-node-lease']) {
      if (!this.store.get(NAMESPACES, '', name))
        this.create(info, 'v1', '', { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
    }
    // Custom resources of stored CRDs (after a restart).
    for (const crd of this.store.list(CRDS)) if (isEstablished(crd)) this.registry.add(crdResource(crd));
  }

  // --- reads -----------------------------------------------------------------------------------

  get(info: ResourceInfo, namespace: string, name: string): KObject {
    const obj = this.store.get(storageOf(info), info.namespaced ? namespace : '', name);
    if (!obj) throw notFound(info.group, info.resource, name);
    return obj;
  }

  /** Objects sorted by namespace and name, as etcd returns them. */
  list(info: ResourceInfo, namespace: string | undefined): KObject[] {
    const items = [...this.store.list(storageOf(info), info.namespaced ? namespace : undefined)];
    items.sort((a, b) => {
      const na = a.metadata.namespace ?? '';
      const nb = b.metadata.namespace ?? '';
      if (na !== nb) return na < nb ? -1 : 1;
      return a.metadata.name! < b.metadata.name! ? -1 : a.metadata.name! > b.metadata.name! ? 1 : 0;
    });
    return items;
  }

  // --- create ----------------------------------------------------------------------------------

  create(
    info: ResourceInfo,
    version: string,
    namespace: string,
    body: unknown,
    opts: WriteOptions = {},
  ): KObject {
    if (!isObject(body)) throw badRequest('the body of the request was in an unknown format');
    const obj = fromView(info, clone(body) as KObject);
    obj.apiVersion = apiVersionOf(info.group, info.versions[0]!);
    obj.kind = info.kind;
    const meta = isObject(obj.metadata) ? obj.metadata : {};
    obj.metadata = meta;
    if (info.namespaced) {
      if (meta.namespace && namespace && meta.namespace !== namespace)
        throw badRequest(
          'the namespace of the provided object does not match the namespace sent on the request',
        );
      meta.namespace = meta.namespace || namespace || 'default';
      this.checkNamespaceOpen(info, meta.namespace, meta.name ?? meta.generateName ?? '');
    } else delete meta.namespace;
    if (meta.resourceVersion) throw badRequest('resourceVersion should not be set on objects to be created');
    if (!meta.name) {
      if (!meta.generateName)
        throw invalid(info.kind, info.group, '', [
          fe.required('metadata.name', 'name or generateName is required'),
        ]);
      meta.name = `${meta.generateName}${generateNameSuffix()}`;
    }
    meta.uid = randomUUID();
    meta.creationTimestamp = nowTimestamp();
    delete meta.deletionTimestamp;
    delete meta.deletionGracePeriodSeconds;
    delete meta.managedFields;
    delete meta.selfLink;
    if (info.subresources.includes('status') && !info.builtin) delete obj.status;
    if (!info.builtin || obj.spec !== undefined) meta.generation = 1;
    this.checkUnknownFields(info, version, admit(info, version, obj, undefined).pruned, opts);
    const key = storageOf(info);
    if (this.store.get(key, meta.namespace ?? '', meta.name))
      throw alreadyExists(info.group, info.resource, meta.name);
    if (key === CRDS) obj.status = crdStatus(obj, this.registry, undefined);
    if (opts.dryRun) return obj;
    const stored = this.store.write(key, obj, 'ADDED');
    this.afterWrite(key, stored);
    return stored;
  }

  private checkNamespaceOpen(info: ResourceInfo, namespace: string, name: string): void {
    const ns = this.store.get(NAMESPACES, '', namespace);
    if (!ns) throw notFound('', 'namespaces', namespace);
    if (ns.metadata.deletionTimestamp)
      throw forbidden(
        info.group,
        info.resource,
        name,
        `unable to create new content in namespace ${namespace} because it is being terminated`,
      );
  }

  /** Server-side field validation of what pruning dropped. */
  private checkUnknownFields(
    info: ResourceInfo,
    version: string,
    pruned: string[],
    opts: WriteOptions,
  ): void {
    if (pruned.length === 0 || opts.fieldValidation === 'Ignore') return;
    const unknown = pruned.map((p) => `unknown field "${p}"`);
    if (opts.fieldValidation === 'Strict')
      throw badRequest(
        `${info.kind} in version "${version}" cannot be handled as a ${info.kind}: strict decoding error: ${unknown.join(', ')}`,
      );
    opts.warnings?.push(...unknown);
  }

  // --- update ----------------------------------------------------------------------------------

  update(
    info: ResourceInfo,
    version: string,
    namespace: string,
    name: string,
    body: unknown,
    subresource: string | undefined,
    opts: WriteOptions = {},
  ): KObject {
    if (!isObject(body)) throw badRequest('the body of the request was in an unknown format');
    const key = storageOf(info);
    const ns = info.namespaced ? namespace : '';
    const old = this.store.get(key, ns, name);
    if (!old) throw notFound(info.group, info.resource, name);
    const incoming = fromView(info, clone(body) as KObject);
    const meta = isObject(incoming.metadata) ? incoming.metadata : {};
    if (meta.name && meta.name !== name)
      throw badRequest(`the name of the object (${meta.name}) does not match the name on the URL (${name})`);
    if (info.namespaced && meta.namespace && meta.namespace !== ns)
      throw badRequest(
        'the namespace of the provided object does not match the namespace sent on the request',
      );
    if (meta.resourceVersion && meta.resourceVersion !== old.metadata.resourceVersion)
      throw conflict(info.group, info.resource, name, STALE_RV);
    let next: KObject;
    if (subresource === 'status') {
      // Status writes change nothing but .status.
      next = { ...clone(old), status: incoming.status };
    } else {
      next = incoming;
      next.metadata = {
        ...meta,
        name,
        namespace: info.namespaced ? ns : undefined,
        uid: old.metadata.uid,
        creationTimestamp: old.metadata.creationTimestamp,
        deletionTimestamp: old.metadata.deletionTimestamp,
        deletionGracePeriodSeconds: old.metadata.deletionGracePeriodSeconds,
        generation: old.metadata.generation,
      };
      for (const k of Object.keys(next.metadata)) if (next.metadata[k] === undefined) delete next.metadata[k];
      delete next.metadata.managedFields;
      if (info.subresources.includes('status')) {
        if (old.status === undefined) delete next.status;
        else next.status = clone(old.status);
      }
    }
    next.apiVersion = old.apiVersion;
    next.kind = info.kind;
    if (old.metadata.deletionTimestamp) {
      // Finalizers may only be removed once deletion started, never added.
      const added = (next.metadata.finalizers ?? []).filter(
        (f) => !(old.metadata.finalizers ?? []).includes(f),
      );
      if (added.length)
        throw invalid(info.kind, info.group, name, [
          fe.forbidden(
            'metadata.finalizers',
            `no new finalizers can be added if the object is being deleted, found new finalizers []string{${added.map((f) => JSON.stringify(f)).join(', ')}}`,
          ),
        ]);
    }
    this.checkUnknownFields(info, version, admit(info, version, next, old).pruned, opts);
    if (key === CRDS && subresource !== 'status') next.status = crdStatus(next, this.registry, old.status);
    if (next.metadata.generation !== undefined && !deepEqual(specPart(info, next), specPart(info, old)))
      next.metadata.generation = (old.metadata.generation ?? 0) + 1;
    if (deepEqual(withoutRv(next), withoutRv(old))) return old; // a no-op write keeps its resourceVersion
    if (opts.dryRun)
      return { ...next, metadata: { ...next.metadata, resourceVersion: old.metadata.resourceVersion } };
    if (
      next.metadata.deletionTimestamp &&
      !(next.metadata.finalizers ?? []).length &&
      !this.gracefulPending(info, next)
    ) {
      return this.remove(info, key, next);
    }
    const stored = this.store.write(key, next, 'MODIFIED');
    this.afterWrite(key, stored);
    return stored;
  }

  // --- patch -----------------------------------------------------------------------------------

  patch(
    info: ResourceInfo,
    version: string,
    namespace: string,
    name: string,
    contentType: string,
    rawBody: string,
    subresource: string | undefined,
    opts: WriteOptions & { force?: boolean; fieldManager?: string } = {},
  ): { object: KObject; created: boolean } {
    const ns = info.namespaced ? namespace : '';
    const existing = this.store.get(storageOf(info), ns, name);
    let patchBody: unknown;
    try {
      patchBody = contentType === PATCH_TYPES.apply ? parseYaml(rawBody) : JSON.parse(rawBody);
    } catch (err) {
      throw badRequest(`error decoding patch: ${(err as Error).message}`);
    }
    checkNestingDepth(patchBody, 'error decoding patch');
    if (contentType === PATCH_TYPES.strategic && !info.builtin)
      throw unsupportedMediaType([PATCH_TYPES.json, PATCH_TYPES.merge, PATCH_TYPES.apply]);
    if (!existing) {
      if (contentType !== PATCH_TYPES.apply || subresource) throw notFound(info.group, info.resource, name);
      // Server-side apply of a missing object creates it.
      if (!isObject(patchBody)) throw badRequest('error decoding patch: expected an object');
      const meta = isObject(patchBody.metadata) ? patchBody.metadata : {};
      if (meta.name && meta.name !== name)
        throw badRequest(
          `the name of the object (${String(meta.name)}) does not match the name on the URL (${name})`,
        );
      const object = this.create(info, version, ns, { ...patchBody, metadata: { ...meta, name } }, opts);
      if (!opts.dryRun) this.applied.remember(object.metadata.uid!, opts.fieldManager ?? '', patchBody);
      return { object, created: true };
    }
    const current = toView(info, version, existing) as unknown;
    let patched: unknown;
    switch (contentType) {
      case PATCH_TYPES.json:
        patched = jsonPatch(current, patchBody);
        break;
      case PATCH_TYPES.merge:
        patched = mergePatch(current, patchBody);
        break;
      case PATCH_TYPES.strategic:
        patched = strategicMergePatch(current, patchBody, info.kind);
        break;
      case PATCH_TYPES.apply:
        // Server-side apply: the applied configuration merged in, and what this manager applied
        // before but no longer does removed (patch/serverSideApply.ts). managedFields is not written.
        if (!isObject(patchBody)) throw badRequest('error decoding patch: expected an object');
        if (isObject(patchBody.metadata)) delete patchBody.metadata.resourceVersion;
        patched = info.builtin
          ? strategicMergePatch(current, patchBody, info.kind)
          : mergePatch(current, patchBody);
        if (isObject(patched))
          this.applied.apply(
            existing.metadata.uid!,
            opts.fieldManager ?? '',
            patchBody,
            patched,
            info.kind,
            info.builtin,
          );
        break;
      default:
        throw unsupportedMediaType(Object.values(PATCH_TYPES));
    }
    if (!isObject(patched)) throw badRequest('the patch produced an object that is not a JSON object');
    const object = this.update(info, version, ns, name, patched, subresource, opts);
    if (contentType === PATCH_TYPES.apply && !opts.dryRun && isObject(patchBody))
      this.applied.remember(object.metadata.uid!, opts.fieldManager ?? '', patchBody);
    return { object, created: false };
  }

  // --- delete ----------------------------------------------------------------------------------

  delete(info: ResourceInfo, namespace: string, name: string, opts: DeleteOptions = {}): KObject {
    const key = storageOf(info);
    const ns = info.namespaced ? namespace : '';
    const obj = this.store.get(key, ns, name);
    if (!obj) throw notFound(info.group, info.resource, name);
    const pre = opts.preconditions ?? {};
    const precondition = (field: string, wanted: string | undefined, actual: string | undefined) => {
      if (wanted && wanted !== actual)
        throw conflict(
          info.group,
          info.resource,
          name,
          `Precondition failed: ${field} in precondition: ${wanted}, ${field} in object meta: ${actual}`,
        );
    };
    precondition('UID', pre.uid, obj.metadata.uid);
    precondition('ResourceVersion', pre.resourceVersion, obj.metadata.resourceVersion);
    if (opts.dryRun) return obj;
    // batch/v1 Jobs orphan their pods unless told otherwise, for backwards compatibility.
    const policy = opts.propagationPolicy ?? (key === storageKey('batch', 'jobs') ? 'Orphan' : 'Background');
    if (policy !== 'Orphan' && policy !== 'Background' && policy !== 'Foreground')
      throw invalid('DeleteOptions', '', '', [
        fe.notSupported('propagationPolicy', policy, ['Foreground', 'Background', 'Orphan']),
      ]);
    if (policy === 'Orphan') this.orphanDependents(obj);
    if (key === NAMESPACES) return this.deleteNamespace(obj);
    if (policy === 'Foreground' && this.store.dependentsOf(obj.metadata.uid!).length)
      return this.deleteForeground(key, obj);
    const grace = this.gracePeriod(info, obj, opts.gracePeriodSeconds);
    const finalizers = obj.metadata.finalizers ?? [];
    if (!finalizers.length && grace === 0) return this.remove(info, key, obj);
    // Finalizers or a grace period: mark the object; whoever finishes the work removes it.
    if (obj.metadata.deletionTimestamp && grace >= (obj.metadata.deletionGracePeriodSeconds ?? 0)) return obj;
    const marked = clone(obj);
    marked.metadata.deletionTimestamp = new Date(Date.now() + grace * 1000)
      .toISOString()
      .replace(/\.\d{3}Z$/, 'Z');
    marked.metadata.deletionGracePeriodSeconds = grace;
    return this.store.write(key, marked, 'MODIFIED');
  }

  /** Pods bound to a node are deleted gracefully: the kubelet finishes the deletion. */
  private gracePeriod(info: ResourceInfo, obj: KObject, requested: number | undefined): number {
    if (info.group !== '' || info.resource !== 'pods') return 0;
    const spec = isObject(obj.spec) ? obj.spec : {};
    const phase = isObject(obj.status) ? obj.status.phase : undefined;
    if (!spec.nodeName || phase === 'Succeeded' || phase === 'Failed') return 0;
    const grace =
      requested ??
      (typeof spec.terminationGracePeriodSeconds === 'number' ? spec.terminationGracePeriodSeconds : 30);
    return Math.max(0, grace);
  }

  private gracefulPending(info: ResourceInfo, obj: KObject): boolean {
    return (
      info.group === '' && info.resource === 'pods' && (obj.metadata.deletionGracePeriodSeconds ?? 0) > 0
    );
  }

  deleteCollection(info: ResourceInfo, items: KObject[], opts: DeleteOptions): KObject[] {
    const out: KObject[] = [];
    for (const item of items) {
      try {
        out.push(this.delete(info, item.metadata.namespace ?? '', item.metadata.name!, opts));
      } catch (err) {
        if (!(err instanceof ApiError && err.code === 404)) throw err;
      }
    }
    return out;
  }

  /** Removes an object for good and lets the garbage collector handle its dependents. */
  private remove(info: ResourceInfo, key: string, obj: KObject): KObject {
    const gone = this.store.remove(key, obj);
    if (obj.metadata.uid) this.applied.forget(obj.metadata.uid);
    if (key === CRDS) this.dropCustomResources(obj);
    const uid = obj.metadata.uid;
    if (uid && this.store.dependentsOf(uid).length) setImmediate(() => this.collectDependents(uid));
    // An owner deleted in the foreground may have been waiting for this one.
    for (const o of obj.metadata.ownerReferences ?? []) this.finishForeground(o.uid);
    const ns = obj.metadata.namespace;
    if (ns && info.namespaced) this.maybeFinishNamespace(ns);
    return gone;
  }

  /**
   * Foreground cascade: the owner stays, marked with the foregroundDeletion finalizer, until its
   * dependents are gone; then the finalizer goes and with it the owner.
   */
  private deleteForeground(key: string, owner: KObject): KObject {
    let marked = owner;
    if (!(owner.metadata.finalizers ?? []).includes(FOREGROUND)) {
      const next = clone(owner);
      next.metadata.finalizers = [...(owner.metadata.finalizers ?? []), FOREGROUND];
      next.metadata.deletionTimestamp ??= nowTimestamp();
      next.metadata.deletionGracePeriodSeconds ??= 0;
      marked = this.store.write(key, next, 'MODIFIED');
    }
    const uid = owner.metadata.uid!;
    setImmediate(() => {
      this.collectDependents(uid, 'Foreground');
      this.finishForeground(uid);
    });
    return marked;
  }

  /** Removes the foregroundDeletion finalizer once no dependent is left. */
  private finishForeground(uid: string): void {
    const ref = this.store.byUid(uid);
    if (!ref || this.store.dependentsOf(uid).length) return;
    const owner = this.store.get(ref.key, ref.namespace, ref.name);
    if (!owner || !(owner.metadata.finalizers ?? []).includes(FOREGROUND)) return;
    const info = this.infoForKey(ref.key);
    if (!info) return;
    const next = clone(owner);
    next.metadata.finalizers = (owner.metadata.finalizers ?? []).filter((f) => f !== FOREGROUND);
    if (next.metadata.finalizers.length) this.store.write(ref.key, next, 'MODIFIED');
    else this.remove(info, ref.key, next);
  }

  /** Background cascade: dependents whose owners are all gone are deleted; others lose the reference. */
  private collectDependents(uid: string, policy = 'Background'): void {
    for (const ref of this.store.dependentsOf(uid)) {
      const dep = this.store.get(ref.key, ref.namespace, ref.name);
      if (!dep) continue;
      const info = this.infoForKey(ref.key);
      if (!info) continue;
      const others = (dep.metadata.ownerReferences ?? []).filter(
        (o) => o.uid !== uid && this.store.hasUid(o.uid),
      );
      try {
        if (others.length) {
          const next = clone(dep);
          next.metadata.ownerReferences = (dep.metadata.ownerReferences ?? []).filter((o) => o.uid !== uid);
          this.store.write(ref.key, next, 'MODIFIED');
        } else {
          this.delete(info, ref.namespace, ref.name, { propagationPolicy: policy });
        }
      } catch {
        // Gone meanwhile: nothing left to collect.
      }
    }
  }

  private orphanDependents(owner: KObject): void {
    const uid = owner.metadata.uid!;
    for (const ref of this.store.dependentsOf(uid)) {
      const dep = this.store.get(ref.key, ref.namespace, ref.name);
      if (!dep) continue;
      const next = clone(dep);
      next.metadata.ownerReferences = (dep.metadata.ownerReferences ?? []).filter((o) => o.uid !== uid);
      if (!next.metadata.ownerReferences.length) delete next.metadata.ownerReferences;
      this.store.write(ref.key, next, 'MODIFIED');
    }
  }

  infoForKey(key: string): ResourceInfo | undefined {
    const [group, resource] = key.split('/') as [string, string];
    return this.registry.get(group, resource);
  }

  // --- namespaces ------------------------------------------------------------------------------

  private deleteNamespace(ns: KObject): KObject {
    const name = ns.metadata.name!;
    let current = ns;
    if (!ns.metadata.deletionTimestamp) {
      const marked = clone(ns);
      marked.metadata.deletionTimestamp = nowTimestamp();
      marked.metadata.deletionGracePeriodSeconds = 0;
      marked.status = { ...(isObject(marked.status) ? marked.status : {}), phase: 'Terminating' };
      current = this.store.write(NAMESPACES, marked, 'MODIFIED');
    }
    // The namespace controller: delete everything in it, then the namespace itself.
    setImmediate(() => {
      for (const { key, object } of [...this.store.inNamespace(name)]) {
        const info = this.infoForKey(key);
        if (!info) continue;
        try {
          this.delete(info, name, object.metadata.name!, {
            propagationPolicy: 'Background',
            gracePeriodSeconds: 0,
          });
        } catch {
          // already gone
        }
      }
      this.maybeFinishNamespace(name);
    });
    return current;
  }

  private maybeFinishNamespace(name: string): void {
    const ns = this.store.get(NAMESPACES, '', name);
    if (!ns || !ns.metadata.deletionTimestamp) return;
    if (!this.store.inNamespace(name).next().done) return;
    this.store.remove(NAMESPACES, ns);
  }

  // --- CRDs ------------------------------------------------------------------------------------

  private afterWrite(key: string, obj: KObject): void {
    if (key === CRDS && isEstablished(obj)) this.registry.add(crdResource(obj));
    if (key === NAMESPACES && !obj.metadata.deletionTimestamp)
      this.ensureDefaultServiceAccount(obj.metadata.name!);
    const owners = obj.metadata.ownerReferences ?? [];
    if (owners.length && !owners.some((o) => this.store.hasUid(o.uid)))
      setImmediate(() => this.collectDangling(key, obj));
  }

  /** The garbage collector deletes an object whose owners are all gone (e.g. deleted while it was made). */
  private collectDangling(key: string, obj: KObject): void {
    const current = this.store.get(key, obj.metadata.namespace ?? '', obj.metadata.name!);
    if (!current || current.metadata.uid !== obj.metadata.uid || current.metadata.deletionTimestamp) return;
    const owners = current.metadata.ownerReferences ?? [];
    if (!owners.length || owners.some((o) => this.store.hasUid(o.uid))) return;
    const info = this.infoForKey(key);
    if (!info) return;
    try {
      this.delete(info, current.metadata.namespace ?? '', current.metadata.name!, {
        propagationPolicy: 'Background',
      });
    } catch {
      // gone meanwhile
    }
  }

  /** The service account controller creates `default` in every namespace. */
  private ensureDefaultServiceAccount(namespace: string): void {
    const key = storageKey('', 'serviceaccounts');
    if (this.store.get(key, namespace, 'default')) return;
    const info = this.registry.get('', 'serviceaccounts')!;
    this.create(info, 'v1', namespace, { metadata: { name: 'default' } });
  }

  private dropCustomResources(crd: KObject): void {
    const info = crdResource(crd);
    const registered = this.registry.get(info.group, info.resource);
    if (!registered || registered.crdUid !== crd.metadata.uid) return;
    const key = storageOf(info);
    for (const obj of [...this.store.list(key)]) this.store.remove(key, obj);
    this.registry.remove(info.group, info.resource);
  }
}
