// The heart of the operator: a pure function from (run, observed children, now) to the actions that
// move the world one step toward the spec and the status that describes it. No I/O, no clock, no
// memory: everything it needs is on the BTXRun (status included) or in the observed children, so a
// restarted operator decides exactly what the old one would have.
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import type {
  BTXRun,
  BTXRunSpec,
  BTXRunStatus,
  Condition,
  ConditionType,
  ExpertStatus,
  RunPhase,
  StageStatus,
  StartedWith,
} from '../api/types.js';
import { runLayout } from '../api/stageContract.js';
import { changedImmutableField, startedWithOf } from '../api/immutable.js';
import { setCondition, type ConditionInput } from './conditions.js';
import {
  backoffSeconds,
  classifyPodFailure,
  classifyVanished,
  trainerTermination,
  type Classification,
} from './failure.js';
import { expertPodName, fit, LABELS, stageJobName } from './names.js';
import { buildExpertPod } from './expertPod.js';
import { buildStageJob, type JobStage, type StageInputs } from './stageJob.js';
import {
  isJobFinished,
  isPodTerminal,
  jobCondition,
  podAttempt,
  podsOfJob,
  readProgress,
  readTerminationMessage,
} from './observe.js';

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

export interface PlanInput {
  /** The run with defaults applied. */
  run: BTXRun;
  observed: Observed;
  now: Date;
  /** What validation found wrong with the spec (the schema cannot say everything). */
  problems?: readonly Problem[];
}

export interface Plan {
  actions: Action[];
  status: BTXRunStatus;
  /** Come back after this long even if nothing changes (backoff, TTL, a slow cache). */
  requeueAfterMs?: number;
}

/** How long a finished Job may wait for its pod's final status to reach the cache. */
const JOB_POD_GRACE_MS = 30_000;

export function isTerminalPhase(phase: RunPhase | undefined): boolean {
  return phase === 'Succeeded' || phase === 'Failed';
}

/** Mutable working state of one plan() call. */
class Planner {
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

  fail(reason: string, message: string): void {
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
    // Nothing new starts in a failed run; what runs stops.
    const starts = new Set(['ExpertStarted', 'ExpertRestarted', 'StageStarted']);
    for (let i = this.actions.length - 1; i >= 0; i--) {
      const a = this.actions[i];
      if (
        a?.kind === 'createPod' ||
        a?.kind === 'createJob' ||
        (a?.kind === 'event' && starts.has(a.reason))
      ) {
        this.actions.splice(i, 1);
      }
    }
    this.stopLeftovers('the run failed');
    // Experts still training are stopped with the run; saying Running would be a lie once the pods go.
    for (const e of this.status.experts ?? []) {
      if (e.phase !== 'Succeeded' && e.phase !== 'Failed') {
        e.phase = 'Stopped';
        delete e.nextAttemptTime;
      }
    }
  }

  succeed(): void {
    this.status.phase = 'Succeeded';
    this.status.completionTime ??= this.nowIso;
    const message = 'every stage finished';
    this.condition({ type: 'Succeeded', status: 'True', reason: 'PipelineSucceeded', message });
    this.event('Normal', 'RunSucceeded', message);
  }

  /** Delete children still running (after the end, or when suspending). Failed pods stay for `kubectl logs`. */
  stopLeftovers(why: string): void {
    for (const pod of this.observed.pods) {
      if (isPodTerminal(pod) || pod.metadata?.deletionTimestamp || ownedByJob(pod)) continue;
      this.actions.push({ kind: 'deletePod', name: pod.metadata?.name ?? '', why });
    }
    for (const job of this.observed.jobs) {
      if (isJobFinished(job) || job.metadata?.deletionTimestamp) continue;
      this.actions.push({ kind: 'deleteJob', name: job.metadata?.name ?? '', why });
    }
  }
}

function ownedByJob(pod: V1Pod): boolean {
  return (pod.metadata?.ownerReferences ?? []).some((o) => o.kind === 'Job');
}

