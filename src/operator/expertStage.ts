// The expert stage: one pod per domain, each with its own attempts, restart budget and backoff.
// `observeExperts` reads every expert's pods into status (progress, success, a failure and what it
// means: the next attempt, or the expert failed for good) and decides where the stage stands;
// `startExperts` then creates the pod of each expert's current attempt that is due and missing.
// Observing all experts before starting any is what lets a run fail without a create in flight.
import type { V1Pod } from '@kubernetes/client-node';
import type { BTXRunSpec, ExpertStatus } from '../api/types.js';
import {
  backoffSeconds,
  classifyPodFailure,
  classifyVanished,
  trainerTermination,
  type Classification,
} from './failure.js';
import { buildExpertPod } from './expertPod.js';
import { expertPodName, fit, LABELS } from './names.js';
import { isPodTerminal, podAttempt, readProgress, readTerminationMessage } from './observe.js';
import type { Planner } from './planner.js';
import type { StageOutcome } from './stages.js';

function expertPods(p: Planner, domain: string): V1Pod[] {
  const label = fit(domain);
  return p.observed.pods.filter(
    (pod) =>
      pod.metadata?.labels?.[LABELS.stage] === 'expert' && pod.metadata?.labels?.[LABELS.expert] === label,
  );
}

/** The pod of the expert's current attempt, if the cache has it. */
export function currentExpertPod(p: Planner, e: ExpertStatus): V1Pod | undefined {
  const name = expertPodName(p.runName, e.name, e.attempt);
  return expertPods(p, e.name).find((x) => x.metadata?.name === name);
}

function recordFailure(e: ExpertStatus, c: Classification, time: string, counts: boolean): void {
  e.lastFailure = {
    attempt: e.attempt,
    reason: c.reason,
    message: c.message,
    countsAgainstBudget: counts,
    time,
    ...(c.exitCode !== undefined ? { exitCode: c.exitCode } : {}),
  };
}

/** Decide what a failure of the expert's current attempt means, and move to the next attempt if any. */
function handleExpertFailure(
  p: Planner,
  spec: BTXRunSpec,
  e: ExpertStatus,
  c: Classification,
  failedAt: string,
): void {
  const max = spec.expert.maxRestarts;
  const restartFree = c.verdict === 'RestartFree';
  const canRestart = restartFree || (c.verdict === 'RestartWithBudget' && e.restarts < max);
  recordFailure(e, c, failedAt, c.verdict === 'RestartWithBudget' && canRestart);
  if (!canRestart) {
    e.phase = 'Failed';
    e.completionTime = p.nowIso;
    delete e.nextAttemptTime;
    const why = c.verdict === 'FailNow' ? 'a permanent failure' : `maxRestarts (${max}) exhausted`;
    p.event(
      'Warning',
      'ExpertFailed',
      `expert ${e.name} failed for good at attempt ${e.attempt} (${why}): ${c.message}`,
    );
    return;
  }
  if (!restartFree) e.restarts += 1;
  e.totalRestarts = (e.totalRestarts ?? 0) + 1;
  e.attempt += 1;
  e.phase = 'Restarting';
  delete e.pod;
  if (restartFree) delete e.nextAttemptTime;
  else {
    const delay = backoffSeconds(spec.expert.backoffSeconds, e.restarts);
    e.nextAttemptTime = new Date(Math.max(Date.parse(failedAt) || p.nowMs, 0) + delay * 1000).toISOString();
  }
  const budget = restartFree ? 'no budget spent' : `restart ${e.restarts}/${max}`;
  p.event(
    'Warning',
    'ExpertRestarting',
    `expert ${e.name} restarts as attempt ${e.attempt} after ${c.reason} (${budget}): ${c.message}`,
  );
}

/** Read one expert's pods into its status; a failure moves it to its next attempt (created by start). */
function observeExpert(p: Planner, spec: BTXRunSpec, e: ExpertStatus): void {
  const pods = expertPods(p, e.name);
  // Adopt a newer attempt a previous operator created before it could record it.
  const newest = Math.max(0, ...pods.map(podAttempt));
  if (newest > e.attempt) {
    e.attempt = newest;
    delete e.pod;
  }
  // Older attempts still running (superseded, e.g. after a suspend): stop them. Failed ones stay for logs.
  for (const pod of pods) {
    if (podAttempt(pod) < e.attempt && !isPodTerminal(pod) && !pod.metadata?.deletionTimestamp) {
      p.actions.push({
        kind: 'deletePod',
        name: pod.metadata?.name ?? '',
        why: 'a newer attempt replaced it',
      });
    }
  }
  if (e.phase === 'Succeeded' || e.phase === 'Failed') return;
  const name = expertPodName(p.runName, e.name, e.attempt);
  const pod = pods.find((x) => x.metadata?.name === name);
  if (!pod) {
    // We saw this attempt's pod before and did not delete it: it vanished (node gone, deleted by hand).
    if (e.pod === name) handleExpertFailure(p, spec, e, classifyVanished(name), p.nowIso);
    return;
  }
  e.pod = name;
  delete e.nextAttemptTime;
  const progress = readProgress(pod);
  if (progress) {
    if (progress.step !== undefined) e.step = progress.step;
    if (progress.totalSteps !== undefined) e.totalSteps = progress.totalSteps;
    if (progress.loss !== undefined) e.loss = progress.loss;
    if (progress.checkpoint !== undefined) e.checkpoint = progress.checkpoint;
  }
  if (pod.status?.startTime) e.startTime ??= new Date(pod.status.startTime).toISOString();
  const phase = pod.status?.phase;
  if (phase === 'Succeeded') {
    const message = readTerminationMessage(pod);
    if (message?.checkpoint) e.checkpoint = message.checkpoint;
    if (message?.step !== undefined) e.step = message.step;
    if (message?.loss !== undefined) e.loss = message.loss;
    if (e.totalSteps !== undefined && e.step !== undefined && e.step > e.totalSteps) e.totalSteps = e.step;
    e.phase = 'Succeeded';
    const finished = trainerTermination(pod)?.finishedAt;
    e.completionTime = finished ? new Date(finished).toISOString() : p.nowIso;
    p.event(
      'Normal',
      'ExpertSucceeded',
      `expert ${e.name} succeeded at attempt ${e.attempt}${e.checkpoint ? ` (${e.checkpoint})` : ''}`,
    );
    return;
  }
  if (phase === 'Failed') {
    const finished = trainerTermination(pod)?.finishedAt;
    const failedAt = finished ? new Date(finished).toISOString() : p.nowIso;
    handleExpertFailure(p, spec, e, classifyPodFailure(pod, spec.failurePolicy?.rules ?? []), failedAt);
    return;
  }
  e.phase = phase === 'Running' ? 'Running' : e.phase === 'Restarting' ? 'Restarting' : 'Pending';
}

