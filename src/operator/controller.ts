// The BTXRun controller: informer callbacks enqueue the owning run's `namespace/name`; workers take
// keys off the queue and reconcile: read the run and its children from the caches, plan(), write
// the status (only when it changed), then create/delete children and post Events.
import type { KubeConfig, KubernetesObject, V1Job, V1Pod } from '@kubernetes/client-node';
import type { BTXRun, BTXRunStatus, ExpertStatus, StageStatus } from '../api/types.js';
import { applyDefaults } from '../api/defaults.js';
import { JOB_STAGES } from '../api/stageContract.js';
import { validateRun } from '../api/validation.js';

import { Applier, type WriteCounter } from './apply.js';
import { Caches } from './informers.js';
import { Expectations } from './expectations.js';
import type { OperatorMetrics } from './metrics.js';
import { LABELS, RUN_NAME_ANNOTATION, runLabelValue } from './names.js';
import { plan, type Plan, type Problem, type Refusal } from './plan.js';
import { statusCode } from '../util/apiErrors.js';
import { jsonEqual } from '../util/jsonEqual.js';
import { errorFields, log } from '../util/log.js';
import { runWorkers, WorkQueue } from '../util/workQueue.js';

/** At most one status write per run this often when only training progress changed. */
export const PROGRESS_WRITE_INTERVAL_MS = 5000;
/** Every run is reconciled at least this often, events or not. */
export const RESYNC_PERIOD_MS = 5 * 60_000;
/** A run whose objects the API server refuses (400/413/422), or that plan() throws on, fails after this many attempts. */
export const MAX_REFUSED_ATTEMPTS = 5;
/** Wait between attempts after a refusal: 1 s doubling, at most 5 minutes (about 15 s to give up). */
const REFUSAL_BACKOFF_MS = 1000;
const REFUSAL_BACKOFF_MAX_MS = 5 * 60_000;

interface RefusalRecord extends Refusal {
  retryAt: number;
}

/**
 * What a failed child write means. 400/413/422: the API server refuses the object itself (a
 * template of the wrong shape, an invalid sidecar), which no retry fixes: the run fails after
 * MAX_REFUSED_ATTEMPTS. 403/404 (a quota, a missing namespace or ServiceAccount): reported the same
 * way but retried for good, since they are fixed outside the run. Anything else is retried with
 * backoff as before (the API server down, 429, 5xx).
 */
function refusalOf(err: unknown): { failsRun: boolean; message: string } | undefined {
  const cause = err instanceof Error && err.cause !== undefined ? err.cause : err;
  const code = statusCode(cause);
  if (code === undefined || ![400, 403, 404, 413, 422].includes(code)) return undefined;
  const fields = errorFields(err);
  return {
    failsRun: code !== 403 && code !== 404,
    message: `${fields.error}: ${fields.statusMessage ?? `HTTP ${code}`}`,
  };
}

export interface ControllerOptions {
  kubeConfig: KubeConfig;
  namespaces?: readonly string[];
  workers: number;
  metrics: OperatorMetrics;
  identity: string;
  countWrite?: WriteCounter;
}

function runKeyOf(obj: KubernetesObject): string | undefined {
  const ns = obj.metadata?.namespace;
  const name = obj.metadata?.annotations?.[RUN_NAME_ANNOTATION];
  if (!ns || !name) return undefined;
  if (obj.metadata?.labels?.[LABELS.run] !== runLabelValue(name)) return undefined;
  return `${ns}/${name}`;
}

function sameJson(a: unknown, b: unknown): boolean {
  return jsonEqual(a ?? {}, b ?? {});
}

/** The status without the fields training progress moves every few seconds. */
function withoutProgress(status: BTXRunStatus): BTXRunStatus {
  return {
    ...status,
    experts: status.experts?.map(
      ({ step: _s, loss: _l, totalSteps: _t, checkpoint: _c, ...rest }) => rest as ExpertStatus,
    ),
  };
}

function durationSeconds(s: { startTime?: string; completionTime?: string }): number {
  return s.startTime && s.completionTime
    ? (Date.parse(s.completionTime) - Date.parse(s.startTime)) / 1000
    : NaN;
}