/** Terminal runs: nothing is re-derived; leftovers stop; ttlSecondsAfterFinished removes the children. */
function planTerminal(p: Planner, spec: BTXRunSpec): void {
  p.stopLeftovers('the run has finished');
  const ttl = spec.ttlSecondsAfterFinished;
  const done = p.status.completionTime ? Date.parse(p.status.completionTime) : NaN;
  if (ttl === undefined || Number.isNaN(done)) return;
  const at = done + ttl * 1000;
  if (p.nowMs < at) {
    p.requeueAfter(at - p.nowMs);
    return;
  }
  const deleting = new Set(
    p.actions.map((a) => (a.kind === 'deletePod' || a.kind === 'deleteJob' ? a.name : '')),
  );
  for (const pod of p.observed.pods) {
    const name = pod.metadata?.name ?? '';
    if (pod.metadata?.deletionTimestamp || ownedByJob(pod) || deleting.has(name)) continue;
    p.actions.push({ kind: 'deletePod', name, why: 'ttlSecondsAfterFinished passed' });
  }
  for (const job of p.observed.jobs) {
    const name = job.metadata?.name ?? '';
    if (job.metadata?.deletionTimestamp || deleting.has(name)) continue;
    p.actions.push({ kind: 'deleteJob', name, why: 'ttlSecondsAfterFinished passed' });
  }
}

/** The spec the run keeps going with: immutable fields as it started with them. */
function effectiveSpec(p: Planner, spec: BTXRunSpec): BTXRunSpec {
  const started: StartedWith = p.status.startedWith ?? startedWithOf(spec);
  p.status.startedWith = structuredClone(started);
  const change = changedImmutableField(started, spec);
  const wasDrifting = (p.status.conditions ?? []).some(
    (c) => c.type === 'SpecApplied' && c.status === 'False',
  );
  if (change) {
    const message = `${change.field} cannot change after the run started; the run keeps going with what it started with (status.startedWith)`;
    if (!wasDrifting) p.event('Warning', 'ImmutableFieldChanged', message);
    p.condition({ type: 'SpecApplied', status: 'False', reason: 'ImmutableFieldChanged', message });
  } else if (wasDrifting) {
    p.condition({
      type: 'SpecApplied',
      status: 'True',
      reason: 'SpecMatches',
      message: 'the spec matches what the run started with',
    });
  }
  const eff: BTXRunSpec = { ...spec, domains: started.domains, storage: started.storage };
  if (started.model) eff.model = started.model;
  else delete eff.model;
  return eff;
}

function initExperts(p: Planner, spec: BTXRunSpec): ExpertStatus[] {
  const old = new Map((p.status.experts ?? []).map((e) => [e.name, e]));
  const experts = spec.domains.map(
    (d) => old.get(d.name) ?? { name: d.name, phase: 'Pending' as const, attempt: 1, restarts: 0 },
  );
  p.status.experts = experts;
  return experts;
}

function expertPods(p: Planner, domain: string): V1Pod[] {
  const label = fit(domain);
  return p.observed.pods.filter(
    (pod) =>
      pod.metadata?.labels?.[LABELS.stage] === 'expert' && pod.metadata?.labels?.[LABELS.expert] === label,
  );
}

/** Suspend: stop what runs, keep checkpoints; the next attempt starts on resume and spends no budget. */
function planSuspend(p: Planner, experts: ExpertStatus[]): void {
  for (const e of experts) {
    if (e.phase === 'Succeeded' || e.phase === 'Failed') continue;
    const current = expertPodName(p.runName, e.name, e.attempt);
    const pod = expertPods(p, e.name).find((x) => x.metadata?.name === current);
    if (pod && pod.status?.phase === 'Succeeded') continue; // finished just in time: the next plan records it
    if (pod || e.pod === current) {
      e.attempt += 1;
      delete e.pod;
    }
    e.phase = 'Pending';
    delete e.nextAttemptTime;
  }
  for (const stage of ['seed', 'mix', 'finetune', 'eval'] as const) {
    const s = p.status[stage];
    if (!s || s.phase !== 'Running') continue;
    s.attempt = (s.attempt ?? 1) + 1;
    s.phase = 'Pending';
    delete s.job;
  }
  p.stopLeftovers('the run is suspended');
  if (!p.hasConditionTrue('Suspended'))
    p.event('Normal', 'Suspended', 'the run is suspended; running stages were stopped, checkpoints kept');
  p.condition({ type: 'Suspended', status: 'True', reason: 'RunSuspended', message: 'spec.suspend is true' });
  p.status.phase = 'Suspended';
}

