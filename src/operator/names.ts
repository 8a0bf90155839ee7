// Deterministic names and labels of a run's children. The same run, stage, expert and attempt always
// give the same name, so a second create is answered 409 AlreadyExists instead of making a duplicate.
import { createHash } from 'node:crypto';
import { SEED_DATA_NAME, type Stage } from '../api/stageContract.js';

/** Kubernetes limit for label values, and the limit we keep for every child name (Job names become labels). */
export const MAX_NAME = 63;

export const LABELS = {
  managedBy: 'app.kubernetes.io/managed-by',
  run: 'btx.ai/run',
  stage: 'btx.ai/stage',
  expert: 'btx.ai/expert',
  attempt: 'btx.ai/attempt',
} as const;

/** The run's full name (a label value holds at most 63 characters; names may be longer). */
export const RUN_NAME_ANNOTATION = 'btx.ai/run-name';

export const MANAGER = 'btx-operator';

/** Every child (and every pod of a child Job) carries this; the Pod and Job informers select on it. */
export const MANAGED_SELECTOR = `${LABELS.managedBy}=${MANAGER}`;

function hash8(s: string): string {
  return createHash('sha256').update(s).digest('hex').slice(0, 8);
}

/** `s` if it fits in `max` characters, else a prefix plus an 8-hex hash of all of `s` (stable, still unique). */
export function fit(s: string, max: number = MAX_NAME): string {
  if (s.length <= max) return s;
  const prefix = s.slice(0, max - 9).replace(/[-.]+$/, '');
  return `${prefix}-${hash8(s)}`;
}

/** A label value naming the run (fitted to 63 characters). */
export function runLabelValue(run: string): string {
  return fit(run);
}

export function expertPodName(run: string, domain: string, attempt: number): string {
  const suffix = `-${attempt}`;
  return fit(`${run}-expert-${domain}`, MAX_NAME - suffix.length) + suffix;
}

/** A stage's name as it appears in object names (lowercase: `sparseUpcyclingMix` -> `sparse-upcycling-mix`). */
export function stageNamePart(stage: Stage): string {
  return stage.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/**
 * Job stages: `<run>-<stage>` for the first attempt, `<run>-<stage>-<n>` after a suspend/resume; in
 * a later round (domains appended or removed after the run Succeeded) `<run>-<stage>-r<round>` and
 * `<run>-<stage>-r<round>-<n>`, new Jobs that never collide with an earlier round's (the `r` keeps
 * round 2 apart from attempt 2). The stage is in kebab case (`<run>-sparse-upcycling-mix`).
 */
export function stageJobName(
  run: string,
  stage: Exclude<Stage, 'expert'>,
  attempt: number = 1,
  round: number = 1,
): string {
  const base = `${run}-${stageNamePart(stage)}`;
  const suffix = `${round > 1 ? `-r${round}` : ''}${attempt > 1 ? `-${attempt}` : ''}`;
  if (suffix === '') return fit(base);
  return fit(base, MAX_NAME - suffix.length) + suffix;
}

/**
 * Tokenize Jobs, one per domain: `<run>-tokenize-<domain>-<attempt>`, and `...-<attempt>-<n>parts` for
 * the Indexed Job of a domain split in n parts. The attempt is always there (as for expert pods), so a
 * domain named `code-2` never takes the name of `code`'s second attempt; a split name ends in a letter,
 * so it never takes the name of a single Job. The seed's training data (`_seed`) gets
 * `<run>-seed-tokenize-<attempt>`: a domain Job always starts `<run>-tokenize-`.
 */
export function tokenizeJobName(run: string, name: string, attempt: number, parts = 1): string {
  const suffix = parts > 1 ? `-${attempt}-${parts}parts` : `-${attempt}`;
  const base = name === SEED_DATA_NAME ? `${run}-seed-tokenize` : `${run}-tokenize-${name}`;
  return fit(base, MAX_NAME - suffix.length) + suffix;
}

export function childLabels(
  run: string,
  stage: Stage,
  attempt: number,
  expert?: string,
): Record<string, string> {
  const labels: Record<string, string> = {
    [LABELS.managedBy]: MANAGER,
    [LABELS.run]: runLabelValue(run),
    [LABELS.stage]: stage,
    [LABELS.attempt]: String(attempt),
  };
  if (expert !== undefined) labels[LABELS.expert] = fit(expert);
  return labels;
}
