// Fields that cannot change once a run is created: everything that determines what an expert is.
// Every expert was trained on this storage, for these domains (names, data, steps), with this
// architecture, branched from this seed: a new seed checkpoint mid-run would make later attempts
// branch from another model, and the experts would no longer share the one seed BTX mixes. (A
// tokenizer field, when the spec gets one, belongs here too.) The CRD enforces it with
// `self == oldSelf` rules where the API server runs CEL; the operator checks it with
// changedImmutableField() either way and keeps running with status.startedWith.
//
// One change to domains is allowed, once a run has Succeeded (domainsChange() says which): appending
// domains trains one new expert each from the same seed, removing domains re-mixes without them.
// Neither touches an expert that exists, so the experts still share the one seed.
import type { BTXRunSpec, DomainSpec, StartedWith } from './types.js';

export const IMMUTABLE_FIELDS = [
  'storage',
  'model',
  'seed',
  'domains',
] as const satisfies readonly (keyof BTXRunSpec & keyof StartedWith)[];
export type ImmutableField = (typeof IMMUTABLE_FIELDS)[number];

export interface ImmutableChange {
  /** The changed field as Kubernetes names it, e.g. `spec.domains[1].data`. */
  field: string;
  message: string;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The first path where `a` and `b` differ (keys with undefined values count as absent), or undefined. */
export function firstDifference(a: unknown, b: unknown, path: string): string | undefined {
  if (Array.isArray(a) && Array.isArray(b)) {
    for (let i = 0; i < Math.min(a.length, b.length); i++) {
      const d = firstDifference(a[i], b[i], `${path}[${i}]`);
      if (d !== undefined) return d;
    }
    return a.length === b.length ? undefined : path;
  }
  if (isPlainObject(a) && isPlainObject(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    for (const key of keys) {
      const d = firstDifference(a[key], b[key], `${path}.${key}`);
      if (d !== undefined) return d;
    }
    return undefined;
  }
  return Object.is(a, b) ? undefined : path;
}

/** The immutable fields of a (defaulted) spec, as status.startedWith records them. */
export function startedWithOf(spec: BTXRunSpec): StartedWith {
  const started: StartedWith = {
    domains: structuredClone(spec.domains),
    storage: structuredClone(spec.storage),
    seed: structuredClone(spec.seed),
  };
  if (spec.model !== undefined) started.model = structuredClone(spec.model);
  return started;
}

/**
 * Names the first immutable field of `current` that differs from what the run started with.
 * Compare defaulted specs (applyDefaults) so a default filled in by one side only is not a change.
 */
export function changedImmutableField(
  startedWith: StartedWith,
  current: Pick<BTXRunSpec, ImmutableField>,
): ImmutableChange | undefined {
  for (const field of IMMUTABLE_FIELDS) {
    // A run started by an operator that did not record its seed yet: nothing to compare with.
    if (field === 'seed' && startedWith.seed === undefined) continue;
    const path = firstDifference(startedWith[field], current[field], `spec.${field}`);
    if (path !== undefined) {
      return {
        field: path,
        message: `${path}: field is immutable: spec.${field} cannot change once the run is created (the experts were trained with it); create a new BTXRun instead`,
      };
    }
  }
  return undefined;
}

/** How spec.domains moved from what the current round started with. */
export type DomainsChange =
  | { kind: 'none' }
  /** New domains at the end, every existing one unchanged: a new expert each. */
  | { kind: 'append'; added: DomainSpec[] }
  /** Some domains left out, the rest unchanged and in the same order: re-mix without them. */
  | { kind: 'remove'; removed: string[] }
  /** Anything else (reorder, rename, changed data or steps of a domain, add and remove at once). */
  | { kind: 'refused'; change: ImmutableChange };

const ALLOWED =
  'a Succeeded run may append domains (one new expert each) or remove domains (re-mix without them), one or the other, and existing domains cannot change; create a new BTXRun instead';

function refusedAt(field: string, what: string): DomainsChange {
  return { kind: 'refused', change: { field, message: `${field}: ${what}: ${ALLOWED}` } };
}

/**
 * Classifies a change of spec.domains from `before` (status.startedWith.domains) to `after`.
 * Compare defaulted specs, as for changedImmutableField.
 */
export function domainsChange(before: readonly DomainSpec[], after: readonly DomainSpec[]): DomainsChange {
  if (firstDifference(before, after, 'spec.domains') === undefined) return { kind: 'none' };
  if (after.length > before.length) {
    for (let i = 0; i < before.length; i++) {
      const path = firstDifference(before[i], after[i], `spec.domains[${i}]`);
      if (path !== undefined) return refusedAt(path, 'an existing domain changed or moved');
    }
    return { kind: 'append', added: structuredClone(after.slice(before.length)) };
  }
  if (after.length < before.length) {
    // `after` must be `before` with some entries left out: walk both in order.
    let j = 0;
    const removed: string[] = [];
    for (const d of before) {
      const next = after[j];
      if (next !== undefined && next.name === d.name) {
        const path = firstDifference(d, next, `spec.domains[${j}]`);
        if (path !== undefined) return refusedAt(path, 'an existing domain changed');
        j++;
      } else removed.push(d.name);
    }
    if (j < after.length)
      return refusedAt(`spec.domains[${j}]`, 'a domain was added or moved while others were removed');
    return { kind: 'remove', removed };
  }
  const path = firstDifference(before, after, 'spec.domains') ?? 'spec.domains';
  return refusedAt(path, 'domains were reordered, renamed or changed');
}