export class Controller {
  queue: WorkQueue;
  readonly caches: Caches;
  readonly expectations = new Expectations();
  private readonly applier: Applier;
  /** Run key -> the resourceVersion our last status write replaced: the cache is behind until it moves. */
  private readonly staleVersion = new Map<string, string>();
  private readonly lastProgressWrite = new Map<string, number>();
  /** Run key -> its spec's checks, for the run's uid and generation they were made for. */
  private readonly specChecks = new Map<
    string,
    { uid: string; generation?: number; problems: Problem[]; spec: BTXRun['spec'] }
  >();
  /** Runs already warned about for status writes the API server stored unchanged. */
  private readonly prunedWarned = new Set<string>();
  /** Runs whose last attempt was refused (kept in memory: a restarted operator counts afresh). */
  private readonly refusals = new Map<string, RefusalRecord>();
  private workers: Promise<void> = Promise.resolve();
  private acting = false;
  private resync: NodeJS.Timeout | undefined;

  constructor(private readonly opts: ControllerOptions) {
    this.queue = new WorkQueue({ onDepth: (d) => opts.metrics.setQueueDepth(d) });
    this.applier = new Applier(
      opts.kubeConfig,
      this.expectations,
      opts.countWrite ?? (() => undefined),
      opts.identity,
    );
    this.caches = new Caches(opts.kubeConfig, opts.namespaces, {
      run: (run, kind) => {
        const key = `${run.metadata.namespace}/${run.metadata.name}`;
        if (kind === 'delete') {
          opts.metrics.forgetRun(run.metadata.namespace ?? '', run.metadata.name ?? '');
          this.expectations.forget(key);
          this.staleVersion.delete(key);
          this.lastProgressWrite.delete(key);
          this.refusals.delete(key);
          this.prunedWarned.delete(key);
          this.specChecks.delete(key);
          return;
        }
        this.queue.add(key);
      },
      pod: (pod, kind) => this.childEvent(pod, kind),
      job: (job, kind) => this.childEvent(job, kind),
    });
  }

  private childEvent(obj: V1Pod | V1Job, kind: 'add' | 'update' | 'delete'): void {
    const key = runKeyOf(obj);
    if (!key) return;
    const name = obj.metadata?.name ?? '';
    if (kind === 'add') this.expectations.observedCreate(key, name);
    if (kind === 'delete' || obj.metadata?.deletionTimestamp) this.expectations.observedDelete(key, name);
    this.queue.add(key);
  }

  /** Fill the caches (list + watch); standby replicas keep them warm too. */
  async startCaches(): Promise<void> {
    await this.caches.start();
  }

  /** Leader: start workers and enqueue every run. */
  startActing(): void {
    if (this.acting) return;
    this.acting = true;
    if (this.queue.isShuttingDown())
      this.queue = new WorkQueue({ onDepth: (d) => this.opts.metrics.setQueueDepth(d) });
    for (const run of this.caches.allRuns()) this.queue.add(`${run.metadata.namespace}/${run.metadata.name}`);
    this.resync = setInterval(() => {
      for (const run of this.caches.allRuns())
        this.queue.add(`${run.metadata.namespace}/${run.metadata.name}`);
    }, RESYNC_PERIOD_MS);
    this.workers = runWorkers(this.queue, 'btxruns', this.opts.workers, (key) => this.reconcile(key), {
      active: () => this.acting,
      onResult: (_key, result, seconds) => this.opts.metrics.reconciled(result, seconds),
    });
  }

  /** Lost the lease or shutting down: no new reconcile starts; the queue is closed. */
  async stopActing(): Promise<void> {
    this.acting = false;
    if (this.resync) clearInterval(this.resync);
    this.queue.shutDown();
    await this.workers;
  }

  isActing(): boolean {
    return this.acting;
  }

  async stop(): Promise<void> {
    await this.stopActing();
    await this.applier.flushEvents();
    await this.caches.stop();
  }

