// The heart of the operator: a pure function from (run, observed children, now) to the actions that
// move the world one step toward the spec and the status that describes it. No I/O, no clock, no
// memory: everything it needs is on the BTXRun (status included) or in the observed children, so a
// restarted operator decides exactly what the old one would have. What happens before the stages
// (deletion, terminal runs, an invalid spec, immutable fields, suspend) is here; the stages
// themselves are the table in stages.ts.
import type { BTXRun, BTXRunSpec, ExpertStatus, StartedWith } from '../api/types.js';
import { JOB_STAGES, runLayout } from '../api/stageContract.js';
import { computeBudgets } from '../api/compute.js';
import { changedImmutableField, domainsChange, startedWithOf } from '../api/immutable.js';
import { currentExpertPod } from './expertStage.js';
import { expertPodName } from './names.js';
import { isTerminalPhase, Planner, type Observed, type Plan, type Problem } from './planner.js';
import { planNextRound } from './rounds.js';
import { reportSpecApplied } from './specApplied.js';
import { walkPipeline } from './stages.js';

export {
  isTerminalPhase,
  type Action,
  type EventType,
  type Observed,
  type Plan,
  type Problem,
} from './planner.js';

/**
 * The API server keeps refusing what this run needs (a child create answered 400/422, or plan()
 * itself threw): counted by the controller, reported here so the status says why.
 */
export interface Refusal {
  /** CreateRefused or PlanFailed. */
  reason: string;
  /** What was refused and the API server's message. */
  message: string;
  attempts: number;
  /** Fail the run once attempts reach this; undefined: never (403 quota, 404: not the spec's fault). */
  maxAttempts?: number;
  /** plan() threw on this run: do not walk the stages again in this call. */
  skipStages?: boolean;
}

export interface PlanInput {
  /** The run with defaults applied. */
  run: BTXRun;
  observed: Observed;
  now: Date;
  /** What validation found wrong with the spec (the schema cannot say everything). */
  problems?: readonly Problem[];
  refusal?: Refusal;
}

/**
 * A refusal becomes condition ChildFailure (True, the API server's message) and a Warning Event per
 * attempt; at maxAttempts the run fails with it. Returns true when the stages are not to be walked.
 */
function planRefusal(p: Planner, refusal: Refusal | undefined): boolean {
  const was = (p.status.conditions ?? []).find((c) => c.type === 'ChildFailure');
  if (!refusal) {
    if (was?.status === 'True')
      p.condition({
        type: 'ChildFailure',
        status: 'False',
        reason: 'ChildrenAccepted',
        message: 'the API server accepts what the run needs again',
      });
    return false;
  }
  const limit = refusal.maxAttempts;
  const tries = limit !== undefined ? `attempt ${refusal.attempts}/${limit}` : `attempt ${refusal.attempts}`;
  const message = `${refusal.message} (${tries})`;
  p.condition({ type: 'ChildFailure', status: 'True', reason: refusal.reason, message });
  if (limit !== undefined && refusal.attempts >= limit) {
    p.fail(refusal.reason, `${refusal.message} (gave up after ${refusal.attempts} attempts)`);
    return true;
  }
  p.event('Warning', refusal.reason, message);
  return refusal.skipStages === true;
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
  p.deleteAllChildren('ttlSecondsAfterFinished passed');
}

/** An invalid spec fails the run at once, naming every field, and creates nothing. */
function planInvalid(p: Planner, problems: readonly Problem[]): void {
  const message = `invalid spec: ${problems.map((x) => (x.message.startsWith(x.field) ? x.message : `${x.field}: ${x.message}`)).join('; ')}`;
  p.event('Warning', 'InvalidSpec', message);
  p.status.phase = 'Failed';
  p.status.completionTime = p.nowIso;
  p.condition({ type: 'Failed', status: 'True', reason: 'InvalidSpec', message });
  p.event('Warning', 'RunFailed', message);
  p.stopLeftovers('the spec is invalid');
}

