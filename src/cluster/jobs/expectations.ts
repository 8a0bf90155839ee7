// Controller expectations (kubernetes pkg/controller/controller_utils.go): the pod creates and
// deletes a controller has sent but its informer has not shown yet. While any are outstanding the
// cache is behind, and acting on it could create a second pod for the same slot.
const EXPIRY_MS = 5 * 60_000;

interface Pending {
  adds: number;
  deletes: Set<string>;
  since: number;
}

export class Expectations {
  private readonly pending = new Map<string, Pending>();
  /** Pod uids seen per controller key, so an update is not mistaken for a new pod. */
  private readonly seen = new Map<string, Set<string>>();

  private entry(key: string): Pending {
    let e = this.pending.get(key);
    if (!e) {
      e = { adds: 0, deletes: new Set(), since: Date.now() };
      this.pending.set(key, e);
    }
    return e;
  }

  expectCreations(key: string, n: number): void {
    const e = this.entry(key);
    e.adds += n;
    e.since = Date.now();
  }

  expectDeletions(key: string, uids: string[]): void {
    const e = this.entry(key);
    for (const uid of uids) e.deletes.add(uid);
    e.since = Date.now();
  }

  /** The informer showed the pod (deleted: it is gone or terminating). */
  observe(key: string, uid: string, deleted: boolean): void {
    let seen = this.seen.get(key);
    if (!seen) {
      seen = new Set();
      this.seen.set(key, seen);
    }
    const e = this.pending.get(key);
    if (!seen.has(uid)) {
      seen.add(uid);
      if (e && e.adds > 0) e.adds--;
    }
    if (deleted) e?.deletes.delete(uid);
  }

  creationFailed(key: string): void {
    const e = this.pending.get(key);
    if (e && e.adds > 0) e.adds--;
  }

  deletionFailed(key: string, uid: string): void {
    this.pending.get(key)?.deletes.delete(uid);
  }

  satisfied(key: string): boolean {
    const e = this.pending.get(key);
    if (!e) return true;
    if ((e.adds <= 0 && e.deletes.size === 0) || Date.now() - e.since > EXPIRY_MS) {
      this.pending.delete(key);
      return true;
    }
    return false;
  }

  forget(key: string): void {
    this.pending.delete(key);
    this.seen.delete(key);
  }
}
