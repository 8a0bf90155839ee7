// Fields that cannot change once a run is created: everything that determines what an expert is.
// Every expert was trained on this storage, for these domains (names, data, steps), with this
// architecture, branched from this seed: a new seed checkpoint mid-run would make later attempts
// branch from another model, and the experts would no longer share the one seed BTX mixes. (A
// tokenizer field, when the spec gets one, belongs here too.) The CRD enforces it with
// `self == oldSelf` rules where the API server runs CEL; the operator checks it with
// changedImmutableField() either way and keeps running with status.startedWith.
import type { BTXRunSpec, StartedWith } from './types.js';

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
