// Server-side apply's field removal: what a field manager applied before and leaves out now is
// removed from the object, unless another apply manager still applies it. The applied
// configurations are kept per object uid and manager, in memory (not in managedFields, and not
// across restarts); conflicts between managers are not detected (every apply acts as --force).
import { deepEqual, isObject } from '../apimachinery/meta.js';
import { mergeKeyFor } from './patches.js';

type Obj = Record<string, unknown>;

/** Fields the server owns or that identify the object are never removed by apply. */
const KEEP_TOP = new Set(['apiVersion', 'kind', 'status']);
const KEEP_META = new Set(['name', 'namespace', 'uid', 'resourceVersion', 'generation', 'creationTimestamp']);

function keyOf(item: unknown, key: string): unknown {
  return isObject(item) ? item[key] : undefined;
}

function removeUnapplied(
  live: Obj,
  prior: Obj,
  next: Obj | undefined,
  others: Obj[],
  kind: string,
  path: string[],
  builtin: boolean,
): void {
  for (const [field, before] of Object.entries(prior)) {
    if (path.length === 0 && KEEP_TOP.has(field)) continue;
    if (path.length === 1 && path[0] === 'metadata' && KEEP_META.has(field)) continue;
    const now = next?.[field];
    const elsewhere = others.map((o) => o[field]).filter((v) => v !== undefined);
    if (now === undefined) {
      if (elsewhere.length === 0) delete live[field];
      else if (isObject(before) && isObject(live[field]))
        // Another manager applies this map too: remove only what nobody applies any more.
        removeUnapplied(
          live[field] as Obj,
          before,
          {},
          elsewhere.filter(isObject),
          kind,
          [...path, field],
          builtin,
        );
      continue;
    }
    const cur = live[field];
    if (isObject(before) && isObject(now) && isObject(cur)) {
      removeUnapplied(cur, before, now, elsewhere.filter(isObject), kind, [...path, field], builtin);
    } else if (Array.isArray(before) && Array.isArray(now) && Array.isArray(cur) && builtin) {
      const key = mergeKeyFor(field, kind, path);
      if (!key) continue; // atomic: the applied list already replaced it
      const otherItems = elsewhere.filter(Array.isArray).flat();
      for (const item of before) {
        const k = keyOf(item, key);
        const stillApplied = now.find((x) => deepEqual(keyOf(x, key), k));
        const idx = cur.findIndex((x) => deepEqual(keyOf(x, key), k));
        if (idx < 0) continue;
        if (!stillApplied) {
          if (!otherItems.some((x) => deepEqual(keyOf(x, key), k))) cur.splice(idx, 1);
        } else if (isObject(item) && isObject(stillApplied) && isObject(cur[idx])) {
          const otherSame = otherItems.filter((x) => isObject(x) && deepEqual(keyOf(x, key), k)) as Obj[];
          removeUnapplied(cur[idx] as Obj, item, stillApplied, otherSame, kind, [...path, field], builtin);
        }
      }
    }
  }
}

export class AppliedConfigs {
  private byUid = new Map<string, Map<string, Obj>>();

  /**
   * Removes from `live` (already merged with `applied`) what `manager` applied last time and no
   * longer does; then remembers `applied` as that manager's configuration.
   */
  apply(uid: string, manager: string, applied: Obj, live: Obj, kind: string, builtin: boolean): void {
    const managers = this.byUid.get(uid);
    const prior = managers?.get(manager);
    if (prior) {
      const others = [...managers!.entries()].filter(([m]) => m !== manager).map(([, c]) => c);
      removeUnapplied(live, prior, applied, others, kind, [], builtin);
    }
  }

  remember(uid: string, manager: string, applied: Obj): void {
    let managers = this.byUid.get(uid);
    if (!managers) this.byUid.set(uid, (managers = new Map()));
    managers.set(manager, applied);
  }

  forget(uid: string): void {
    this.byUid.delete(uid);
  }
}
