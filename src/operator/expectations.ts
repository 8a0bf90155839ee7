// Expectations, as in the Kubernetes Job controller: the creates and deletes this operator has in
// flight, per run, by child name. Until the informers have seen them, the caches are stale for that
// run and a reconcile would act on old facts (and, say, create a second pod for the same attempt).

/** How long an expectation may wait before we stop trusting it (the Job controller uses 5 minutes). */
export const EXPECTATION_TTL_MS = 5 * 60_000;

interface Pending {
  creates: Set<string>;
  deletes: Set<string>;
  since: number;
}

export class Expectations {
  private readonly byRun = new Map<string, Pending>();

  constructor(
    private readonly ttlMs: number = EXPECTATION_TTL_MS,
    private readonly now: () => number = Date.now,
  ) {}

  private entry(runKey: string): Pending {
    let e = this.byRun.get(runKey);
    if (!e) {
      e = { creates: new Set(), deletes: new Set(), since: this.now() };
      this.byRun.set(runKey, e);
    }
    return e;
  }

  expectCreate(runKey: string, child: string): void {
    const e = this.entry(runKey);
    if (e.creates.size === 0 && e.deletes.size === 0) e.since = this.now();
    e.creates.add(child);
  }

  expectDelete(runKey: string, child: string): void {
    const e = this.entry(runKey);
    if (e.creates.size === 0 && e.deletes.size === 0) e.since = this.now();
    e.deletes.add(child);
  }

  /** The informer saw the child (or the create failed for good): stop waiting for it. */
  observedCreate(runKey: string, child: string): void {
    this.byRun.get(runKey)?.creates.delete(child);
    this.prune(runKey);
  }

  /** The informer saw the child go, or start terminating (or the delete failed): stop waiting. */
  observedDelete(runKey: string, child: string): void {
    this.byRun.get(runKey)?.deletes.delete(child);
    this.prune(runKey);
  }

  /** True when nothing is in flight for the run, or what is in flight has waited past the TTL. */
  satisfied(runKey: string): boolean {
    const e = this.byRun.get(runKey);
    if (!e) return true;
    if (this.now() - e.since >= this.ttlMs) {
      this.byRun.delete(runKey);
      return true;
    }
    return false;
  }

  /** Milliseconds until the run's expectations expire (0 when satisfied). */
  expiresIn(runKey: string): number {
    const e = this.byRun.get(runKey);
    return e ? Math.max(0, e.since + this.ttlMs - this.now()) : 0;
  }

  pending(runKey: string): { creates: string[]; deletes: string[] } {
    const e = this.byRun.get(runKey);
    return { creates: [...(e?.creates ?? [])], deletes: [...(e?.deletes ?? [])] };
  }

  forget(runKey: string): void {
    this.byRun.delete(runKey);
  }

  private prune(runKey: string): void {
    const e = this.byRun.get(runKey);
    if (e && e.creates.size === 0 && e.deletes.size === 0) this.byRun.delete(runKey);
  }
}
