// Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it: the
// holder renews every retryPeriod; others take over once they have seen the same record unchanged
// for leaseDuration (measured on their own clock, so clock skew between replicas does not matter);
// every write carries the resourceVersion it read, so two candidates can never both win.
import { CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import { errorFields, log } from '../util/log.js';
import { statusCode } from '../util/apiErrors.js';

export interface LeaderElectionOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  name?: string;
  identity: string;
  leaseDurationSeconds?: number;
  renewDeadlineSeconds?: number;
  retryPeriodSeconds?: number;
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
}

export class LeaderElector {
  private readonly api: CoordinationV1Api;
  private readonly name: string;
  private readonly leaseMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryMs: number;
  private leading = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  /** The last record seen and when (our clock) it was first seen. */
  private observed: { key: string; at: number } | undefined;
  private lastRenew = 0;

  constructor(private readonly opts: LeaderElectionOptions) {
    this.api = opts.kubeConfig.makeApiClient(CoordinationV1Api);
    this.name = opts.name ?? 'btx-operator';
    this.leaseMs = (opts.leaseDurationSeconds ?? 15) * 1000;
    this.renewDeadlineMs = (opts.renewDeadlineSeconds ?? 10) * 1000;
    this.retryMs = (opts.retryPeriodSeconds ?? 2) * 1000;
  }

  isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    this.loop ??= this.run();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const ok = await this.tryAcquireOrRenew().catch((err: unknown) => {
        log.warn('lease update failed', {
          lease: this.name,
          namespace: this.opts.namespace,
          ...errorFields(err),
        });
        return false;
      });
      const now = Date.now();
      if (ok) {
        this.lastRenew = now;
        if (!this.leading && !this.stopped) {
          this.leading = true;
          log.info('became leader', {
            lease: this.name,
            namespace: this.opts.namespace,
            identity: this.opts.identity,
          });
          this.opts.onStartedLeading();
        }
      } else if (this.leading && now - this.lastRenew > this.renewDeadlineMs) {
        this.loseLeadership();
      }
      if (this.stopped) break;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        this.timer = setTimeout(resolve, this.retryMs);
      });
    }
  }

  private loseLeadership(): void {
    if (!this.leading) return;
    this.leading = false;
    log.warn('lost leadership', {
      lease: this.name,
      namespace: this.opts.namespace,
      identity: this.opts.identity,
    });
    this.opts.onStoppedLeading();
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, identity } = this.opts;
    const now = new V1MicroTime(Date.now());
    let lease: V1Lease;
    try {
      lease = await this.api.readNamespacedLease({ name: this.name, namespace });
    } catch (err) {
      if (statusCode(err) !== 404) throw err;
      try {
        await this.api.createNamespacedLease({
          namespace,
          body: {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: { name: this.name, namespace },
            spec: {
              holderIdentity: identity,
              leaseDurationSeconds: this.leaseMs / 1000,
              acquireTime: now,
              renewTime: now,
              leaseTransitions: 0,
            },
          },
        });
        return true;
      } catch (createErr) {
        if (statusCode(createErr) === 409) return false; // another candidate created it first
        throw createErr;
      }
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const key = `${holder}|${spec.renewTime ? new Date(spec.renewTime).toISOString() : ''}|${spec.leaseDurationSeconds ?? ''}`;
    if (this.observed?.key !== key) this.observed = { key, at: Date.now() };
    const duration = (spec.leaseDurationSeconds ?? this.leaseMs / 1000) * 1000;
    const expired = this.observed.at + duration <= Date.now();
    if (holder !== '' && holder !== identity && !expired) {
      if (this.leading) this.loseLeadership();
      return false;
    }
    const mine = holder === identity;
    const body: V1Lease = {
      ...lease,
      spec: {
        ...spec,
        holderIdentity: identity,
        leaseDurationSeconds: this.leaseMs / 1000,
        renewTime: now,
        acquireTime: mine && spec.acquireTime ? spec.acquireTime : now,
        leaseTransitions: (spec.leaseTransitions ?? 0) + (mine ? 0 : 1),
      },
    };
    try {
      await this.api.replaceNamespacedLease({ name: this.name, namespace, body });
      return true;
    } catch (err) {
      if (statusCode(err) === 409) return false; // someone else wrote it since we read it
      throw err;
    }
  }

  /** Stop campaigning; a leader gives the lease up so another replica can take over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.wake?.();
    await this.loop;
    if (!this.leading) return;
    this.leading = false;
    this.opts.onStoppedLeading();
    try {
      const lease = await this.api.readNamespacedLease({ name: this.name, namespace: this.opts.namespace });
      if (lease.spec?.holderIdentity !== this.opts.identity) return;
      await this.api.replaceNamespacedLease({
        name: this.name,
        namespace: this.opts.namespace,
        body: {
          ...lease,
          spec: {
            ...lease.spec,
            holderIdentity: '',
            leaseDurationSeconds: 1,
            renewTime: new V1MicroTime(Date.now()),
          },
        },
      });
    } catch (err) {
      log.warn('lease release failed', {
        lease: this.name,
        namespace: this.opts.namespace,
        ...errorFields(err),
      });
    }
  }
}
