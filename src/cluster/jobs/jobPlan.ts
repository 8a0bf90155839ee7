// The Job controller's decisions, as a pure function of a Job and its pods (kubernetes
// pkg/controller/job/job_controller.go, NonIndexed completion mode): how many pods to create or
// delete, the status to write, and when to look again. The controller applies it.
import type { V1Job, V1JobCondition, V1Pod, V1PodFailurePolicyRule } from '@kubernetes/client-node';
import { nowRfc3339 } from '../kubelet/podStatus.js';
import { formatIndexes, parseIndexes, podIndex } from './completionIndexes.js';

export interface JobPlanOptions {
  /** First delay before replacing a failed pod; doubles per failure (10 s in Kubernetes). */
  backoffBaseMs: number;
  backoffMaxMs: number;
}

export interface JobEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

export interface JobPlan {
  createPods: number;
  /** Indexed Jobs: the completion index of each pod to create (createPods of them). */
  createIndexes: number[];
  deletePods: V1Pod[];
  /** The status fields the controller owns, as wire JSON (times are RFC 3339 strings). */
  status: Record<string, unknown>;
  events: JobEvent[];
  /** Look at the Job again after this long (back-off, deadline, TTL). */
  requeueAfterMs?: number;
  /** TTL after finishing has passed: delete the Job. */
  deleteJob: boolean;
}

type ConditionType = 'Complete' | 'Failed' | 'Suspended' | 'FailureTarget' | 'SuccessCriteriaMet';

function conditionOf(job: V1Job, type: ConditionType): V1JobCondition | undefined {
  return job.status?.conditions?.find((c) => c.type === type);
}

function isTrue(job: V1Job, type: ConditionType): boolean {
  return conditionOf(job, type)?.status === 'True';
}

function timeMs(t: Date | string | undefined): number | undefined {
  if (t === undefined || t === null) return undefined;
  const ms = new Date(t).getTime();
  return Number.isNaN(ms) ? undefined : ms;
}

function podFinishedMs(pod: V1Pod): number {
  let latest = 0;
  for (const s of [...(pod.status?.containerStatuses ?? []), ...(pod.status?.initContainerStatuses ?? [])]) {
    latest = Math.max(latest, timeMs(s.state?.terminated?.finishedAt) ?? 0);
  }
  return latest || (timeMs(pod.metadata?.creationTimestamp) ?? 0);
}

interface RuleMatch {
  action: string;
  message: string;
}

/** The first podFailurePolicy rule that matches a failed pod, with the message Kubernetes writes. */
export function matchPodFailurePolicy(rules: V1PodFailurePolicyRule[], pod: V1Pod): RuleMatch | undefined {
  const ref = `${pod.metadata?.namespace}/${pod.metadata?.name}`;
  for (let i = 0; i < rules.length; i++) {
    const rule = rules[i];
    if (!rule) continue;
    if (rule.onExitCodes) {
      const { containerName, operator, values } = rule.onExitCodes;
      const statuses = [
        ...(pod.status?.initContainerStatuses ?? []),
        ...(pod.status?.containerStatuses ?? []),
      ];
      for (const s of statuses) {
        if (containerName && s.name !== containerName) continue;
        const code = s.state?.terminated?.exitCode;
        if (code === undefined || code === 0) continue;
        const inValues = values.includes(code);
        if ((operator === 'In' && inValues) || (operator === 'NotIn' && !inValues)) {
          return {
            action: rule.action,
            message: `Container ${s.name} for pod ${ref} failed with exit code ${code} matching ${rule.action} rule at index ${i}`,
          };
        }
      }
    }
    for (const pattern of rule.onPodConditions ?? []) {
      const want = pattern.status ?? 'True';
      if ((pod.status?.conditions ?? []).some((c) => c.type === pattern.type && c.status === want)) {
        return {
          action: rule.action,
          message: `Pod ${ref} has condition ${pattern.type} matching ${rule.action} rule at index ${i}`,
        };
      }
    }
  }
  return undefined;
}

function setCondition(
  conditions: V1JobCondition[],
  type: ConditionType,
  status: 'True' | 'False',
  now: string,
  reason: string,
  message: string,
): V1JobCondition[] {
  const existing = conditions.find((c) => c.type === type);
  if (existing && existing.status === status && existing.reason === reason) return conditions;
  const next: V1JobCondition = {
    type,
    status,
    reason,
    message,
    lastProbeTime: now as unknown as Date,
    lastTransitionTime: (existing && existing.status === status ? existing.lastTransitionTime : now) as Date,
  };
  return existing ? conditions.map((c) => (c.type === type ? next : c)) : [...conditions, next];
}

