// The tokenize stage: one Job per domain (and one for the seed's training data), run before anything
// trains. `observeTokenize` reads each domain's Job into status.tokenize.domains (counts from its
// pods' termination messages, a split answer, a failure) and says where the stage stands;
// `startTokenize` creates the Job of every domain that needs one. plan() cannot look at the volume, so
// "the shards are current" is decided by the Job itself (its pod checks the manifest and answers
// `reused` within a second or two); and a domain's size is learned from its first pod, which answers
// `split` instead of tokenizing when the sources exceed spec.tokenize.partBytes: the domain then gets
// an Indexed Job of that many parts.
import type { V1Job } from '@kubernetes/client-node';
import type { TokenizeSummary } from '../api/stageContract.js';
import type { BTXRunSpec, TokenizeDomainStatus, TokenizeStatus } from '../api/types.js';
import { lastLine, trainerTermination } from './failure.js';
import { tokenizeJobName } from './names.js';
import { JOB_POD_GRACE_MS, jobCondition, podsOfJob, readTerminationMessage } from './observe.js';
import type { Planner } from './planner.js';
import type { StageOutcome } from './stages.js';
import { buildTokenizeJob, tokenizeTargets } from './tokenizeJob.js';
import { tokensFolder } from './tokensFolder.js';

export const TOKENIZE_FAILED = 'TokenizeFailed';

function tokenizeStatus(p: Planner, spec: BTXRunSpec): TokenizeStatus {
  const st: TokenizeStatus = p.status.tokenize ?? { phase: 'Pending' };
  p.status.tokenize = st;
  st.tokens ??= tokensFolder(spec);
  const old = new Map((st.domains ?? []).map((d) => [d.name, d]));
  st.domains = tokenizeTargets(spec).map(
    (t) => old.get(t.name) ?? { name: t.name, phase: 'Pending' as const },
  );
  return st;
}

function jobName(p: Planner, st: TokenizeStatus, d: TokenizeDomainStatus): string {
  return tokenizeJobName(p.runName, d.name, st.attempt ?? 1, d.parts ?? 1);
}

/** What the domain's pods said: one summary per part (a retried part counts once). */
function summaries(job: V1Job, p: Planner, domain: string): TokenizeSummary[] {
  const byPart = new Map<string, TokenizeSummary>();
  for (const pod of podsOfJob(job, p.observed.pods)) {
    if (pod.status?.phase !== 'Succeeded') continue;
    for (const s of readTerminationMessage(pod)?.tokenized ?? []) {
      if (s.domain === domain) byPart.set(s.part ?? '', s);
    }
  }
  return [...byPart.values()];
}

function splitAnswer(job: V1Job, p: Planner, domain: string) {
  for (const pod of podsOfJob(job, p.observed.pods)) {
    if (pod.status?.phase !== 'Succeeded') continue;
    const split = readTerminationMessage(pod)?.split?.find((s) => s.domain === domain);
    if (split) return split;
  }
  return undefined;
}

/** A domain's Job finished: record its counts (or its split, or its failure). */
function observeDomain(p: Planner, st: TokenizeStatus, d: TokenizeDomainStatus): void {
  const name = jobName(p, st, d);
  const job = p.observed.jobs.find((j) => j.metadata?.name === name);
  if (!job) {
    // Not created yet, or an earlier attempt's Job that a suspend stopped: start creates this one.
    if (d.phase === 'Running') d.phase = 'Pending';
    return;
  }
  d.job = name;
  d.phase = 'Running';
  const failed = jobCondition(job, 'Failed');
  if (failed) {
    const pods = podsOfJob(job, p.observed.pods).filter((x) => x.status?.phase === 'Failed');
    const last = pods[pods.length - 1];
    const tail = last ? lastLine(trainerTermination(last)?.message) : '';
    d.phase = 'Failed';
    d.message = `Job ${name} failed (${failed.reason})${failed.message ? `: ${failed.message}` : ''}${tail ? `; last output: ${tail}` : ''}`;
    return;
  }
  if (!jobCondition(job, 'Complete')) return;
  const split = (d.parts ?? 1) === 1 ? splitAnswer(job, p, d.name) : undefined;
  if (split) {
    d.parts = split.parts;
    d.sourceBytes = split.bytes;
    d.phase = 'Pending';
    delete d.job;
    p.event(
      'Normal',
      'TokenizeSplit',
      `domain ${d.name} has ${split.bytes} bytes of sources (over spec.tokenize.partBytes): tokenizing it in ${split.parts} parts (Job ${jobName(p, st, d)})`,
    );
    return;
  }
  const succeededPods = podsOfJob(job, p.observed.pods).filter((x) => x.status?.phase === 'Succeeded');
  if (succeededPods.length < (d.parts ?? 1)) {
    // The Job's status can reach us before its pods' final status does; wait a little for the counts.
    const doneAt = job.status?.completionTime ? new Date(job.status.completionTime).getTime() : p.nowMs;
    if (p.nowMs - doneAt < JOB_POD_GRACE_MS) {
      p.requeueAfter(1000);
      return;
    }
  }
  // A trainer that reports no counts (a bring-your-own image) still succeeds; the counts stay unset.
  const counts = summaries(job, p, d.name);
  if (counts.length > 0) {
    const sum = (key: 'documents' | 'tokens' | 'bytes' | 'heldOutTokens') =>
      counts.reduce((n, s) => n + s[key], 0);
    d.documents = sum('documents');
    d.tokens = sum('tokens');
    d.bytes = sum('bytes');
    d.heldOutTokens = sum('heldOutTokens');
    d.reused = counts.every((s) => s.reused);
  }
  d.phase = 'Succeeded';
}

