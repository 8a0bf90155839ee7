// The pipeline as a table: one entry per stage of STAGES (src/api/stageContract.ts), each with the
// same four steps, so adding a stage is adding an entry. plan() walks the table in order:
//
//   runs(spec)   does the spec ask for this stage? If not, `skipped` may record why (once the stage
//                would be due), and it counts as done.
//   observe(ctx) read the stage's children into status (progress, success, failure, restarts) and say
//                where the stage stands: running, succeeded, or failed (the run fails with that reason).
//   start(ctx)   only while running: create the children that should exist and do not (first pod or
//                Job, the next attempt after a failure). Called only after every due stage has been
//                observed and none failed, so a failing run never has a create queued (Planner.fail
//                relies on it).
//   done(ctx)    only once succeeded: hand the stage's outputs (checkpoints) to the stages after it.
//
// A stage is due once every stage before it in the table is done, so the main chain runs one stage at
// a time as before. A side stage (`startsAfter`, the baselines) is due as soon as that one stage is
// done: it runs beside the main chain (dense beside the experts), and the stages after it in the table
// (eval) wait for it. The run's phase is the phase of the first stage not done. Pure, like plan(): no
// clock, no I/O.
import type { V1Pod } from '@kubernetes/client-node';
import { meanResults } from '../api/meanResults.js';
import type {
  Baseline,
  BTXRunSpec,
  ConditionType,
  ExpertStatus,
  RunPhase,
  StageStatus,
} from '../api/types.js';
import type { JobStage, runLayout, Stage, TerminationMessage } from '../api/stageContract.js';
import { lastLine, trainerTermination } from './failure.js';
import { observeExperts, startExperts } from './expertStage.js';
import { stageJobName } from './names.js';
import { JOB_POD_GRACE_MS, jobCondition, podsOfJob, readTerminationMessage } from './observe.js';
import type { Planner } from './planner.js';
import { buildStageJob, type SingleJobStage, type StageInputs } from './stageJob.js';
import { observeTokenize, startTokenize } from './tokenizeStage.js';

/** What every stage step sees: the planner, the effective spec, and what earlier stages produced. */
export interface StageContext {
  p: Planner;
  spec: BTXRunSpec;
  experts: ExpertStatus[];
  inputs: StageInputs;
  layout: ReturnType<typeof runLayout>;
}

export type StageOutcome =
  { state: 'running' } | { state: 'succeeded' } | { state: 'failed'; reason: string; message: string };

export interface PipelineStage {
  readonly stage: Stage;
  /** The run's phase while this stage is the first one not done. */
  readonly phase: RunPhase;
  /** A side stage: due once this stage is done, whatever else runs; later stages wait for it. */
  readonly startsAfter?: Stage;
  runs(spec: BTXRunSpec): boolean;
  skipped?(ctx: StageContext): void;
  observe(ctx: StageContext): StageOutcome;
  start(ctx: StageContext): void;
  done(ctx: StageContext): void;
}

const RUNNING: StageOutcome = { state: 'running' };
const SUCCEEDED: StageOutcome = { state: 'succeeded' };

/** How a Job stage reports itself in conditions (the seed has none). */
interface JobStageCondition {
  type: ConditionType;
  succeededReason: string;
}

interface JobStageEntry {
  stage: SingleJobStage;
  phase: RunPhase;
  startsAfter?: Stage;
  failReason: string;
  condition?: JobStageCondition;
  runs(spec: BTXRunSpec): boolean;
  skipped?(ctx: StageContext): void;
  /** What the stage's pod said when it succeeded (beyond its checkpoint). */
  onMessage?(ctx: StageContext, message: TerminationMessage): void;
  done(ctx: StageContext): void;
}

function stageStatus(ctx: StageContext, stage: JobStage): StageStatus {
  const st: StageStatus = ctx.p.status[stage] ?? { phase: 'Pending' };
  ctx.p.status[stage] = st;
  return st;
}