  /** One level-triggered step for one run. Exposed for tests. */
  async reconcile(
    key: string,
  ): Promise<{ requeueAfterMs?: number; result: 'success' | 'requeue' | 'skipped' }> {
    const slash = key.indexOf('/');
    const namespace = key.slice(0, slash);
    const name = key.slice(slash + 1);
    const run = this.caches.run(namespace, name);
    if (!run) return { result: 'success' };
    const rv = run.metadata.resourceVersion ?? '';
    if (this.staleVersion.get(key) === rv) {
      // Our own status write has not reached the cache yet: planning from it would undo it.
      return { result: 'skipped', requeueAfterMs: 2000 };
    }
    this.staleVersion.delete(key);
    if (!this.expectations.satisfied(key)) {
      return { result: 'skipped', requeueAfterMs: Math.max(1000, this.expectations.expiresIn(key)) };
    }
    const refused = this.refusals.get(key);
    if (refused && refused.retryAt > Date.now()) {
      return { result: 'skipped', requeueAfterMs: refused.retryAt - Date.now() };
    }

    const label = runLabelValue(name);
    const mine = (o: KubernetesObject) =>
      o.metadata?.labels?.[LABELS.run] === label && o.metadata?.annotations?.[RUN_NAME_ANNOTATION] === name;
    const observed = {
      pods: this.caches.podsIn(namespace).filter(mine),
      jobs: this.caches.jobsIn(namespace).filter(mine),
    };
    const { problems, spec } = this.checkedSpec(key, run);
    const defaulted: BTXRun = { ...run, spec };
    const now = new Date();
    let result: Plan;
    let planThrew = false;
    try {
      result = plan({ run: defaulted, observed, now, problems, ...(refused ? { refusal: refused } : {}) });
    } catch (err) {
      // A bug or a spec shape the checks missed: say so in the run's status instead of retrying blind.
      const message = `the operator could not plan this run: ${errorFields(err).error}`;
      planThrew = true;
      const refusal = this.noteRefusal(key, 'PlanFailed', message, true);
      result = plan({ run: defaulted, observed, now, problems, refusal: { ...refusal, skipStages: true } });
      result.requeueAfterMs = Math.min(result.requeueAfterMs ?? Infinity, refusal.retryAt - now.getTime());
    }
    let requeueAfterMs = result.requeueAfterMs;

    const old = run.status ?? {};
    if (!sameJson(old, result.status)) {
      const progressOnly = sameJson(withoutProgress(old), withoutProgress(result.status));
      const last = this.lastProgressWrite.get(key) ?? 0;
      const wait = last + PROGRESS_WRITE_INTERVAL_MS - now.getTime();
      if (progressOnly && wait > 0) {
        requeueAfterMs = Math.min(requeueAfterMs ?? wait, wait);
      } else {
        if (!this.acting) return { result: 'skipped' };
        const written = await this.applier.writeStatus(run, result.status);
        if (written === 'conflict') return { result: 'requeue', requeueAfterMs: 0 }; // read again
        // The cache is behind until our write's watch event arrives. A write the API server stored
        // unchanged (it pruned what differed: a CRD older than this operator) keeps its
        // resourceVersion and sends no event: waiting for the cache to move would wait for good.
        if (written === rv) this.notePrunedStatus(key, old, result.status);
        else this.staleVersion.set(key, rv);
        this.lastProgressWrite.set(key, now.getTime());
        this.recordTransitions(namespace, name, old, result.status);
      }
    }
    if (!this.acting) return { result: 'skipped' };
    try {
      await this.applier.children(key, namespace, result.actions);
    } catch (err) {
      const refusal = refusalOf(err);
      if (!refusal) throw err;
      const noted = this.noteRefusal(key, 'CreateRefused', refusal.message, refusal.failsRun);
      this.applier.events(run, result.actions);
      return { result: 'requeue', requeueAfterMs: Math.max(1, noted.retryAt - Date.now()) };
    }
    if (!planThrew) this.refusals.delete(key);
    this.applier.events(run, result.actions);
    this.opts.metrics.observeRun({ ...run, status: result.status });
    return requeueAfterMs !== undefined ? { result: 'requeue', requeueAfterMs } : { result: 'success' };
  }

