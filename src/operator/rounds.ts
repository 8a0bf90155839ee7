// Rounds: a Succeeded run whose spec.domains gained domains at the end trains one new expert per
// new domain (from the same seed; the existing experts and their checkpoints stay as they are),
// then mixes all experts again, finetunes and evaluates; one whose spec.domains lost domains mixes
// again without them (no expert trains). Each such change starts a new round: the finished round's
// domains, BTX checkpoint, results, routing and finish time move to status.rounds, status.round
// counts up, status.startedWith follows the new domains, and the mix/finetune/eval stages start
// over as new Jobs (names.ts: `<run>-<stage>-r<round>`) writing under `rounds/<n>/` (runLayout), so
// nothing of an earlier round is resumed from or overwritten. Any other change of a finished run's
// immutable fields is refused: condition SpecApplied False naming the field, the run stays as it is.
import type { BTXRunSpec, RoundStatus } from '../api/types.js';
import { MAX_ROUNDS_KEPT } from '../api/types.js';
import { STAGES, isJobStage, runLayout } from '../api/stageContract.js';
import { changedImmutableField, domainsChange, type DomainsChange } from '../api/immutable.js';
import type { Planner, Problem } from './planner.js';
import { reportSpecApplied } from './specApplied.js';

/** The stages a new round runs again: every Job stage after the experts. */
const ROUND_STAGES = STAGES.slice(STAGES.indexOf('expert') + 1).filter(isJobStage);

/** Conditions that described the finished round's stages. */
const ROUND_CONDITIONS = ['Mixed', 'Finetuned', 'Evaluated'] as const;

/**
 * Called for a terminal run (Succeeded or Failed): starts the next round when the spec asks for an
 * allowed change of domains and returns true (plan() then walks the stages as for a running run);
 * otherwise reports what the spec asks for that the run cannot do and returns false.
 */
export function planNextRound(p: Planner, spec: BTXRunSpec, problems: readonly Problem[]): boolean {
  const started = p.status.startedWith;
  if (!started) return false; // failed before it started (an invalid spec): nothing to compare with
  const other = changedImmutableField(started, { ...spec, domains: started.domains });
  const change = domainsChange(started.domains, spec.domains);
  if (p.status.phase !== 'Succeeded') {
    const field = other?.field ?? (change.kind === 'none' ? undefined : 'spec.domains');
    reportSpecApplied(
      p,
      field
        ? {
            field,
            message: `${field}: the run has Failed and changes nothing more; create a new BTXRun instead`,
          }
        : undefined,
    );
    return false;
  }
  if (other) {
    reportSpecApplied(p, other);
    return false;
  }
  if (change.kind === 'none') {
    reportSpecApplied(p, undefined);
    return false;
  }
  if (change.kind === 'refused') {
    reportSpecApplied(p, change.change);
    return false;
  }
  const reused = change.kind === 'append' ? reusedName(p, started.domains.length, change) : undefined;
  if (reused) {
    reportSpecApplied(p, reused);
    return false;
  }
  if (problems.length > 0) {
    const list = problems.map((x) =>
      x.message.startsWith(x.field) ? x.message : `${x.field}: ${x.message}`,
    );
    const field = problems[0]?.field ?? 'spec';
    reportSpecApplied(
      p,
      { field, message: `invalid spec, no new round started: ${list.join('; ')}` },
      'InvalidSpec',
    );
    return false;
  }
  startRound(p, spec, change);
  reportSpecApplied(p, undefined);
  return true;
}

/**
 * A name that was a domain of an earlier round and was removed: its expert's pods and checkpoint
 * folder (experts/<name>) carry that name, and a new expert there would resume from the old one's
 * checkpoints whatever its data. Refused, so the new domain gets a name of its own.
 */
function reusedName(
  p: Planner,
  existing: number,
  change: Extract<DomainsChange, { kind: 'append' }>,
): { field: string; message: string } | undefined {
  const earlier = new Map<string, number>();
  for (const r of p.status.rounds ?? []) for (const d of r.domains) earlier.set(d, r.round);
  for (const [i, d] of change.added.entries()) {
    const round = earlier.get(d.name);
    if (round === undefined) continue;
    const field = `spec.domains[${existing + i}].name`;
    return {
      field,
      message: `${field}: ${d.name} was a domain of round ${round} and was removed; its expert's checkpoints keep that name, so a new domain needs another name`,
    };
  }
  return undefined;
}

function startRound(
  p: Planner,
  spec: BTXRunSpec,
  change: Extract<DomainsChange, { kind: 'append' | 'remove' }>,
): void {
  const s = p.status;
  const round = s.round ?? 1;
  const record: RoundStatus = { round, domains: (s.startedWith?.domains ?? []).map((d) => d.name) };
  // The round's BTX model: what its finetune (else its mix) reported, else where that stage writes.
  const layout = runLayout(p.namespace, p.runName, undefined, round);
  record.checkpoint =
    s.finetune?.phase === 'Succeeded'
      ? (s.finetune.checkpoint ?? layout.finetuned)
      : (s.mix?.checkpoint ?? layout.mixed);
  if (s.completionTime) record.completionTime = s.completionTime;
  if (s.results) record.results = s.results;
  if (s.routing) record.routing = s.routing;
  s.rounds = [...(s.rounds ?? []), record].slice(-MAX_ROUNDS_KEPT);
  s.round = round + 1;
  if (s.startedWith) s.startedWith.domains = structuredClone(spec.domains);
  delete s.results;
  delete s.meanResults;
  delete s.routing;
  delete s.completionTime;
  for (const stage of ROUND_STAGES) delete s[stage];
  const what =
    change.kind === 'append'
      ? `${change.added.map((d) => d.name).join(', ')} appended: training ${change.added.length === 1 ? 'its expert' : 'their experts'}, then mixing all ${spec.domains.length} experts again`
      : `${change.removed.join(', ')} removed: mixing the ${spec.domains.length} remaining experts again`;
  const message = `round ${s.round} started (${what})`;
  p.condition({ type: 'Succeeded', status: 'False', reason: 'NewRound', message });
  for (const type of ROUND_CONDITIONS) {
    if ((s.conditions ?? []).some((c) => c.type === type))
      p.condition({ type, status: 'False', reason: 'NewRound', message });
  }
  p.event('Normal', 'RoundStarted', message);
}