/** Follow a stage's Job: fail with its reason and last output, succeed with its pod's termination message. */
function observeJob(ctx: StageContext, entry: JobStageEntry): StageOutcome {
  const { p } = ctx;
  const { stage } = entry;
  const st = stageStatus(ctx, stage);
  if (st.phase === 'Succeeded') return SUCCEEDED;
  if (st.phase === 'Failed') return jobFailed(ctx, entry, st);
  const name = stageJobName(p.runName, stage, st.attempt ?? 1, p.status.round);
  const job = p.observed.jobs.find((j) => j.metadata?.name === name);
  if (!job) return jobRunning(ctx, entry); // start creates it
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
    return jobFailed(ctx, entry, st);
  }
  if (!jobCondition(job, 'Complete')) return jobRunning(ctx, entry);
  const pod = podsOfJob(job, p.observed.pods).find((x) => x.status?.phase === 'Succeeded');
  if (!pod) {
    // The Job's status can reach us before its pod's final status does; wait a little for the message.
    const doneAt = job.status?.completionTime ? new Date(job.status.completionTime).getTime() : p.nowMs;
    if (p.nowMs - doneAt < JOB_POD_GRACE_MS) {
      p.requeueAfter(1000);
      return jobRunning(ctx, entry);
    }
  }
  const message = pod ? readTerminationMessage(pod) : undefined;
  st.phase = 'Succeeded';
  st.completionTime = job.status?.completionTime
    ? new Date(job.status.completionTime).toISOString()
    : p.nowIso;
  if (message?.checkpoint) st.checkpoint = message.checkpoint;
  if (message && entry.onMessage) entry.onMessage(ctx, message);
  p.event('Normal', 'StageSucceeded', `stage ${stage} succeeded (Job ${name})`);
  if (entry.condition) {
    p.condition({
      type: entry.condition.type,
      status: 'True',
      reason: entry.condition.succeededReason,
      message: `stage ${stage} succeeded`,
    });
  }
  return SUCCEEDED;
}

function jobRunning(ctx: StageContext, entry: JobStageEntry): StageOutcome {
  if (entry.condition) {
    ctx.p.condition({
      type: entry.condition.type,
      status: 'False',
      reason: 'StageRunning',
      message: `stage ${entry.stage} is running`,
    });
  }
  return RUNNING;
}

function jobFailed(ctx: StageContext, entry: JobStageEntry, st: StageStatus): StageOutcome {
  if (!entry.condition) {
    return {
      state: 'failed',
      reason: entry.failReason,
      message: `the ${entry.stage} stage failed: ${st.message ?? ''}`,
    };
  }
  const message = st.message ?? `stage ${entry.stage} failed`;
  ctx.p.condition({ type: entry.condition.type, status: 'False', reason: entry.failReason, message });
  return { state: 'failed', reason: entry.failReason, message };
}

/** Create the stage's Job for its current attempt if it is not there. */
function startJob(ctx: StageContext, stage: SingleJobStage): void {
  const { p, spec, inputs } = ctx;
  const st = stageStatus(ctx, stage);
  const attempt = st.attempt ?? 1;
  const round = p.status.round ?? 1;
  const name = stageJobName(p.runName, stage, attempt, round);
  if (p.observed.jobs.some((j) => j.metadata?.name === name)) return;
  p.actions.push({
    kind: 'createJob',
    job: buildStageJob({ run: p.run, spec, stage, attempt, round, inputs }),
  });
  if (st.phase !== 'Running') p.event('Normal', 'StageStarted', `stage ${stage} started (Job ${name})`);
  st.phase = 'Running';
  st.job = name;
  st.startTime ??= p.nowIso;
}

/** A single-pod stage run as one Job. */
function jobStage(entry: JobStageEntry): PipelineStage {
  return {
    stage: entry.stage,
    phase: entry.phase,
    ...(entry.startsAfter ? { startsAfter: entry.startsAfter } : {}),
    runs: entry.runs,
    ...(entry.skipped ? { skipped: entry.skipped } : {}),
    observe: (ctx) => observeJob(ctx, entry),
    start: (ctx) => startJob(ctx, entry.stage),
    done: entry.done,
  };
}

