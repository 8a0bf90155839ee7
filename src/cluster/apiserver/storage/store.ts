// In-memory object storage: one map per resource and namespace, one global resourceVersion counter,
// a bounded history of change events for watch replay, and the watchers of each resource.
// Stored objects are never mutated: every write stores a fresh object.
import type { KObject } from '../apimachinery/meta.js';

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface StoreEvent {
  rv: number;
  key: string;
  type: EventType;
  object: KObject;
  /** The object before a MODIFIED event, to tell watchers with selectors that it left or entered. */
  prev?: KObject;
  /** Serialized watch lines, one per view (apiVersion), made once for all watchers. */
  lines?: Map<string, string>;
}

export interface WatchSink {
  deliver(ev: StoreEvent): void;
}

export interface ObjectRef {
  key: string;
  namespace: string;
  name: string;
}

export class Store {
  private rv = 0;
  private tables = new Map<string, Map<string, Map<string, KObject>>>();
  private history: StoreEvent[] = [];
  private historyStart = 0;
  /** Events at or below this resourceVersion are no longer in history. */
  private compactedRv = 0;
  private sinks = new Map<string, Set<WatchSink>>();
  private dependents = new Map<string, Set<string>>();
  private uids = new Map<string, ObjectRef>();
  /** Called after every change (persistence). */
  onChange: (() => void) | undefined;

  constructor(private readonly historySize = 10_000) {}

  currentRv(): number {
    return this.rv;
  }

  /** Restores state from a snapshot; history starts empty, so older resourceVersions are Gone. */
  load(rv: number, objects: { key: string; object: KObject }[]): void {
    this.rv = rv;
    this.compactedRv = rv;
    for (const { key, object } of objects) this.insert(key, object);
  }

  get(key: string, namespace: string, name: string): KObject | undefined {
    return this.tables.get(key)?.get(namespace)?.get(name);
  }

  /** All objects of a resource, in one namespace or in all. */
  *list(key: string, namespace?: string): Generator<KObject> {
    const table = this.tables.get(key);
    if (!table) return;
    if (namespace !== undefined) {
      const ns = table.get(namespace);
      if (ns) yield* ns.values();
      return;
    }
    for (const ns of table.values()) yield* ns.values();
  }

  count(key: string): number {
    let n = 0;
    for (const ns of this.tables.get(key)?.values() ?? []) n += ns.size;
    return n;
  }

  keys(): string[] {
    return [...this.tables.keys()];
  }

  /** Namespaced objects of every resource in a namespace. */
  *inNamespace(namespace: string): Generator<{ key: string; object: KObject }> {
    for (const [key, table] of this.tables) {
      for (const object of table.get(namespace)?.values() ?? []) yield { key, object };
    }
  }

  hasUid(uid: string): boolean {
    return this.uids.has(uid);
  }

  /** Where the object with this uid is stored, if it is. */
  byUid(uid: string): ObjectRef | undefined {
    return this.uids.get(uid);
  }

  /** Objects whose ownerReferences name this uid. */
  dependentsOf(uid: string): ObjectRef[] {
    const refs: ObjectRef[] = [];
    for (const id of this.dependents.get(uid) ?? []) {
      const [key, namespace, name] = id.split('\u0000') as [string, string, string];
      refs.push({ key, namespace, name });
    }
    return refs;
  }

  /** Stores a new version of an object, giving it the next resourceVersion. */
  write(key: string, object: KObject, type: 'ADDED' | 'MODIFIED'): KObject {
    const prev = this.get(key, object.metadata.namespace ?? '', object.metadata.name!);
    this.rv++;
    object.metadata.resourceVersion = String(this.rv);
    if (prev) this.unindex(key, prev);
    this.insert(key, object);
    this.emit({ rv: this.rv, key, type, object, prev });
    return object;
  }

  /** Removes an object; the DELETED event carries it with the deletion's resourceVersion. */
  remove(key: string, object: KObject): KObject {
    const ns = object.metadata.namespace ?? '';
    const stored = this.get(key, ns, object.metadata.name!);
    if (!stored) return object;
    this.unindex(key, stored);
    this.tables.get(key)?.get(ns)?.delete(object.metadata.name!);
    this.rv++;
    const gone = { ...stored, metadata: { ...stored.metadata, resourceVersion: String(this.rv) } };
    this.emit({ rv: this.rv, key, type: 'DELETED', object: gone });
    return gone;
  }

  /** Events of a resource after `rv`, or 'expired' when history no longer reaches back that far. */
  eventsSince(key: string, rv: number): StoreEvent[] | 'expired' {
    if (rv < this.compactedRv) return 'expired';
    const out: StoreEvent[] = [];
    // History is sorted by rv: binary search for the first event after rv.
    let lo = this.historyStart;
    let hi = this.history.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.history[mid]!.rv <= rv) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < this.history.length; i++) {
      const ev = this.history[i]!;
      if (ev.key === key) out.push(ev);
    }
    return out;
  }

  subscribe(key: string, sink: WatchSink): void {
    let set = this.sinks.get(key);
    if (!set) this.sinks.set(key, (set = new Set()));
    set.add(sink);
  }

  unsubscribe(key: string, sink: WatchSink): void {
    this.sinks.get(key)?.delete(sink);
  }

  watcherCount(): number {
    let n = 0;
    for (const s of this.sinks.values()) n += s.size;
    return n;
  }

  private insert(key: string, object: KObject): void {
    let table = this.tables.get(key);
    if (!table) this.tables.set(key, (table = new Map()));
    const nsName = object.metadata.namespace ?? '';
    let ns = table.get(nsName);
    if (!ns) table.set(nsName, (ns = new Map()));
    ns.set(object.metadata.name!, object);
    if (object.metadata.uid)
      this.uids.set(object.metadata.uid, { key, namespace: nsName, name: object.metadata.name! });
    for (const ref of object.metadata.ownerReferences ?? []) {
      let set = this.dependents.get(ref.uid);
      if (!set) this.dependents.set(ref.uid, (set = new Set()));
      set.add(`${key}\u0000${nsName}\u0000${object.metadata.name}`);
    }
  }

  private unindex(key: string, object: KObject): void {
    if (object.metadata.uid) this.uids.delete(object.metadata.uid);
    const id = `${key}\u0000${object.metadata.namespace ?? ''}\u0000${object.metadata.name}`;
    for (const ref of object.metadata.ownerReferences ?? []) {
      const set = this.dependents.get(ref.uid);
      set?.delete(id);
      if (set && set.size === 0) this.dependents.delete(ref.uid);
    }
  }

  private emit(ev: StoreEvent): void {
    this.history.push(ev);
    if (this.history.length - this.historyStart > this.historySize) {
      this.compactedRv = this.history[this.historyStart]!.rv;
      this.history[this.historyStart] = undefined as unknown as StoreEvent;
      this.historyStart++;
      if (this.historyStart > this.historySize) {
        this.history = this.history.slice(this.historyStart);
        this.historyStart = 0;
      }
    }
    for (const sink of this.sinks.get(ev.key) ?? []) sink.deliver(ev);
    // The shared serializations are for this fan-out; history keeps only the objects.
    ev.lines = undefined;
    this.onChange?.();
  }
}