/** Deletion order when there are too many pods: not yet running first, then the newest. */
function deletionOrder(a: V1Pod, b: V1Pod): number {
  const running = (p: V1Pod) => (p.status?.phase === 'Running' ? 1 : 0);
  return (
    running(a) - running(b) ||
    (timeMs(b.metadata?.creationTimestamp) ?? 0) - (timeMs(a.metadata?.creationTimestamp) ?? 0)
  );
}

export function planJob(job: V1Job, pods: V1Pod[], nowMs: number, opts: JobPlanOptions): JobPlan {
  const now = nowRfc3339(new Date(nowMs));
  const spec = job.spec;
  const rules = spec?.podFailurePolicy?.rules ?? [];
  const restartPolicy = spec?.template.spec?.restartPolicy ?? 'Never';
  const events: JobEvent[] = [];
  let conditions: V1JobCondition[] = [...(job.status?.conditions ?? [])];
  let requeue: number | undefined;
  const wake = (ms: number) => {
    requeue = requeue === undefined ? ms : Math.min(requeue, ms);
  };

  const active = pods.filter(
    (p) => !p.metadata?.deletionTimestamp && p.status?.phase !== 'Succeeded' && p.status?.phase !== 'Failed',
  );
  const terminating = pods.filter(
    (p) => p.metadata?.deletionTimestamp && p.status?.phase !== 'Succeeded' && p.status?.phase !== 'Failed',
  );
  const succeededPods = pods.filter((p) => p.status?.phase === 'Succeeded');
  const failedPods = pods.filter((p) => p.status?.phase === 'Failed');
  const ready = active.filter((p) =>
    p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
  ).length;

  // Failed pods count against backoffLimit unless a podFailurePolicy rule says Ignore.
  let failJob: RuleMatch | undefined;
  const counted: V1Pod[] = [];
  for (const p of failedPods) {
    // Pods the controller stopped because the Job was suspended are not failures.
    if (p.metadata?.deletionTimestamp && isTrue(job, 'Suspended')) continue;
    const match = rules.length ? matchPodFailurePolicy(rules, p) : undefined;
    if (match?.action === 'Ignore') continue;
    if (match?.action === 'FailJob' && !failJob) failJob = match;
    counted.push(p);
  }
  // Indexed: an index is done once a pod with that index succeeded (and stays done).
  const indexed = spec?.completionMode === 'Indexed' && typeof spec.completions === 'number';
  const completedIndexes = parseIndexes(job.status?.completedIndexes);
  if (indexed) {
    for (const p of succeededPods) {
      const i = podIndex(p);
      if (i !== undefined && i < (spec?.completions ?? 0)) completedIndexes.add(i);
    }
  }
  // Counts never go down (legacy tracking without job-tracking finalizers: pods deleted by hand stay counted).
  const succeeded = indexed
    ? completedIndexes.size
    : Math.max(job.status?.succeeded ?? 0, succeededPods.length);
  const failed = Math.max(job.status?.failed ?? 0, counted.length);
  const restarts =
    restartPolicy === 'OnFailure'
      ? active.reduce(
          (n, p) => n + (p.status?.containerStatuses ?? []).reduce((m, s) => m + (s.restartCount ?? 0), 0),
          0,
        )
      : 0;

  const finished = isTrue(job, 'Complete') || isTrue(job, 'Failed');
  let startTime = job.status?.startTime ? nowRfc3339(new Date(job.status.startTime)) : undefined;
  let completionTime = job.status?.completionTime
    ? nowRfc3339(new Date(job.status.completionTime))
    : undefined;
  let createPods = 0;
  const createIndexes: number[] = [];
  let deletePods: V1Pod[] = [];
  let deleteJob = false;

  if (!finished) {
    const suspended = spec?.suspend === true;
    if (suspended) {
      if (!isTrue(job, 'Suspended'))
        events.push({ type: 'Normal', reason: 'Suspended', message: 'Job suspended' });
      conditions = setCondition(conditions, 'Suspended', 'True', now, 'JobSuspended', 'Job suspended');
      deletePods = active;
      startTime = undefined;
    } else {
      if (isTrue(job, 'Suspended')) {
        conditions = setCondition(conditions, 'Suspended', 'False', now, 'JobResumed', 'Job resumed');
        events.push({ type: 'Normal', reason: 'Resumed', message: 'Job resumed' });
        startTime = undefined;
      }
      startTime ??= now;
    }

    // What ends the Job, first match wins (FailureTarget/SuccessCriteriaMet once decided stay).
    const completions = spec?.completions;
    const parallelism = spec?.parallelism ?? 1;
    const deadline = spec?.activeDeadlineSeconds;
    const elapsedMs = startTime ? nowMs - (timeMs(startTime) ?? nowMs) : 0;
    let failure: { reason: string; message: string } | undefined;
    const target = conditionOf(job, 'FailureTarget');
    if (target?.status === 'True')
      failure = { reason: target.reason ?? 'BackoffLimitExceeded', message: target.message ?? '' };
    else if (failJob) failure = { reason: 'PodFailurePolicy', message: failJob.message };
    else if (failed + restarts > (spec?.backoffLimit ?? 6))
      failure = { reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit' };
    else if (!suspended && deadline !== undefined && startTime && elapsedMs >= deadline * 1000) {
      failure = { reason: 'DeadlineExceeded', message: 'Job was active longer than specified deadline' };
    }
    const success =
      !failure &&
      (isTrue(job, 'SuccessCriteriaMet') ||
        (completions !== undefined && completions !== null
          ? succeeded >= completions
          : succeeded > 0 && active.length === 0));

    if (failure) {
      if (!isTrue(job, 'FailureTarget'))
        events.push({ type: 'Warning', reason: failure.reason, message: failure.message });
      conditions = setCondition(conditions, 'FailureTarget', 'True', now, failure.reason, failure.message);
      deletePods = active;
      // The Job is Failed once none of its pods is still running.
      if (active.length === 0 && terminating.length === 0) {
        conditions = setCondition(conditions, 'Failed', 'True', now, failure.reason, failure.message);
      }
    } else if (success) {
      conditions = setCondition(
        conditions,
        'SuccessCriteriaMet',
        'True',
        now,
        'CompletionsReached',
        'Reached expected number of succeeded pods',
      );
      deletePods = active;
      if (active.length === 0 && terminating.length === 0) {
        conditions = setCondition(
          conditions,
          'Complete',
          'True',
          now,
          'CompletionsReached',
          'Reached expected number of succeeded pods',
        );
        completionTime = now;
        events.push({ type: 'Normal', reason: 'Completed', message: 'Job completed' });
      }
    } else if (!suspended) {
      const want =
        completions !== undefined && completions !== null
          ? Math.max(0, Math.min(parallelism, completions - succeeded))
          : succeeded > 0
            ? 0
            : parallelism;
      // podReplacementPolicy Failed (the default with a podFailurePolicy): a terminating pod still
      // holds its slot until it is terminal.
      const waitForTerminating =
        spec?.podReplacementPolicy === 'Failed' ||
        (!spec?.podReplacementPolicy && spec?.podFailurePolicy !== undefined);
      const holding = active.length + (waitForTerminating ? terminating.length : 0);
      if (active.length > want) {
        deletePods = [...active].sort(deletionOrder).slice(0, active.length - want);
      } else if (holding < want) {
        // Replacements for failed pods wait base * 2^(failures-1) after the newest failure.
        const lastFailure = counted.reduce((t, p) => Math.max(t, podFinishedMs(p)), 0);
        const delay = failed > 0 ? Math.min(opts.backoffBaseMs * 2 ** (failed - 1), opts.backoffMaxMs) : 0;
        const waitMs = lastFailure + delay - nowMs;
        if (failed > 0 && waitMs > 0) wake(waitMs);
        else if (indexed) {
          // The lowest indexes that neither succeeded nor have a pod running.
          const running = new Set([...active, ...(waitForTerminating ? terminating : [])].map(podIndex));
          for (let i = 0; i < (completions ?? 0) && createIndexes.length < want - holding; i++) {
            if (!completedIndexes.has(i) && !running.has(i)) createIndexes.push(i);
          }
          createPods = createIndexes.length;
        } else createPods = want - holding;
      }
      if (deadline !== undefined && startTime) wake(Math.max(0, deadline * 1000 - elapsedMs));
    }
  } else {
    // A finished Job keeps no running pods.
    deletePods = active;
  }

  const finishedNow = conditions.some(
    (c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True',
  );
  const ttl = spec?.ttlSecondsAfterFinished;
  if (finishedNow && ttl !== undefined && ttl !== null) {
    const finishedAt = conditions.find(
      (c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True',
    );
    const at = (timeMs(finishedAt?.lastTransitionTime) ?? nowMs) + ttl * 1000;
    if (at <= nowMs) deleteJob = true;
    else wake(at - nowMs);
  }

  const status: Record<string, unknown> = {
    active: active.length,
    ready,
    terminating: terminating.length,
    succeeded,
    failed,
    ...(indexed ? { completedIndexes: formatIndexes(completedIndexes) } : {}),
    uncountedTerminatedPods: {},
    conditions: conditions.length ? conditions : undefined,
    startTime,
    completionTime,
  };
  for (const k of Object.keys(status)) if (status[k] === undefined) delete status[k];
  return { createPods, createIndexes, deletePods, status, events, requeueAfterMs: requeue, deleteJob };
}
