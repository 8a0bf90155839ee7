// The working state of one plan() call and the verbs every stage shares: queue an action, set a
// condition, ask to come back later, fail or finish the run. Pure like plan(): the clock is an input.
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import type { BTXRun, BTXRunStatus, Condition, ConditionType, RunPhase } from '../api/types.js';
import { setCondition, type ConditionInput } from './conditions.js';
import { isJobFinished, isPodTerminal } from './observe.js';

export interface Problem {
  field: string;
  message: string;
}

export interface Observed {
  pods: readonly V1Pod[];
  jobs: readonly V1Job[];
}

export type EventType = 'Normal' | 'Warning';

export type Action =
  | { kind: 'createPod'; pod: V1Pod }
  | { kind: 'deletePod'; name: string; why: string }
  | { kind: 'createJob'; job: V1Job }
  | { kind: 'deleteJob'; name: string; why: string }
  | { kind: 'event'; type: EventType; reason: string; message: string };

export interface Plan {
  actions: Action[];
  status: BTXRunStatus;
  /** Come back after this long even if nothing changes (backoff, TTL, a slow cache). */
  requeueAfterMs?: number;
}

export function isTerminalPhase(phase: RunPhase | undefined): boolean {
  return phase === 'Succeeded' || phase === 'Failed';
}

export function ownedByJob(pod: V1Pod): boolean {
  return (pod.metadata?.ownerReferences ?? []).some((o) => o.kind === 'Job');
}

/** What {@link Planner.fail} did beyond marking the run Failed: the children it stops. */
export interface FailCancels {
  /** Running pods and Jobs it deletes (failed pods stay for `kubectl logs`). */
  deleted: string[];
  /** Experts it marks Stopped (their checkpoints stay). */
  stoppedExperts: string[];
}

/** Mutable working state of one plan() call. */
export class Planner {
  readonly actions: Action[] = [];
  readonly status: BTXRunStatus;
  private requeueMs: number | undefined;
  readonly nowIso: string;
  readonly nowMs: number;
  readonly generation: number | undefined;
  readonly runName: string;
  readonly namespace: string;

  constructor(
    readonly run: BTXRun,
    readonly observed: Observed,
    now: Date,
  ) {
    this.status = structuredClone(run.status ?? {});
    this.nowIso = now.toISOString();
    this.nowMs = now.getTime();
    this.generation = run.metadata.generation;
    this.runName = run.metadata.name ?? '';
    this.namespace = run.metadata.namespace ?? 'default';
  }

  result(): Plan {
    this.status.observedGeneration = this.generation;
    const plan: Plan = { actions: this.actions, status: this.status };
    if (this.requeueMs !== undefined) plan.requeueAfterMs = this.requeueMs;
    return plan;
  }

  requeueAfter(ms: number): void {
    const v = Math.max(1, Math.ceil(ms));
    if (this.requeueMs === undefined || v < this.requeueMs) this.requeueMs = v;
  }

  event(type: EventType, reason: string, message: string): void {
    this.actions.push({ kind: 'event', type, reason, message });
  }

  condition(input: ConditionInput): void {
    this.status.conditions = setCondition(this.status.conditions ?? [], input, this.nowIso, this.generation);
  }

  hasConditionTrue(type: ConditionType): boolean {
    return (this.status.conditions ?? []).some((c: Condition) => c.type === type && c.status === 'True');
  }

  /**
   * The run fails for good. Stages create children only in their `start` step, after `observe` found
   * nothing failing, so no create is ever queued when a run fails (a stage table that broke this
   * would throw here, in the tests). What it does cancel is listed in its result: the pods and Jobs
   * still running are deleted, and experts not finished are marked Stopped.
   */
  fail(reason: string, message: string): FailCancels {
    const created = this.actions.find((a) => a.kind === 'createPod' || a.kind === 'createJob');
    if (created) throw new Error(`plan: the run failed (${reason}) after a create was queued`);
    this.status.phase = 'Failed';
    this.status.completionTime ??= this.nowIso;
    this.condition({ type: 'Failed', status: 'True', reason, message });
    this.condition({
      type: 'Restarting',
      status: 'False',
      reason: 'RunFinished',
      message: 'the run has finished',
    });
    this.event('Warning', 'RunFailed', message);
    const deleted = this.stopLeftovers('the run failed');
    // Experts still training are stopped with the run; saying Running would be a lie once the pods go.
    const stoppedExperts: string[] = [];
    for (const e of this.status.experts ?? []) {
      if (e.phase !== 'Succeeded' && e.phase !== 'Failed') {
        e.phase = 'Stopped';
        delete e.nextAttemptTime;
        stoppedExperts.push(e.name);
      }
    }
    return { deleted, stoppedExperts };
  }

  succeed(): void {
    this.status.phase = 'Succeeded';
    this.status.completionTime ??= this.nowIso;
    const message = 'every stage finished';
    this.condition({ type: 'Succeeded', status: 'True', reason: 'PipelineSucceeded', message });
    this.event('Normal', 'RunSucceeded', message);
  }

  /** Names this plan already deletes. */
  private deleting(): Set<string> {
    return new Set(this.actions.map((a) => (a.kind === 'deletePod' || a.kind === 'deleteJob' ? a.name : '')));
  }

  /**
   * Delete children still running (after the end, or when suspending); returns their names.
   * Failed pods stay for `kubectl logs`; pods of Jobs go with their Job; a child this plan already
   * deletes (a superseded attempt) is not deleted twice.
   */
  stopLeftovers(why: string): string[] {
    const already = this.deleting();
    const names: string[] = [];
    for (const pod of this.observed.pods) {
      const name = pod.metadata?.name ?? '';
      if (isPodTerminal(pod) || pod.metadata?.deletionTimestamp || ownedByJob(pod) || already.has(name))
        continue;
      this.actions.push({ kind: 'deletePod', name, why });
      names.push(name);
    }
    for (const job of this.observed.jobs) {
      const name = job.metadata?.name ?? '';
      if (isJobFinished(job) || job.metadata?.deletionTimestamp || already.has(name)) continue;
      this.actions.push({ kind: 'deleteJob', name, why });
      names.push(name);
    }
    return names;
  }

  /** After ttlSecondsAfterFinished: every child goes (pods of Jobs go with their Job). */
  deleteAllChildren(why: string): void {
    const already = this.deleting();
    for (const pod of this.observed.pods) {
      const name = pod.metadata?.name ?? '';
      if (pod.metadata?.deletionTimestamp || ownedByJob(pod) || already.has(name)) continue;
      this.actions.push({ kind: 'deletePod', name, why });
    }
    for (const job of this.observed.jobs) {
      const name = job.metadata?.name ?? '';
      if (job.metadata?.deletionTimestamp || already.has(name)) continue;
      this.actions.push({ kind: 'deleteJob', name, why });
    }
  }
}
