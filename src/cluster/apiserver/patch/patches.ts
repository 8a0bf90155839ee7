// PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch for
// built-in kinds (merge-by-key lists and the $patch / $setElementOrder / $retainKeys /
// $deleteFromPrimitiveList directives kubectl sends).
import { badRequest, ApiError } from '../apimachinery/errors.js';
import { clone, deepEqual, isObject } from '../apimachinery/meta.js';

export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return clone(patch);
  const out: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

// --- RFC 6902 ----------------------------------------------------------------------------------

interface JsonPatchOp {
  op: string;
  path: string;
  value?: unknown;
  from?: string;
}

function parsePointer(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/'))
    throw badRequest(`the server rejected our request due to an error in our request`);
  return pointer
    .slice(1)
    .split('/')
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function patchError(message: string): ApiError {
  // The real server answers a JSON patch that cannot be applied with 422 and this reason.
  return new ApiError(422, 'Invalid', message);
}

/** The value at `parts` (a parsed JSON pointer), or the Kubernetes "missing path" error. */
function walk(doc: unknown, parts: string[], path: string): unknown {
  let cur = doc;
  for (const p of parts) {
    if (Array.isArray(cur)) cur = cur[Number(p)];
    else if (isObject(cur)) cur = cur[p];
    else cur = undefined;
    if (cur === undefined)
      throw patchError(
        `the server rejected our request due to an error in our request: doc is missing path: "${path}": missing value`,
      );
  }
  return cur;
}

function resolveParent(doc: unknown, parts: string[], path: string): { parent: unknown; key: string } {
  return { parent: walk(doc, parts.slice(0, -1), path), key: parts[parts.length - 1]! };
}

function getAt(doc: unknown, path: string): unknown {
  return walk(doc, parsePointer(path), path);
}

function arrayIndex(key: string, arr: unknown[], forAdd: boolean, path: string): number {
  if (forAdd && key === '-') return arr.length;
  if (!/^(0|[1-9][0-9]*)$/.test(key))
    throw patchError(
      `the server rejected our request due to an error in our request: invalid index in path: "${path}"`,
    );
  const i = Number(key);
  if (i > arr.length || (!forAdd && i >= arr.length))
    throw patchError(
      `the server rejected our request due to an error in our request: unable to access invalid index: ${i}`,
    );
  return i;
}

function addAt(doc: unknown, path: string, value: unknown): unknown {
  const parts = parsePointer(path);
  if (parts.length === 0) return value;
  const { parent, key } = resolveParent(doc, parts, path);
  if (Array.isArray(parent)) parent.splice(arrayIndex(key, parent, true, path), 0, value);
  else if (isObject(parent)) parent[key] = value;
  else
    throw patchError(
      `the server rejected our request due to an error in our request: doc is missing path: "${path}": missing value`,
    );
  return doc;
}

function removeAt(doc: unknown, path: string): unknown {
  const parts = parsePointer(path);
  const { parent, key } = resolveParent(doc, parts, path);
  if (Array.isArray(parent)) parent.splice(arrayIndex(key, parent, false, path), 1);
  else if (isObject(parent) && key in parent) delete parent[key];
  else
    throw patchError(
      `the server rejected our request due to an error in our request: Unable to remove nonexistent key: ${key}: missing value`,
    );
  return doc;
}

export function jsonPatch(target: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw badRequest('the server rejected our request due to an error in our request');
  let doc = clone(target);
  for (const raw of ops as JsonPatchOp[]) {
    if (!isObject(raw) || typeof raw.op !== 'string' || typeof raw.path !== 'string')
      throw badRequest('the server rejected our request due to an error in our request');
    switch (raw.op) {
      case 'add':
        doc = addAt(doc, raw.path, clone(raw.value));
        break;
      case 'remove':
        doc = removeAt(doc, raw.path);
        break;
      case 'replace':
        getAt(doc, raw.path);
        doc = removeAt(doc, raw.path);
        doc = addAt(doc, raw.path, clone(raw.value));
        break;
      case 'move': {
        const v = getAt(doc, raw.from ?? '');
        doc = removeAt(doc, raw.from ?? '');
        doc = addAt(doc, raw.path, v);
        break;
      }
      case 'copy':
        doc = addAt(doc, raw.path, clone(getAt(doc, raw.from ?? '')));
        break;
      case 'test':
        if (!deepEqual(getAt(doc, raw.path), raw.value))
          throw patchError(
            `the server rejected our request due to an error in our request: testing value ${raw.path} failed: test failed`,
          );
        break;
      default:
        throw badRequest(
          `the server rejected our request due to an error in our request: Unexpected kind: ${raw.op}`,
        );
    }
  }
  return doc;
}

// --- strategic merge patch ---------------------------------------------------------------------

/** Merge keys of the built-in kinds' lists (patchMergeKey); lists not here are replaced whole. */
export function mergeKeyFor(field: string, kind: string, path: string[]): string | undefined {
  switch (field) {
    case 'containers':
    case 'initContainers':
    case 'ephemeralContainers':
    case 'env':
    case 'volumes':
    case 'imagePullSecrets':
    case 'secrets':
    case 'readinessGates':
      return field === 'readinessGates' ? 'conditionType' : 'name';
    case 'volumeMounts':
      return 'mountPath';
    case 'volumeDevices':
      return 'devicePath';
    case 'ports':
      // Container ports merge by containerPort; Service ports by port.
      return kind === 'Service' && path[path.length - 1] === 'spec' ? 'port' : 'containerPort';
    case 'conditions':
      return 'type';
    case 'ownerReferences':
      return 'uid';
    case 'hostAliases':
      return 'ip';
    case 'topologySpreadConstraints':
      return 'topologyKey';
    case 'containerStatuses':
    case 'initContainerStatuses':
      return undefined;
    default:
      return undefined;
  }
}

/** Primitive lists with patchStrategy merge (set union). */
const MERGED_PRIMITIVE_LISTS = new Set(['finalizers']);

export function strategicMergePatch(target: unknown, patch: unknown, kind: string): unknown {
  return smpMap(isObject(target) ? target : {}, patch, kind, []);
}

function smpMap(
  original: Record<string, unknown>,
  patch: unknown,
  kind: string,
  path: string[],
): Record<string, unknown> {
  if (!isObject(patch)) throw badRequest('the server rejected our request due to an error in our request');
  const directive = patch.$patch;
  if (directive === 'replace') {
    const { $patch: _drop, ...rest } = patch;
    return stripDirectives(rest) as Record<string, unknown>;
  }
  if (directive === 'delete') return {};
  let out: Record<string, unknown> = { ...original };
  const retainKeys = patch.$retainKeys;
  for (const [k, v] of Object.entries(patch)) {
    if (k === '$patch' || k === '$retainKeys') continue;
    if (k.startsWith('$deleteFromPrimitiveList/')) {
      const field = k.slice('$deleteFromPrimitiveList/'.length);
      if (Array.isArray(out[field]) && Array.isArray(v))
        out[field] = (out[field] as unknown[]).filter((x) => !v.some((d) => deepEqual(d, x)));
      continue;
    }
    // Other directives ($setElementOrder/...) only order lists; order is kept as stored.
    if (k.startsWith('$')) continue;
    if (v === null) {
      delete out[k];
      continue;
    }
    const cur = out[k];
    if (Array.isArray(v)) {
      out[k] = smpList(Array.isArray(cur) ? cur : [], v, k, kind, path);
    } else if (isObject(v)) {
      out[k] = smpMap(isObject(cur) ? cur : {}, v, kind, [...path, k]);
    } else out[k] = v;
  }
  if (Array.isArray(retainKeys)) {
    const keep = new Set(retainKeys as string[]);
    out = Object.fromEntries(Object.entries(out).filter(([k]) => keep.has(k)));
  }
  return out;
}

function smpList(
  original: unknown[],
  patch: unknown[],
  field: string,
  kind: string,
  path: string[],
): unknown[] {
  if (MERGED_PRIMITIVE_LISTS.has(field)) {
    const out = [...original];
    for (const v of patch) if (!out.some((x) => deepEqual(x, v))) out.push(v);
    return out;
  }
  const key = mergeKeyFor(field, kind, path);
  if (!key) {
    // A whole-list replace may still be spelled with a {$patch: replace} element.
    return patch.filter((p) => !(isObject(p) && p.$patch === 'replace')).map(stripDirectives);
  }
  if (patch.some((p) => isObject(p) && p.$patch === 'replace' && Object.keys(p).length === 1)) {
    return patch.filter((p) => !(isObject(p) && p.$patch)).map(stripDirectives);
  }
  const out = original.map((x) => x);
  for (const item of patch) {
    if (!isObject(item)) {
      out.push(item);
      continue;
    }
    const idx = out.findIndex((x) => isObject(x) && deepEqual(x[key], item[key]));
    if (item.$patch === 'delete') {
      if (idx >= 0) out.splice(idx, 1);
      continue;
    }
    if (idx >= 0) out[idx] = smpMap(out[idx] as Record<string, unknown>, item, kind, [...path, field]);
    else out.push(stripDirectives(item));
  }
  return out;
}

function stripDirectives(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(stripDirectives);
  if (!isObject(v)) return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    if (k.startsWith('$')) continue;
    out[k] = stripDirectives(x);
  }
  return out;
}