type StageOutcome = 'waiting' | 'succeeded' | 'failed';

/** One Job stage: create its Job, follow it, read its pod's termination message when it completes. */
function planJobStage(
  p: Planner,
  spec: BTXRunSpec,
  stage: JobStage,
  inputs: StageInputs,
  onMessage?: (m: NonNullable<ReturnType<typeof readTerminationMessage>>) => void,
): StageOutcome {
  const st: StageStatus = p.status[stage] ?? { phase: 'Pending' };
  p.status[stage] = st;
  if (st.phase === 'Succeeded') return 'succeeded';
  if (st.phase === 'Failed') return 'failed';
  const attempt = st.attempt ?? 1;
  const name = stageJobName(p.runName, stage, attempt);
  const job = p.observed.jobs.find((j) => j.metadata?.name === name);
  if (!job) {
    p.actions.push({ kind: 'createJob', job: buildStageJob({ run: p.run, spec, stage, attempt, inputs }) });
    if (st.phase !== 'Running') p.event('Normal', 'StageStarted', `stage ${stage} started (Job ${name})`);
    st.phase = 'Running';
    st.job = name;
    st.startTime ??= p.nowIso;
    return 'waiting';
  }
  st.job = name;
  st.phase = 'Running';
  st.startTime ??= job.status?.startTime ? new Date(job.status.startTime).toISOString() : p.nowIso;
  const failed = jobCondition(job, 'Failed');
  if (failed) {
    const pods = podsOfJob(job, p.observed.pods).filter((x) => x.status?.phase === 'Failed');
    const tail = pods.length > 0 ? lastLine(trainerTermination(pods[pods.length - 1] as V1Pod)?.message) : '';
    st.phase = 'Failed';
    st.completionTime = p.nowIso;
    st.message = `Job ${name} failed (${failed.reason})${failed.message ? `: ${failed.message}` : ''}${tail ? `; last output: ${tail}` : ''}`;
    p.event('Warning', 'StageFailed', `stage ${stage} failed: ${st.message}`);
    return 'failed';
  }
  if (!jobCondition(job, 'Complete')) return 'waiting';
  const pod = podsOfJob(job, p.observed.pods).find((x) => x.status?.phase === 'Succeeded');
  if (!pod) {
    // The Job's status can reach us before its pod's final status does; wait a little for the message.
    const doneAt = job.status?.completionTime ? new Date(job.status.completionTime).getTime() : p.nowMs;
    if (p.nowMs - doneAt < JOB_POD_GRACE_MS) {
      p.requeueAfter(1000);
      return 'waiting';
    }
  }
  const message = pod ? readTerminationMessage(pod) : undefined;
  st.phase = 'Succeeded';
  st.completionTime = job.status?.completionTime
    ? new Date(job.status.completionTime).toISOString()
    : p.nowIso;
  if (message?.checkpoint) st.checkpoint = message.checkpoint;
  if (message && onMessage) onMessage(message);
  p.event('Normal', 'StageSucceeded', `stage ${stage} succeeded (Job ${name})`);
  return 'succeeded';
}