/** Observe every expert; the stage fails once too few experts can still succeed. */
export function observeExperts(p: Planner, spec: BTXRunSpec, experts: ExpertStatus[]): StageOutcome {
  for (const e of experts) observeExpert(p, spec, e);
  const succeeded = experts.filter((e) => e.phase === 'Succeeded');
  const failed = experts.filter((e) => e.phase === 'Failed');
  const active = experts.length - succeeded.length - failed.length;
  const minExperts = Math.min(spec.failurePolicy?.minExperts ?? experts.length, experts.length);
  const restarting = experts.filter((e) => e.phase === 'Restarting');
  if (restarting.length > 0) {
    const list = restarting
      .map((e) => `${e.name} (attempt ${e.attempt}, after ${e.lastFailure?.reason ?? 'a failure'})`)
      .join(', ');
    p.condition({
      type: 'Restarting',
      status: 'True',
      reason: 'ExpertRestarting',
      message: `restarting: ${list}`,
    });
  } else {
    p.condition({
      type: 'Restarting',
      status: 'False',
      reason: 'NoRestartPending',
      message: 'no expert is waiting to restart',
    });
  }
  if (failed.length > 0 && succeeded.length + active < minExperts) {
    const first = failed[0] as ExpertStatus;
    const why = first.lastFailure ? `${first.lastFailure.reason}: ${first.lastFailure.message}` : 'failed';
    const message = `expert ${first.name} failed for good after ${first.restarts} restarts (${why}); ${succeeded.length + active} experts can still succeed, ${minExperts} needed`;
    p.condition({ type: 'ExpertsReady', status: 'False', reason: 'ExpertFailed', message });
    return { state: 'failed', reason: 'ExpertFailed', message };
  }
  if (active > 0) {
    p.condition({
      type: 'ExpertsReady',
      status: 'False',
      reason: 'ExpertsTraining',
      message: `${succeeded.length}/${experts.length} experts succeeded`,
    });
    return { state: 'running' };
  }
  if (failed.length === 0) {
    p.condition({
      type: 'ExpertsReady',
      status: 'True',
      reason: 'AllExpertsSucceeded',
      message: `${succeeded.length}/${experts.length} experts succeeded`,
    });
  } else {
    const dropped = failed.map((e) => `${e.name} (${e.lastFailure?.reason ?? 'failed'})`).join(', ');
    const message = `${succeeded.length}/${experts.length} experts succeeded (minExperts ${minExperts}); mixing without ${dropped}`;
    const was = (p.status.conditions ?? []).find((c) => c.type === 'ExpertsReady');
    if (was?.reason !== 'MinExpertsSucceeded') p.event('Warning', 'ExpertsDropped', message);
    p.condition({ type: 'ExpertsReady', status: 'True', reason: 'MinExpertsSucceeded', message });
  }
  return { state: 'succeeded' };
}

/** Create the current attempt's pod of every expert that has none and whose backoff has passed. */
export function startExperts(
  p: Planner,
  spec: BTXRunSpec,
  experts: ExpertStatus[],
  seedCheckpoint: string,
): void {
  for (const e of experts) {
    if (e.phase === 'Succeeded' || e.phase === 'Failed' || currentExpertPod(p, e)) continue;
    const next = e.nextAttemptTime ? Date.parse(e.nextAttemptTime) : NaN;
    if (!Number.isNaN(next) && next > p.nowMs) {
      e.phase = 'Restarting';
      p.requeueAfter(next - p.nowMs);
      continue;
    }
    const domain = spec.domains.find((d) => d.name === e.name);
    if (!domain) continue;
    const name = expertPodName(p.runName, e.name, e.attempt);
    p.actions.push({
      kind: 'createPod',
      pod: buildExpertPod({ run: p.run, spec, domain, attempt: e.attempt, seedCheckpoint }),
    });
    if (e.attempt === 1) p.event('Normal', 'ExpertStarted', `expert ${e.name} started (pod ${name})`);
    else p.event('Normal', 'ExpertRestarted', `expert ${e.name} started attempt ${e.attempt} (pod ${name})`);
    if (e.phase !== 'Restarting') e.phase = 'Pending';
    delete e.nextAttemptTime;
  }
}