  /**
   * Says once per run that its status writes change nothing: the API server drops fields this
   * operator writes (install the CRD of this release). The run goes on; each such reconcile costs a write.
   */
  private notePrunedStatus(key: string, stored: BTXRunStatus, planned: BTXRunStatus): void {
    if (this.prunedWarned.has(key)) return;
    this.prunedWarned.add(key);
    const [namespace, name] = key.split('/');
    const dropped = Object.keys(planned).filter(
      (k) => !sameJson(planned[k as keyof BTXRunStatus], stored[k as keyof BTXRunStatus]),
    );
    log.warn('the API server stored the status unchanged: is the BTXRun CRD older than the operator?', {
      namespace,
      name,
      fields: dropped.map((k) => `status.${k}`).join(','),
    });
  }

  /**
   * validateRun and applyDefaults, once per spec: they read only apiVersion, kind and spec, and the
   * API server bumps metadata.generation on every spec change (not on status writes, which most
   * reconciles follow). They took a fifth of the operator's CPU in the bench when run every time.
   */
  private checkedSpec(key: string, run: BTXRun): { problems: Problem[]; spec: BTXRun['spec'] } {
    const { uid, generation } = run.metadata;
    const kept = this.specChecks.get(key);
    // A copy: the child builders share parts of the spec (template fields) with the objects they build.
    if (kept && uid && generation !== undefined && kept.uid === uid && kept.generation === generation)
      return { problems: kept.problems, spec: structuredClone(kept.spec) };
    let checked: { problems: Problem[]; spec: BTXRun['spec'] };
    try {
      checked = { problems: validateRun(run), spec: applyDefaults(run.spec) };
    } catch (err) {
      checked = {
        problems: [{ field: 'spec', message: err instanceof Error ? err.message : String(err) }],
        spec: run.spec,
      };
    }
    this.specChecks.set(key, { ...checked, spec: structuredClone(checked.spec), uid: uid ?? '', generation });
    return checked;
  }

  /** Count one more refused attempt for the run; the next one waits the backoff. */
  private noteRefusal(key: string, reason: string, message: string, failsRun: boolean): RefusalRecord {
    const [namespace, name] = key.split('/');
    const attempts = (this.refusals.get(key)?.attempts ?? 0) + 1;
    // The attempt that reaches the limit fails the run at once: nothing left to wait for.
    const last = failsRun && attempts >= MAX_REFUSED_ATTEMPTS;
    const wait = last ? 0 : Math.min(REFUSAL_BACKOFF_MAX_MS, REFUSAL_BACKOFF_MS * 2 ** (attempts - 1));
    const record: RefusalRecord = {
      reason,
      message,
      attempts,
      retryAt: Date.now() + wait,
      ...(failsRun ? { maxAttempts: MAX_REFUSED_ATTEMPTS } : {}),
    };
    this.refusals.set(key, record);
    log.warn('run refused', { namespace, name, reason, attempts, retryMs: wait, refusal: message });
    return record;
  }

  /** Metrics that count transitions: restarts and stage durations. */
  private recordTransitions(namespace: string, name: string, old: BTXRunStatus, next: BTXRunStatus): void {
    const m = this.opts.metrics;
    const before = new Map((old.experts ?? []).map((e) => [e.name, e]));
    for (const e of next.experts ?? []) {
      const was = before.get(e.name);
      if ((e.totalRestarts ?? 0) > (was?.totalRestarts ?? 0) && e.lastFailure) {
        m.expertRestarted(namespace, name, e.name, e.lastFailure.reason);
      }
      if (e.phase === 'Succeeded' && was?.phase !== 'Succeeded')
        m.stageFinished('expert', durationSeconds(e));
    }
    for (const stage of JOB_STAGES) {
      const s: StageStatus | undefined = next[stage];
      if (s?.phase === 'Succeeded' && old[stage]?.phase !== 'Succeeded')
        m.stageFinished(stage, durationSeconds(s));
    }
  }
}