function lastLine(message: string | undefined): string {
  const lines = (message ?? '').trim().split('\n');
  const line = (lines[lines.length - 1] ?? '').trim();
  return line.length > 200 ? `${line.slice(0, 197)}...` : line;
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

function planExpert(p: Planner, spec: BTXRunSpec, e: ExpertStatus, seedCheckpoint: string): void {
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
    if (e.pod === name) {
      handleExpertFailure(p, spec, e, classifyVanished(name), p.nowIso);
      if (e.phase === 'Restarting') planExpert(p, spec, e, seedCheckpoint);
      return;
    }
    const next = e.nextAttemptTime ? Date.parse(e.nextAttemptTime) : NaN;
    if (!Number.isNaN(next) && next > p.nowMs) {
      e.phase = 'Restarting';
      p.requeueAfter(next - p.nowMs);
      return;
    }
    const domain = spec.domains.find((d) => d.name === e.name);
    if (!domain) return;
    p.actions.push({
      kind: 'createPod',
      pod: buildExpertPod({ run: p.run, spec, domain, attempt: e.attempt, seedCheckpoint }),
    });
    if (e.attempt === 1) p.event('Normal', 'ExpertStarted', `expert ${e.name} started (pod ${name})`);
    else p.event('Normal', 'ExpertRestarted', `expert ${e.name} started attempt ${e.attempt} (pod ${name})`);
    if (e.phase !== 'Restarting') e.phase = 'Pending';
    delete e.nextAttemptTime;
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
    if (e.phase === 'Restarting') planExpert(p, spec, e, seedCheckpoint); // create the next attempt now if no backoff
    return;
  }
  e.phase = phase === 'Running' ? 'Running' : e.phase === 'Restarting' ? 'Restarting' : 'Pending';
}

