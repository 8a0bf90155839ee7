// A work queue in the manner of client-go's util/workqueue: a key is never handed to two workers at
// once, a key added many times while it waits is processed once, and failures come back with per-key
// exponential backoff under a global token bucket.

import { errorFields, log } from './log.js';

export interface WorkQueueOptions {
  /** Per-key backoff: baseDelayMs * 2^failures, capped at maxDelayMs. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Global bucket for rate-limited adds: `qps` tokens a second, `burst` at most. */
  qps?: number;
  burst?: number;
  /** Told the number of waiting keys whenever it changes (the depth gauge). */
  onDepth?: (depth: number) => void;
  /** For tests: a clock in ms. */
  now?: () => number;
}

export class WorkQueue {
  private readonly queue: string[] = [];
  /** Keys waiting to be processed (in `queue`, or re-added while processing). */
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly waiters: Array<(key: string | undefined) => void> = [];
  private shuttingDown = false;
  private tokens: number;
  private lastRefill: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly qps: number;
  private readonly burst: number;
  private readonly onDepth: (depth: number) => void;
  private readonly now: () => number;

  constructor(opts: WorkQueueOptions = {}) {
    this.baseDelayMs = opts.baseDelayMs ?? 5;
    this.maxDelayMs = opts.maxDelayMs ?? 1_000_000;
    this.qps = opts.qps ?? 10;
    this.burst = opts.burst ?? 100;
    this.onDepth = opts.onDepth ?? (() => undefined);
    this.now = opts.now ?? Date.now;
    this.tokens = this.burst;
    this.lastRefill = this.now();
  }

  /** Waiting keys (not counting the ones being processed or waiting on a timer). */
  len(): number {
    return this.queue.length;
  }

  add(key: string): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.dirty.add(key);
    if (this.processing.has(key)) return; // done() puts it back
    const waiter = this.waiters.shift();
    if (waiter) {
      this.take(key);
      waiter(key);
      return;
    }
    this.queue.push(key);
    this.onDepth(this.queue.length);
  }

  /** Add the key after `ms`; an earlier pending timer for the same key wins. */
  addAfter(key: string, ms: number): void {
    if (this.shuttingDown) return;
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const at = this.now() + ms;
    const pending = this.timers.get(key);
    if (pending && pending.at <= at) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, ms);
    this.timers.set(key, { at, timer });
  }

  /** The delay the next rate-limited add of `key` would wait: the larger of its backoff and the bucket's. */
  nextDelay(key: string): number {
    const failures = this.failures.get(key) ?? 0;
    const backoff = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** failures);
    return Math.max(backoff, this.bucketDelay());
  }

  /** Requeue after a failure: per-key exponential backoff, under the global token bucket. */
  addRateLimited(key: string): void {
    const delay = this.nextDelay(key);
    this.failures.set(key, (this.failures.get(key) ?? 0) + 1);
    this.takeToken();
    this.addAfter(key, delay);
  }

  /** The key succeeded: its backoff starts over. */
  forget(key: string): void {
    this.failures.delete(key);
  }

  failureCount(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** The next key to process, or undefined once the queue is shut down. */
  get(): Promise<string | undefined> {
    const key = this.queue.shift();
    if (key !== undefined) {
      this.onDepth(this.queue.length);
      this.take(key);
      return Promise.resolve(key);
    }
    if (this.shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** The worker finished `key`; if it was added meanwhile, it goes back in line. */
  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.has(key) && !this.shuttingDown) {
      this.dirty.delete(key);
      this.add(key);
    }
  }

  shutDown(): void {
    this.shuttingDown = true;
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    for (const waiter of this.waiters.splice(0)) waiter(undefined);
  }

  isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  private take(key: string): void {
    this.processing.add(key);
    this.dirty.delete(key);
  }

  private refill(): void {
    const now = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.lastRefill) / 1000) * this.qps);
    this.lastRefill = now;
  }

  private bucketDelay(): number {
    this.refill();
    return this.tokens >= 1 ? 0 : Math.ceil(((1 - this.tokens) / this.qps) * 1000);
  }

  private takeToken(): void {
    this.refill();
    this.tokens -= 1;
  }
}

/** What a handler says about a key it handled: come back after a delay, and a label for metrics. */
export interface KeyResult<R extends string = string> {
  requeueAfterMs?: number;
  /** e.g. success | requeue | skipped; `error` is what a throw is reported as. */
  result: R;
}

/** Handles one key; a returned number (or requeueAfterMs) asks for the key again after that many ms. */
export type KeyHandler<R extends string = string> = (key: string) => Promise<number | void | KeyResult<R>>;

export interface WorkerOptions<R extends string = string> {
  /** Told how each key went and how long it took, in seconds (the operator's reconcile metrics). */
  onResult?: (key: string, result: R | 'success' | 'requeue' | 'error', seconds: number) => void;
  /** Checked before a key is handled; false drops the key (a leader that lost its lease acts no more). */
  active?: () => boolean;
}

/**
 * Runs `workers` loops that take keys from the queue and hand them to `handler`, until the queue
 * shuts down: the one worker loop of the operator, the embedded kubelet and the Job controller. A
 * handler that throws gets its key back with per-key backoff (rate limited); one that returns a
 * delay gets it back after that delay; either way the key is processed by one worker at a time.
 */
export async function runWorkers<R extends string = string>(
  queue: WorkQueue,
  name: string,
  workers: number,
  handler: KeyHandler<R>,
  options: WorkerOptions<R> = {},
): Promise<void> {
  const loop = async (): Promise<void> => {
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      const started = process.hrtime.bigint();
      const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;
      try {
        if (options.active && !options.active()) continue;
        const outcome = await handler(key);
        const again = typeof outcome === 'object' ? outcome.requeueAfterMs : (outcome ?? undefined);
        const result: R | 'success' | 'requeue' =
          typeof outcome === 'object' ? outcome.result : again === undefined ? 'success' : 'requeue';
        log.debug('synced', { queue: name, key, result, requeueAfterMs: again });
        queue.forget(key);
        if (again !== undefined) queue.addAfter(key, again);
        options.onResult?.(key, result, seconds());
      } catch (err) {
        log.warn('sync failed, will retry', {
          queue: name,
          key,
          retryMs: queue.nextDelay(key),
          ...errorFields(err),
        });
        options.onResult?.(key, 'error', seconds());
        queue.addRateLimited(key);
      } finally {
        queue.done(key);
      }
    }
  };
  await Promise.all(Array.from({ length: workers }, loop));
}
