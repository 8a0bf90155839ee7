// Why did an expert's pod fail, and what does that cost? Disruptions (eviction, preemption, node
// loss, deletion by someone else) restart the expert without spending its budget; the user's
// failurePolicy rules come next; anything else spends budget and restarts after backoff.
import type { V1ContainerStateTerminated, V1Pod } from '@kubernetes/client-node';
import type { FailureRule } from '../api/types.js';

/** Bounded set: it is a metric label (btx_expert_restarts_total{reason}). */
export const FAILURE_REASONS = [
  'Evicted',
  'Preempted',
  'NodeLost',
  'PodDeleted',
  'DeadlineExceeded',
  'OOMKilled',
  'Error',
  'IgnoredByRule',
  'FailedByRule',
] as const;
export type FailureReason = (typeof FAILURE_REASONS)[number];

/** RestartFree: replace the pod, budget untouched. RestartWithBudget: spend one restart. FailNow: done. */
export type Verdict = 'RestartFree' | 'RestartWithBudget' | 'FailNow';

export interface Classification {
  reason: FailureReason;
  verdict: Verdict;
  message: string;
  exitCode?: number;
}

export const TRAINER_CONTAINER = 'trainer';

export function trainerTermination(pod: V1Pod): V1ContainerStateTerminated | undefined {
  const statuses = pod.status?.containerStatuses ?? [];
  const status = statuses.find((s) => s.name === TRAINER_CONTAINER) ?? statuses[0];
  return status?.state?.terminated ?? status?.lastState?.terminated;
}

function hasCondition(pod: V1Pod, type: string): boolean {
  return (pod.status?.conditions ?? []).some((c) => c.type === type && c.status === 'True');
}

/** A disruption from outside the trainer, or undefined when the trainer itself failed. */
function disruption(pod: V1Pod): { reason: FailureReason; why: string } | undefined {
  const target = (pod.status?.conditions ?? []).find(
    (c) => c.type === 'DisruptionTarget' && c.status === 'True',
  );
  if (target) {
    const r = target.reason ?? '';
    const why = target.message || r || 'DisruptionTarget';
    if (r.startsWith('Preemption')) return { reason: 'Preempted', why };
    if (r === 'DeletionByTaintManager' || r === 'DeletionByPodGC') return { reason: 'NodeLost', why };
    return { reason: 'Evicted', why };
  }
  const why = pod.status?.message || pod.status?.reason || '';
  switch (pod.status?.reason) {
    case 'Evicted':
      return { reason: 'Evicted', why };
    case 'Preempting':
    case 'Preempted':
      return { reason: 'Preempted', why };
    case 'NodeLost':
    case 'NodeShutdown':
    case 'Shutdown':
    case 'Terminated':
      return { reason: 'NodeLost', why };
    default:
      return undefined;
  }
}

/** The last line of a container's termination message (the log tail, with FallbackToLogsOnError). */
export function lastLine(message: string | undefined): string {
  const lines = (message ?? '').trim().split('\n');
  const line = (lines[lines.length - 1] ?? '').trim();
  return line.length > 200 ? `${line.slice(0, 197)}...` : line;
}

function ruleMatches(
  rule: FailureRule,
  pod: V1Pod,
  exitCode: number | undefined,
  disrupted: boolean,
): boolean {
  if (rule.onPodCondition !== undefined && !hasCondition(pod, rule.onPodCondition)) return false;
  if (rule.onExitCodes !== undefined) {
    // A disrupted process's exit code (137 after SIGKILL) says nothing about the trainer.
    if (disrupted || exitCode === undefined || !rule.onExitCodes.includes(exitCode)) return false;
  }
  return rule.onPodCondition !== undefined || rule.onExitCodes !== undefined;
}

/** Classify a Failed expert pod. */
export function classifyPodFailure(pod: V1Pod, rules: readonly FailureRule[] = []): Classification {
  const name = pod.metadata?.name ?? 'pod';
  const term = trainerTermination(pod);
  const exitCode = term?.exitCode;
  const disrupted = disruption(pod);
  const tail = lastLine(term?.message);
  const withExit = exitCode !== undefined ? { exitCode } : {};

  for (const rule of rules) {
    if (!ruleMatches(rule, pod, exitCode, disrupted !== undefined)) continue;
    const what =
      rule.onExitCodes !== undefined
        ? `exited with code ${exitCode}`
        : `has condition ${rule.onPodCondition}`;
    const detail = tail ? `: ${tail}` : '';
    if (rule.action === 'FailExpert') {
      return {
        reason: 'FailedByRule',
        verdict: 'FailNow',
        message: `pod ${name} ${what}, a permanent failure by failurePolicy${detail}`,
        ...withExit,
      };
    }
    if (rule.action === 'Ignore') {
      return {
        reason: 'IgnoredByRule',
        verdict: 'RestartFree',
        message: `pod ${name} ${what}, ignored by failurePolicy${detail}`,
        ...withExit,
      };
    }
    break; // Restart: the default path below, which spends budget
  }

  if (disrupted) {
    const text =
      { Evicted: 'was evicted', Preempted: 'was preempted', NodeLost: 'lost its node' }[
        disrupted.reason as 'Evicted' | 'Preempted' | 'NodeLost'
      ] ?? 'was disrupted';
    const why = disrupted.why ? `: ${disrupted.why}` : '';
    return {
      reason: disrupted.reason,
      verdict: 'RestartFree',
      message: `pod ${name} ${text}${why}`,
      ...withExit,
    };
  }
  if (pod.status?.reason === 'DeadlineExceeded') {
    return {
      reason: 'DeadlineExceeded',
      verdict: 'RestartWithBudget',
      message: `pod ${name} ran past activeDeadlineSeconds`,
      ...withExit,
    };
  }
  if (term?.reason === 'OOMKilled') {
    return {
      reason: 'OOMKilled',
      verdict: 'RestartWithBudget',
      message: `pod ${name} was killed for running out of memory`,
      ...withExit,
    };
  }
  const how = exitCode !== undefined ? `exited with code ${exitCode}` : 'failed';
  return {
    reason: 'Error',
    verdict: 'RestartWithBudget',
    message: `pod ${name} ${how}${tail ? `: ${tail}` : ''}`,
    ...withExit,
  };
}

/** The current attempt's pod is gone and nobody here deleted it (node gone, kubectl delete). */
export function classifyVanished(podName: string): Classification {
  return {
    reason: 'PodDeleted',
    verdict: 'RestartFree',
    message: `pod ${podName} disappeared before it finished`,
  };
}

/** Restart delay: backoffSeconds * 2^(restarts-1) after the n-th budgeted restart, capped at 10 minutes. */
export const MAX_BACKOFF_SECONDS = 600;
export function backoffSeconds(base: number, restarts: number): number {
  if (restarts <= 0 || base <= 0) return 0;
  return Math.min(MAX_BACKOFF_SECONDS, base * 2 ** (restarts - 1));
}
