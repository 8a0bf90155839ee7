// Reading what the children say: the trainer's progress annotation, the termination message, and
// whether a pod or Job has finished. Garbage in an annotation or message is ignored, never fatal.
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import {
  PROGRESS_ANNOTATION,
  type Progress,
  type TerminationMessage,
  type TokenizeSplit,
  type TokenizeSummary,
} from '../api/stageContract.js';
import { LABELS } from './names.js';
import { trainerTermination } from './failure.js';

function parseObject(raw: string | undefined): Record<string, unknown> | undefined {
  if (!raw) return undefined;
  try {
    const v: unknown = JSON.parse(raw);
    return typeof v === 'object' && v !== null && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

export function readProgress(pod: V1Pod): Partial<Progress> | undefined {
  const o = parseObject(pod.metadata?.annotations?.[PROGRESS_ANNOTATION]);
  if (!o) return undefined;
  const p: Partial<Progress> = {};
  if (typeof o.step === 'number') p.step = o.step;
  if (typeof o.totalSteps === 'number') p.totalSteps = o.totalSteps;
  if (typeof o.loss === 'number' || o.loss === null) p.loss = o.loss;
  if (typeof o.checkpoint === 'string') p.checkpoint = o.checkpoint;
  return p;
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;

function isTokenizeSummary(v: unknown): v is TokenizeSummary {
  const o = v as Partial<TokenizeSummary> | null;
  return (
    typeof o === 'object' &&
    o !== null &&
    typeof o.domain === 'string' &&
    (o.part === undefined || typeof o.part === 'string') &&
    isCount(o.documents) &&
    isCount(o.tokens) &&
    isCount(o.bytes) &&
    isCount(o.heldOutTokens) &&
    typeof o.reused === 'boolean'
  );
}

function isTokenizeSplit(v: unknown): v is TokenizeSplit {
  const o = v as Partial<TokenizeSplit> | null;
  return (
    typeof o === 'object' &&
    o !== null &&
    typeof o.domain === 'string' &&
    isCount(o.bytes) &&
    Number.isInteger(o.parts) &&
    (o.parts ?? 0) >= 2
  );
}

export function readTerminationMessage(pod: V1Pod): TerminationMessage | undefined {
  const o = parseObject(trainerTermination(pod)?.message);
  if (!o) return undefined;
  const m: TerminationMessage = {};
  if (typeof o.checkpoint === 'string') m.checkpoint = o.checkpoint;
  if (typeof o.step === 'number') m.step = o.step;
  if (typeof o.loss === 'number' || o.loss === null) m.loss = o.loss;
  if (Array.isArray(o.results)) m.results = o.results as TerminationMessage['results'];
  if (Array.isArray(o.routing)) m.routing = o.routing as TerminationMessage['routing'];
  if (Array.isArray(o.tokenized)) m.tokenized = o.tokenized.filter(isTokenizeSummary);
  if (Array.isArray(o.split)) m.split = o.split.filter(isTokenizeSplit);
  return m;
}

/** How long a finished Job may wait for its pod's final status to reach the cache. */
export const JOB_POD_GRACE_MS = 30_000;

export function podAttempt(pod: V1Pod): number {
  const n = Number(pod.metadata?.labels?.[LABELS.attempt]);
  return Number.isInteger(n) && n > 0 ? n : 0;
}

export function isPodTerminal(pod: V1Pod): boolean {
  return pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';
}

export function jobCondition(
  job: V1Job,
  type: 'Complete' | 'Failed',
): { message: string; reason: string } | undefined {
  const c = (job.status?.conditions ?? []).find((x) => x.type === type && x.status === 'True');
  return c ? { message: c.message ?? '', reason: c.reason ?? type } : undefined;
}

export function isJobFinished(job: V1Job): boolean {
  return jobCondition(job, 'Complete') !== undefined || jobCondition(job, 'Failed') !== undefined;
}

/** The pods a Job made (the Job controller sets the Job as their controller owner). */
export function podsOfJob(job: V1Job, pods: readonly V1Pod[]): V1Pod[] {
  const uid = job.metadata?.uid;
  const name = job.metadata?.name;
  return pods.filter(
    (p) =>
      (p.metadata?.ownerReferences ?? []).some(
        (o) => o.kind === 'Job' && (uid ? o.uid === uid : o.name === name),
      ) ||
      (name !== undefined && p.metadata?.labels?.['job-name'] === name),
  );
}