export function plan(input: PlanInput): Plan {
  const p = new Planner(input.run, input.observed, input.now);
  const spec = input.run.spec;
  if (input.run.metadata.deletionTimestamp) return p.result(); // the garbage collector takes the children
  if (isTerminalPhase(p.status.phase)) {
    planTerminal(p, spec);
    return p.result();
  }
  p.status.startTime ??= p.nowIso;

  const problems = input.problems ?? [];
  if (problems.length > 0) {
    const message = `invalid spec: ${problems.map((x) => (x.message.startsWith(x.field) ? x.message : `${x.field}: ${x.message}`)).join('; ')}`;
    p.event('Warning', 'InvalidSpec', message);
    p.status.phase = 'Failed';
    p.status.completionTime = p.nowIso;
    p.condition({ type: 'Failed', status: 'True', reason: 'InvalidSpec', message });
    p.event('Warning', 'RunFailed', message);
    p.stopLeftovers('the spec is invalid');
    return p.result();
  }

  const eff = effectiveSpec(p, spec);
  const experts = initExperts(p, eff);
  const layout = runLayout(p.namespace, p.runName);
  if (eff.suspend) {
    planSuspend(p, experts);
    summarize(p, experts);
    return p.result();
  }
  if (p.hasConditionTrue('Suspended')) {
    p.condition({
      type: 'Suspended',
      status: 'False',
      reason: 'RunResumed',
      message: 'spec.suspend is false',
    });
    p.event(
      'Normal',
      'Resumed',
      'the run resumed; stopped stages start again without spending restart budget',
    );
  }

  // Seed.
  let seedCheckpoint = eff.seed.checkpoint ?? layout.seed;
  const inputs: StageInputs = {
    seedCheckpoint,
    experts: [],
    mixCheckpoint: layout.mixed,
    btxCheckpoint: layout.finetuned,
  };
  if (eff.seed.train) {
    p.status.phase = 'Seeding';
    const outcome = planJobStage(p, eff, 'seed', inputs);
    if (outcome === 'failed') {
      p.fail('SeedFailed', `the seed stage failed: ${p.status.seed?.message ?? ''}`);
      summarize(p, experts);
      return p.result();
    }
    if (outcome === 'waiting') {
      summarize(p, experts);
      return p.result();
    }
    seedCheckpoint = p.status.seed?.checkpoint ?? layout.seed;
    inputs.seedCheckpoint = seedCheckpoint;
  }

  // Experts.
  p.status.phase = 'TrainingExperts';
  for (const e of experts) planExpert(p, eff, e, seedCheckpoint);
  const succeeded = experts.filter((e) => e.phase === 'Succeeded');
  const failed = experts.filter((e) => e.phase === 'Failed');
  const active = experts.length - succeeded.length - failed.length;
  const minExperts = Math.min(eff.failurePolicy?.minExperts ?? experts.length, experts.length);
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
    p.fail('ExpertFailed', message);
    summarize(p, experts);
    return p.result();
  }
  if (active > 0) {
    p.condition({
      type: 'ExpertsReady',
      status: 'False',
      reason: 'ExpertsTraining',
      message: `${succeeded.length}/${experts.length} experts succeeded`,
    });
    summarize(p, experts);
    return p.result();
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
  inputs.experts = succeeded.map((e) => ({
    name: e.name,
    checkpoint: e.checkpoint ?? layout.expert(e.name),
  }));

  // Mix, finetune, eval.
  p.status.phase = 'Mixing';
  const mixed = planJobStage(p, eff, 'mix', inputs);
  if (!afterStage(p, experts, mixed, 'Mixed', 'MixFailed', 'mix')) return p.result();
  inputs.mixCheckpoint = p.status.mix?.checkpoint ?? layout.mixed;
  inputs.btxCheckpoint = inputs.mixCheckpoint;

  if (eff.finetune.steps > 0) {
    p.status.phase = 'Finetuning';
    const tuned = planJobStage(p, eff, 'finetune', inputs);
    if (!afterStage(p, experts, tuned, 'Finetuned', 'FinetuneFailed', 'finetune')) return p.result();
    inputs.btxCheckpoint = p.status.finetune?.checkpoint ?? layout.finetuned;
  } else {
    p.condition({
      type: 'Finetuned',
      status: 'True',
      reason: 'FinetuneSkipped',
      message: 'spec.finetune.steps is 0',
    });
  }

  if (eff.eval.enabled) {
    p.status.phase = 'Evaluating';
    const evaluated = planJobStage(p, eff, 'eval', inputs, (m) => {
      if (m.results) p.status.results = m.results;
      if (m.routing) p.status.routing = m.routing;
    });
    if (!afterStage(p, experts, evaluated, 'Evaluated', 'EvalFailed', 'eval')) return p.result();
  }
  p.succeed();
  summarize(p, experts);
  return p.result();
}

const STAGE_DONE_REASON: Record<string, string> = {
  Mixed: 'MixSucceeded',
  Finetuned: 'FinetuneSucceeded',
  Evaluated: 'EvalSucceeded',
};

/** After a Job stage: true to go on to the next stage. */
function afterStage(
  p: Planner,
  experts: ExpertStatus[],
  outcome: StageOutcome,
  condition: ConditionType,
  failReason: string,
  stage: JobStage,
): boolean {
  if (outcome === 'succeeded') {
    p.condition({
      type: condition,
      status: 'True',
      reason: STAGE_DONE_REASON[condition] ?? 'Succeeded',
      message: `stage ${stage} succeeded`,
    });
    return true;
  }
  if (outcome === 'failed') {
    const message = p.status[stage]?.message ?? `stage ${stage} failed`;
    p.condition({ type: condition, status: 'False', reason: failReason, message });
    p.fail(failReason, message);
  } else {
    p.condition({
      type: condition,
      status: 'False',
      reason: 'StageRunning',
      message: `stage ${stage} is running`,
    });
  }
  summarize(p, experts);
  return false;
}

/** The printer columns (Restarts: the ones that spent budget, as the CRD's column says). */
function summarize(p: Planner, experts: ExpertStatus[]): void {
  const ready = experts.filter((e) => e.phase === 'Succeeded').length;
  p.status.expertsReady = `${ready}/${experts.length}`;
  p.status.restarts = experts.reduce((n, e) => n + e.restarts, 0);
}