/** The pipeline, in the order of STAGES. */
export const PIPELINE: readonly PipelineStage[] = [
  {
    // First of all: the seed's own training data is tokenized here too, with the same tokenizer.
    stage: 'tokenize',
    phase: 'Tokenizing',
    runs: () => true,
    observe: (ctx) => observeTokenize(ctx.p, ctx.spec),
    start: (ctx) => startTokenize(ctx.p, ctx.spec),
    done: () => undefined,
  },
  jobStage({
    stage: 'seed',
    phase: 'Seeding',
    failReason: 'SeedFailed',
    runs: (spec) => spec.seed.train !== undefined,
    done: (ctx) => {
      ctx.inputs.seedCheckpoint = ctx.p.status.seed?.checkpoint ?? ctx.layout.seed;
    },
  }),
  {
    stage: 'expert',
    phase: 'TrainingExperts',
    runs: () => true,
    observe: (ctx) => observeExperts(ctx.p, ctx.spec, ctx.experts),
    start: (ctx) => startExperts(ctx.p, ctx.spec, ctx.experts, ctx.inputs.seedCheckpoint),
    done: (ctx) => {
      ctx.inputs.experts = ctx.experts
        .filter((e) => e.phase === 'Succeeded')
        .map((e) => ({ name: e.name, checkpoint: e.checkpoint ?? ctx.layout.expert(e.name) }));
    },
  },
  jobStage({
    stage: 'mix',
    phase: 'Mixing',
    failReason: 'MixFailed',
    condition: { type: 'Mixed', succeededReason: 'MixSucceeded' },
    runs: () => true,
    done: (ctx) => {
      ctx.inputs.mixCheckpoint = ctx.p.status.mix?.checkpoint ?? ctx.layout.mixed;
      ctx.inputs.btxCheckpoint = ctx.inputs.mixCheckpoint;
    },
  }),
  jobStage({
    stage: 'finetune',
    phase: 'Finetuning',
    failReason: 'FinetuneFailed',
    condition: { type: 'Finetuned', succeededReason: 'FinetuneSucceeded' },
    runs: (spec) => spec.finetune.steps > 0,
    skipped: (ctx) =>
      ctx.p.condition({
        type: 'Finetuned',
        status: 'True',
        reason: 'FinetuneSkipped',
        message: 'spec.finetune.steps is 0',
      }),
    done: (ctx) => {
      ctx.inputs.btxCheckpoint = ctx.p.status.finetune?.checkpoint ?? ctx.layout.finetuned;
    },
  }),
  jobStage({
    stage: 'dense',
    phase: 'TrainingBaselines',
    failReason: 'DenseFailed',
    startsAfter: 'seed',
    runs: (spec) => wantsBaseline(spec, 'dense'),
    done: (ctx) => {
      ctx.inputs.denseCheckpoint = ctx.p.status.dense?.checkpoint ?? ctx.layout.dense;
    },
  }),
  jobStage({
    stage: 'sparseUpcyclingMix',
    phase: 'TrainingBaselines',
    failReason: 'SparseUpcyclingFailed',
    startsAfter: 'seed',
    runs: (spec) => wantsBaseline(spec, 'sparseUpcycling'),
    done: (ctx) => {
      ctx.inputs.upcycledCheckpoint = ctx.p.status.sparseUpcyclingMix?.checkpoint ?? ctx.layout.upcycled;
    },
  }),
  jobStage({
    stage: 'sparseUpcycling',
    phase: 'TrainingBaselines',
    failReason: 'SparseUpcyclingFailed',
    startsAfter: 'sparseUpcyclingMix',
    runs: (spec) => wantsBaseline(spec, 'sparseUpcycling'),
    done: (ctx) => {
      ctx.inputs.sparseUpcyclingCheckpoint =
        ctx.p.status.sparseUpcycling?.checkpoint ?? ctx.layout.sparseUpcycling;
    },
  }),
  jobStage({
    stage: 'eval',
    phase: 'Evaluating',
    failReason: 'EvalFailed',
    condition: { type: 'Evaluated', succeededReason: 'EvalSucceeded' },
    runs: (spec) => spec.eval.enabled,
    onMessage: (ctx, m) => {
      if (m.results) {
        ctx.p.status.results = m.results;
        ctx.p.status.meanResults = meanResults(m.results);
      }
      if (m.routing) ctx.p.status.routing = m.routing;
    },
    done: () => undefined,
  }),
];

function wantsBaseline(spec: BTXRunSpec, baseline: Baseline): boolean {
  return (spec.baselines ?? []).includes(baseline);
}

/**
 * Walk the table: observe every due stage in order (a success hands its outputs on at once, which may
 * make the next one due), fail the run at the first failure, then start every stage still running. The
 * phase is the first not-done stage's; every stage done means Succeeded.
 */
export function walkPipeline(ctx: StageContext): void {
  const done = new Set<Stage>();
  const running: PipelineStage[] = [];
  let firstNotDone: PipelineStage | undefined;
  for (const [i, stage] of PIPELINE.entries()) {
    const due = stage.startsAfter
      ? done.has(stage.startsAfter)
      : PIPELINE.slice(0, i).every((s) => done.has(s.stage));
    if (!stage.runs(ctx.spec)) {
      if (due) {
        stage.skipped?.(ctx);
        done.add(stage.stage);
      }
      continue;
    }
    if (!due) {
      firstNotDone ??= stage;
      continue;
    }
    const outcome = stage.observe(ctx);
    if (outcome.state === 'failed') {
      ctx.p.status.phase = stage.phase;
      ctx.p.fail(outcome.reason, outcome.message);
      return;
    }
    if (outcome.state === 'running') {
      firstNotDone ??= stage;
      running.push(stage);
      continue;
    }
    stage.done(ctx);
    done.add(stage.stage);
  }
  if (!firstNotDone) {
    ctx.p.succeed();
    return;
  }
  ctx.p.status.phase = firstNotDone.phase;
  for (const stage of running) stage.start(ctx);
}