function totalsMessage(domains: readonly TokenizeDomainStatus[]): string {
  const tokens = domains.reduce((n, d) => n + (d.tokens ?? 0), 0);
  const reused = domains.filter((d) => d.reused).length;
  return `${domains.length} data sets, ${tokens} tokens${reused > 0 ? ` (${reused} reused as they were)` : ''}`;
}

export function observeTokenize(p: Planner, spec: BTXRunSpec): StageOutcome {
  const st = tokenizeStatus(p, spec);
  const domains = st.domains ?? [];
  if (st.phase === 'Succeeded') {
    if (domains.every((d) => d.phase === 'Succeeded')) return { state: 'succeeded' };
    // A new round added a domain: tokenize it (into the same folder) before its expert starts.
    st.phase = 'Pending';
    delete st.completionTime;
  }
  if (st.phase !== 'Failed') {
    for (const d of domains) if (d.phase !== 'Succeeded' && d.phase !== 'Failed') observeDomain(p, st, d);
  }
  const failed = domains.find((d) => d.phase === 'Failed');
  if (failed) {
    const message = `tokenizing ${failed.name} failed: ${failed.message ?? 'its Job failed'}`;
    if (st.phase !== 'Failed') {
      st.phase = 'Failed';
      st.completionTime = p.nowIso;
      st.message = message;
      p.event('Warning', 'StageFailed', `stage tokenize failed: ${message}`);
    }
    p.condition({ type: 'Tokenized', status: 'False', reason: TOKENIZE_FAILED, message });
    return { state: 'failed', reason: TOKENIZE_FAILED, message: st.message ?? message };
  }
  if (domains.every((d) => d.phase === 'Succeeded')) {
    st.phase = 'Succeeded';
    st.completionTime = p.nowIso;
    const message = totalsMessage(domains);
    p.event('Normal', 'StageSucceeded', `stage tokenize succeeded: ${message}`);
    p.condition({ type: 'Tokenized', status: 'True', reason: 'TokenizeSucceeded', message });
    return { state: 'succeeded' };
  }
  p.condition({
    type: 'Tokenized',
    status: 'False',
    reason: 'StageRunning',
    message: 'stage tokenize is running',
  });
  return { state: 'running' };
}

/** Create the Job of every domain that is not done and has none for the current attempt. */
export function startTokenize(p: Planner, spec: BTXRunSpec): void {
  const st = tokenizeStatus(p, spec);
  const attempt = st.attempt ?? 1;
  const targets = new Map(tokenizeTargets(spec).map((t) => [t.name, t]));
  const created: string[] = [];
  for (const d of st.domains ?? []) {
    if (d.phase === 'Succeeded' || d.phase === 'Failed') continue;
    const name = jobName(p, st, d);
    const target = targets.get(d.name);
    if (!target) continue;
    if (!p.observed.jobs.some((j) => j.metadata?.name === name)) {
      p.actions.push({
        kind: 'createJob',
        job: buildTokenizeJob({ run: p.run, spec, target, attempt, parts: d.parts ?? 1 }),
      });
      created.push(name);
    }
    d.phase = 'Running';
    d.job = name;
  }
  if (created.length > 0 && st.phase !== 'Running')
    p.event('Normal', 'StageStarted', `stage tokenize started (Jobs ${created.join(', ')})`);
  st.phase = 'Running';
  st.startTime ??= p.nowIso;
}
