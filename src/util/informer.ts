// A client-node informer that keeps going, as client-go's reflector does: client-node's ListWatch
// re-lists on 410 Gone by itself but stops for good on any other error (a refused connection, a
// failed list), so this reconnects after a backoff, with a fresh list. `wedged()` says whether it has
// gone without a successful list for too long (the operator's /healthz). Used by the operator and
// the embedded controllers.
import {
  makeInformer,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { errorFields, log } from './log.js';

export type ChangeHandler<T> = (obj: T, kind: 'add' | 'update' | 'delete') => void;

/** Reconnect delays after watch/list errors: 1 s doubling to 30 s. */
const RECONNECT_BASE_MS = 1000;
const RECONNECT_MAX_MS = 30_000;
/**
 * An informer with no successful list for this long since its first failure counts as wedged: the
 * process is alive but blind (an expired token: every request 401), and the operator's /healthz
 * answers 500 so the kubelet restarts it (docs/operations.md).
 */
export const WEDGED_AFTER_MS = 120_000;

export interface InformerTiming {
  reconnectBaseMs?: number;
  reconnectMaxMs?: number;
  wedgedAfterMs?: number;
}

/** One informer for one resource path (a namespace, or all), with an optional label selector. */
export class ResilientInformer<T extends KubernetesObject> {
  private readonly informer: ReturnType<typeof makeInformer<T>>;
  private failingSince: number | undefined;
  private failures = 0;
  private retry: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly timing: Required<InformerTiming>;
  synced = false;

  constructor(
    kc: KubeConfig,
    readonly what: string,
    path: string,
    list: () => Promise<KubernetesListObject<T>>,
    handler: ChangeHandler<T>,
    labelSelector?: string,
    timing: InformerTiming = {},
  ) {
    this.timing = {
      reconnectBaseMs: timing.reconnectBaseMs ?? RECONNECT_BASE_MS,
      reconnectMaxMs: timing.reconnectMaxMs ?? RECONNECT_MAX_MS,
      wedgedAfterMs: timing.wedgedAfterMs ?? WEDGED_AFTER_MS,
    };
    // Synced once a list has landed in the cache (client-node adds the items right after the list
    // resolves, so setImmediate runs after them). A failed list leaves it unsynced until a retry.
    // Only a successful list ends a run of failures: client-node's 'connect' fires before the list
    // (and before a watch that may be refused), so counting it as success kept the backoff at 1 s
    // and /healthz at 200 while every request got 401.
    const listed = () =>
      list().then((result) => {
        this.failures = 0;
        this.failingSince = undefined;
        setImmediate(() => (this.synced = true));
        return result;
      });
    this.informer = makeInformer<T>(kc, path, listed, labelSelector);
    this.informer.on('add', (o) => handler(o, 'add'));
    this.informer.on('update', (o) => handler(o, 'update'));
    this.informer.on('delete', (o) => handler(o, 'delete'));
    this.informer.on('error', (err: unknown) => this.reconnectAfter(err));
  }

  /** Failures since the last successful list. */
  get consecutiveFailures(): number {
    return this.failures;
  }

  private reconnectAfter(err: unknown): void {
    if (this.stopped || this.retry) return;
    this.failingSince ??= Date.now();
    const { reconnectBaseMs, reconnectMaxMs } = this.timing;
    const delay = Math.min(reconnectMaxMs, reconnectBaseMs * 2 ** this.failures++);
    log.warn('watch failed; reconnecting', {
      resource: this.what,
      delayMs: delay,
      failures: this.failures,
      ...errorFields(err),
    });
    this.retry = setTimeout(() => {
      this.retry = undefined;
      if (this.stopped) return;
      // Reconnect with a fresh list, as client-go's reflector does after a failed watch: it proves
      // the credentials work (what ends the failure run) and catches up on what the watch missed.
      // client-node only relists on 410 Gone, by clearing this field itself.
      (this.informer as unknown as { resourceVersion: string }).resourceVersion = '';
      this.informer.start().catch((e: unknown) => this.reconnectAfter(e));
    }, delay);
  }

  /** Resolves once the cache holds a full list (retrying through errors), or when stopped. */
  async start(): Promise<void> {
    await this.informer.start().catch((err: unknown) => this.reconnectAfter(err));
    while (!this.synced && !this.stopped) await new Promise((r) => setTimeout(r, 20));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    await this.informer.stop();
  }

  list(namespace?: string): readonly T[] {
    return this.informer.list(namespace);
  }

  get(name: string, namespace?: string): T | undefined {
    return this.informer.get(name, namespace);
  }

  wedged(now: number): boolean {
    return this.failingSince !== undefined && now - this.failingSince > this.timing.wedgedAfterMs;
  }
}
