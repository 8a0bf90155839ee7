// A small work queue for the embedded controllers, with client-go's guarantees: a key is never
// handled twice at once, a key added many times while waiting is handled once, and a failed key
// comes back after a per-key doubling delay. Handlers may ask to be called again after a delay.
import { log, errorFields } from '../util/log.js';

/** Returns milliseconds after which to handle the key again, or nothing. */
export type Handler = (key: string) => Promise<number | void>;

export class WorkQueue {
  private readonly dirty = new Set<string>();
  private readonly active = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private stopped = false;

  constructor(
    private readonly name: string,
    private readonly handler: Handler,
    private readonly retryBaseMs = 100,
    private readonly retryMaxMs = 30_000,
  ) {}

  add(key: string): void {
    if (this.stopped) return;
    if (this.active.has(key)) {
      this.dirty.add(key);
      return;
    }
    this.active.add(key);
    // Later in this turn, so a burst of events for a key becomes one handling.
    setImmediate(() => void this.process(key));
  }

  /** Handles the key again after ms, unless an earlier wake-up is already planned. */
  addAfter(key: string, ms: number): void {
    if (this.stopped) return;
    const existing = this.timers.get(key);
    if (existing) clearTimeout(existing);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, ms);
    timer.unref();
    this.timers.set(key, timer);
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  private async process(key: string): Promise<void> {
    this.dirty.delete(key);
    let again: number | void = undefined;
    try {
      again = await this.handler(key);
      this.failures.delete(key);
    } catch (err) {
      const n = (this.failures.get(key) ?? 0) + 1;
      this.failures.set(key, n);
      again = Math.min(this.retryBaseMs * 2 ** (n - 1), this.retryMaxMs);
      log.warn('sync failed, will retry', { queue: this.name, key, retryMs: again, ...errorFields(err) });
    }
    this.active.delete(key);
    if (this.stopped) return;
    if (this.dirty.has(key)) this.add(key);
    else if (typeof again === 'number') this.addAfter(key, again);
  }
}