/** The spec the run keeps going with: immutable fields as it started with them. */
function effectiveSpec(p: Planner, spec: BTXRunSpec): BTXRunSpec {
  const started: StartedWith = p.status.startedWith ?? startedWithOf(spec);
  // Runs started before the seed was recorded keep the seed they have now from here on.
  started.seed ??= structuredClone(spec.seed);
  p.status.startedWith = structuredClone(started);
  const change = changedImmutableField(started, spec);
  if (change) {
    // Appending or removing domains is allowed, but only once the run has Succeeded (rounds.ts).
    const kind = domainsChange(started.domains, spec.domains).kind;
    const roundChange = change.field.startsWith('spec.domains') && (kind === 'append' || kind === 'remove');
    change.message = roundChange
      ? `${change.field} can change only once the run has Succeeded (then appending domains trains their experts and removing domains mixes again without them); the run keeps going with what it started with (status.startedWith)`
      : `${change.field} cannot change after the run started; the run keeps going with what it started with (status.startedWith)`;
  }
  reportSpecApplied(p, change);
  const eff: BTXRunSpec = {
    ...spec,
    domains: started.domains,
    storage: started.storage,
    seed: started.seed,
  };
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

/** Suspend: stop what runs, keep checkpoints; the next attempt starts on resume and spends no budget. */
function planSuspend(p: Planner, experts: ExpertStatus[]): void {
  for (const e of experts) {
    if (e.phase === 'Succeeded' || e.phase === 'Failed') continue;
    const current = expertPodName(p.runName, e.name, e.attempt);
    const pod = currentExpertPod(p, e);
    if (pod && pod.status?.phase === 'Succeeded') continue; // finished just in time: the next plan records it
    if (pod || e.pod === current) {
      e.attempt += 1;
      delete e.pod;
    }
    e.phase = 'Pending';
    delete e.nextAttemptTime;
  }
  for (const stage of JOB_STAGES) {
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

function resumeIfSuspended(p: Planner): void {
  if (!p.hasConditionTrue('Suspended')) return;
  p.condition({
    type: 'Suspended',
    status: 'False',
    reason: 'RunResumed',
    message: 'spec.suspend is false',
  });
  p.event('Normal', 'Resumed', 'the run resumed; stopped stages start again without spending restart budget');
}

/** The printer columns (Restarts: the ones that spent budget, as the CRD's column says). */
function summarize(p: Planner, experts: ExpertStatus[]): void {
  const ready = experts.filter((e) => e.phase === 'Succeeded').length;
  p.status.expertsReady = `${ready}/${experts.length}`;
  p.status.restarts = experts.reduce((n, e) => n + e.restarts, 0);
}

export function plan(input: PlanInput): Plan {
  const p = new Planner(input.run, input.observed, input.now);
  const spec = input.run.spec;
  if (input.run.metadata.deletionTimestamp) return p.result(); // the garbage collector takes the children
  const problems = input.problems ?? [];
  if (isTerminalPhase(p.status.phase) && !planNextRound(p, spec, problems)) {
    planTerminal(p, spec);
    return p.result();
  }
  p.status.startTime ??= p.nowIso;
  p.status.round ??= 1;
  if (problems.length > 0) {
    planInvalid(p, problems);
    return p.result();
  }
  const eff = effectiveSpec(p, spec);
  const experts = initExperts(p, eff);
  // What BTX's training costs and the steps that give each trained baseline the same (src/api/compute.ts).
  if ((eff.baselines ?? []).length > 0 || eff.finetune.computeShare !== undefined)
    p.status.compute = computeBudgets(eff);
  else delete p.status.compute;
  if (planRefusal(p, input.refusal)) {
    // stopped here: the run failed with the refusal, or plan() threw on it and must not walk again
  } else if (eff.suspend) {
    planSuspend(p, experts);
  } else {
    resumeIfSuspended(p);
    const layout = runLayout(p.namespace, p.runName, undefined, p.status.round);
    const inputs = {
      seedCheckpoint: eff.seed.checkpoint ?? layout.seed,
      experts: [],
      mixCheckpoint: layout.mixed,
      btxCheckpoint: layout.finetuned,
    };
    walkPipeline({ p, spec: eff, experts, inputs, layout });
  }
  summarize(p, experts);
  return p.result();
}
