// What `btx local` shows while a BTXRun runs and when it ends. The render functions are pure
// (a run's status in, lines out) so tests pin them down; ProgressView only decides how to print:
// redrawn in place on a terminal, plain lines at most every few seconds otherwise (CI logs, pipes).
import { JOB_STAGES, STAGES, type JobStage, type Progress } from '../api/stageContract.js';
import type { BTXRun, Condition, ExpertStatus, StageStatus, TokenizeStatus } from '../api/types.js';
import { meanResults } from '../api/meanResults.js';

const BAR_WIDTH = 24;

export function progressBar(done: number, total: number, width = BAR_WIDTH): string {
  const ratio = total > 0 ? Math.min(1, Math.max(0, done / total)) : 0;
  const filled = Math.round(ratio * width);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`;
}

export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

function formatLoss(loss: number | null | undefined): string {
  return typeof loss === 'number' && Number.isFinite(loss) ? loss.toFixed(3) : '-';
}

/** Steps an expert trains for: reported by its pod, else what the spec asks. */
function expertTotal(run: BTXRun, e: ExpertStatus): number {
  if (e.totalSteps) return e.totalSteps;
  const domain = run.spec.domains?.find((d) => d.name === e.name);
  return domain?.steps ?? run.spec.expert?.steps ?? 0;
}

function expertLine(e: ExpertStatus, total: number, nameWidth: number): string {
  const step = e.step ?? 0;
  const steps = `${String(step).padStart(String(total).length)}/${total}`;
  const parts = [
    `  ${e.name.padEnd(nameWidth)}`,
    progressBar(e.phase === 'Succeeded' ? total : step, total),
    steps.padStart(9),
    `loss ${formatLoss(e.loss).padStart(6)}`,
    `restarts ${e.restarts}${e.totalRestarts && e.totalRestarts > e.restarts ? ` (+${e.totalRestarts - e.restarts} free)` : ''}`,
    `attempt ${e.attempt}`,
    e.phase,
  ];
  if (e.phase !== 'Succeeded' && e.lastFailure) parts.push(`last failure: ${e.lastFailure.reason}`);
  return parts.join('  ');
}

/** Progress the stage pods report themselves (the `btx.ai/progress` annotation), by stage. */
export type StageProgress = Partial<Record<JobStage, Progress>>;

/** Whether the view shows a line for a Job stage of this run (the seed only when it is trained). */
function shownStage(run: BTXRun, stage: JobStage): boolean {
  if (stage === 'seed') return Boolean(run.spec.seed?.train);
  if (stage === 'eval') return run.spec.eval?.enabled !== false;
  if (stage === 'dense') return (run.spec.baselines ?? []).includes('dense');
  if (stage === 'sparseUpcyclingMix' || stage === 'sparseUpcycling')
    return (run.spec.baselines ?? []).includes('sparseUpcycling');
  return true;
}

/** What the tokenize stage did: domains done of all, tokens so far, how many were current already. */
function tokenizeDetail(st: TokenizeStatus | undefined): string {
  const domains = st?.domains ?? [];
  if (domains.length === 0) return '';
  const done = domains.filter((d) => d.phase === 'Succeeded');
  const tokens = done.reduce((n, d) => n + (d.tokens ?? 0), 0);
  const reused = done.filter((d) => d.reused).length;
  const split = domains.filter((d) => (d.parts ?? 1) > 1).map((d) => `${d.name} in ${d.parts} parts`);
  return [
    `${done.length}/${domains.length} tokenized`,
    `${tokens} tokens`,
    ...(reused > 0 ? [`${reused} reused`] : []),
    ...split,
  ].join(', ');
}

function stageLine(
  name: string,
  stage: StageStatus | undefined,
  nameWidth: number,
  now: number,
  progress: Progress | undefined,
  extra = '',
): string {
  if (!stage) return `  ${name.padEnd(nameWidth)}  waiting`;
  const started = stage.startTime ? Date.parse(stage.startTime) : undefined;
  const ended = stage.completionTime ? Date.parse(stage.completionTime) : undefined;
  const took = started !== undefined ? formatDuration((ended ?? now) - started) : '';
  const detail = stage.phase === 'Failed' && stage.message ? `  ${stage.message}` : '';
  const steps =
    progress && stage.phase === 'Running' && progress.totalSteps > 0
      ? `${progressBar(progress.step, progress.totalSteps)}  ${progress.step}/${progress.totalSteps}  loss ${formatLoss(progress.loss)}  `
      : '';
  return `  ${name.padEnd(nameWidth)}  ${steps}${stage.phase}${took ? ` (${took})` : ''}${extra ? `  ${extra}` : ''}${detail}`;
}

/** The live view of one run: a header, one line per expert, one per later stage. */
export function renderProgress(run: BTXRun, now: number = Date.now(), stages: StageProgress = {}): string[] {
  const status = run.status ?? {};
  const created = run.metadata.creationTimestamp;
  const age = created ? formatDuration(now - new Date(created).getTime()) : '';
  const experts = status.experts ?? [];
  const domainNames = (run.spec.domains ?? []).map((d) => d.name);
  const nameWidth = Math.max(8, ...domainNames.map((n) => n.length), ...experts.map((e) => e.name.length));
  const lines = [
    `BTXRun ${run.metadata.namespace}/${run.metadata.name}  ${status.phase ?? 'Pending'}  experts ${status.expertsReady ?? `0/${domainNames.length}`}  restarts ${status.restarts ?? 0}  ${age}`,
  ];
  for (const stage of STAGES) {
    if (stage !== 'expert') {
      const extra = stage === 'tokenize' ? tokenizeDetail(status.tokenize) : '';
      if (shownStage(run, stage))
        lines.push(stageLine(stage, status[stage], nameWidth, now, stages[stage], extra));
      continue;
    }
    for (const name of domainNames) {
      const e = experts.find((x) => x.name === name);
      lines.push(e ? expertLine(e, expertTotal(run, e), nameWidth) : `  ${name.padEnd(nameWidth)}  waiting`);
    }
  }
  return lines;
}

/** A one-line summary for logs that are not a terminal. */
export function renderSummary(run: BTXRun, now: number = Date.now(), stages: StageProgress = {}): string {
  const status = run.status ?? {};
  const created = run.metadata.creationTimestamp;
  const age = created ? formatDuration(now - new Date(created).getTime()) : '0s';
  const experts = (status.experts ?? []).map(
    (e) =>
      `${e.name} ${e.step ?? 0}/${expertTotal(run, e)} loss ${formatLoss(e.loss)} r${e.restarts} a${e.attempt} ${e.phase}`,
  );
  const running = JOB_STAGES.filter((name) => status[name]?.phase === 'Running' && stages[name]).map(
    (name) =>
      `${name} ${stages[name]?.step}/${stages[name]?.totalSteps} loss ${formatLoss(stages[name]?.loss)}`,
  );
  const parts = [...running, ...experts];
  return `[${age}] ${status.phase ?? 'Pending'}${parts.length ? ` | ${parts.join(' | ')}` : ''}`;
}

function condition(run: BTXRun, type: Condition['type']): Condition | undefined {
  return run.status?.conditions?.find((c) => c.type === type && c.status === 'True');
}

/** Why a run failed, in words: the Failed condition's message, and each failed expert's last failure. */
export function failureReason(run: BTXRun): string {
  const failed = condition(run, 'Failed');
  const lines = [failed ? `${failed.reason}: ${failed.message}` : `phase ${run.status?.phase ?? 'unknown'}`];
  for (const e of run.status?.experts ?? []) {
    if (e.phase === 'Failed' && e.lastFailure) {
      lines.push(
        `  expert ${e.name} (attempt ${e.lastFailure.attempt}): ${e.lastFailure.reason}: ${e.lastFailure.message}`,
      );
    }
  }
  for (const name of JOB_STAGES) {
    const stage = run.status?.[name];
    if (stage?.phase === 'Failed') lines.push(`  ${name}: ${stage.message ?? 'failed'}`);
  }
  return lines.join('\n');
}

function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

/** The baselines' rows, after the BTX model, in the order of spec.baselines' enum. */
const BASELINE_ROWS = ['dense', 'sparseUpcycling', 'btm'];

/** Seed first, the experts in domain order, the BTX model, then the baselines; anything else before btx. */
function modelOrder(models: string[], domains: string[]): string[] {
  const rank = (m: string) => {
    if (m === 'seed') return -1;
    const d = domains.indexOf(m);
    if (d >= 0) return d;
    if (m === 'btx') return domains.length + 1;
    const b = BASELINE_ROWS.indexOf(m);
    if (b >= 0) return domains.length + 2 + b;
    return domains.length;
  };
  return [...new Set(models)].sort((a, b) => rank(a) - rank(b));
}

/**
 * Per-domain held-out perplexity of every model and its mean over the domains (exp of the mean loss,
 * status.meanResults), the best per column marked with '*'.
 */
export function renderResults(run: BTXRun): string[] {
  const results = run.status?.results ?? [];
  if (results.length === 0) return ['No evaluation results.'];
  const specDomains = (run.spec.domains ?? []).map((d) => d.name);
  const domains = [
    ...new Set([
      ...specDomains.filter((d) => results.some((r) => r.domain === d)),
      ...results.map((r) => r.domain),
    ]),
  ];
  const models = modelOrder(
    results.map((r) => r.model),
    specDomains,
  );
  const means = new Map((run.status?.meanResults ?? meanResults(results)).map((m) => [m.model, m]));
  const best = new Map<string, number>();
  for (const r of results) best.set(r.domain, Math.min(best.get(r.domain) ?? Infinity, r.perplexity));
  const bestMean = Math.min(...[...means.values()].map((m) => m.perplexity));
  const cell = (value: number | undefined, bestValue: number | undefined) =>
    value === undefined ? '- ' : `${value.toFixed(2)}${value === bestValue ? '*' : ' '}`;
  const rows = models.map((model) => [
    model,
    ...domains.map((domain) =>
      cell(results.find((x) => x.model === model && x.domain === domain)?.perplexity, best.get(domain)),
    ),
    cell(means.get(model)?.perplexity, bestMean),
  ]);
  // Header names end one column early, above the digits rather than the best-marker.
  const header = ['model', ...domains.map((d) => `${d} `), 'mean '];
  return [
    'Held-out perplexity per domain and the mean over domains (exp of the mean loss; lower is better, * = best):',
    ...table(header, rows),
  ];
}

/** What BTX's training cost and what each trained baseline was given to match it (status.compute). */
export function renderCompute(run: BTXRun): string[] {
  const compute = run.status?.compute ?? [];
  if (compute.length === 0) return [];
  const rows = compute.map((c) => [
    c.model,
    String(c.steps),
    String(c.tokens),
    c.flops.toExponential(3),
    `${(c.relativeToBtx * 100).toFixed(2)}%`,
  ]);
  const share = compute.find((c) => c.model === 'btx')?.finetuneShare;
  return [
    'Training compute (FLOPs = 6 x active parameters x tokens; the shared seed left out):',
    ...table(['model', 'steps', 'tokens', 'FLOPs', 'of BTX'], rows),
    ...(share !== undefined
      ? [
          `BTX's finetune is ${(share * 100).toFixed(1)}% of its compute (the paper: 23%; finetune.computeShare sets it).`,
        ]
      : []),
  ];
}

/** Share of each domain's tokens per expert, in percent. */
export function renderRouting(run: BTXRun): string[] {
  const routing = run.status?.routing ?? [];
  if (routing.length === 0) return [];
  const domains = [...new Set(routing.map((r) => r.domain))];
  const experts = [...new Set(routing.map((r) => r.expert))];
  const rows = domains.map((domain) => [
    domain,
    ...experts.map((expert) => {
      const r = routing.find((x) => x.domain === domain && x.expert === expert);
      return r ? `${(r.share * 100).toFixed(1)}%` : '-';
    }),
  ]);
  return ["Routing: share of each domain's tokens per expert:", ...table(['domain', ...experts], rows)];
}

/** What each Job stage's output is called in the checkpoint list. */
const CHECKPOINT_LABELS: Record<JobStage, string> = {
  tokenize: 'tokens',
  seed: 'seed',
  mix: 'mixed',
  finetune: 'finetuned',
  eval: 'eval',
  dense: 'dense',
  sparseUpcyclingMix: 'upcycled',
  sparseUpcycling: 'sparseUpcycling',
};

/** Where the checkpoints are, as the pods see them and (via `toHost`) on this machine. */
export function renderCheckpoints(
  run: BTXRun,
  toHost: (containerPath: string) => string = (p) => p,
): string[] {
  const s = run.status ?? {};
  const entries: [string, string | undefined][] = STAGES.flatMap((stage): [string, string | undefined][] =>
    stage === 'expert'
      ? (s.experts ?? []).map((e): [string, string | undefined] => [`expert ${e.name}`, e.checkpoint])
      : [
          [
            CHECKPOINT_LABELS[stage],
            stage === 'tokenize'
              ? s.tokenize?.tokens
              : (s[stage]?.checkpoint ?? (stage === 'seed' ? run.spec.seed?.checkpoint : undefined)),
          ],
        ],
  );
  const present = entries.filter((e): e is [string, string] => typeof e[1] === 'string');
  if (present.length === 0) return [];
  const width = Math.max(...present.map(([name]) => name.length));
  return ['Checkpoints:', ...present.map(([name, path]) => `  ${name.padEnd(width)}  ${toHost(path)}`)];
}

export interface ProgressOutput {
  write(text: string): void;
  isTTY?: boolean;
}

/** Prints progress: redrawn in place on a terminal; otherwise a line when something changed, at most every few seconds. */
export class ProgressView {
  private drawnLines = 0;
  private lastPlain = '';
  private lastPlainAt = 0;

  constructor(
    private readonly out: ProgressOutput,
    private readonly plainEveryMs = 10_000,
  ) {}

  update(run: BTXRun, now: number = Date.now(), stages: StageProgress = {}): void {
    if (this.out.isTTY) {
      const lines = renderProgress(run, now, stages);
      const up = this.drawnLines > 0 ? `\x1b[${this.drawnLines}F` : '';
      this.out.write(`${up}${lines.map((l) => `\x1b[2K${l}`).join('\n')}\n`);
      this.drawnLines = lines.length;
      return;
    }
    const summary = renderSummary(run, now, stages);
    // Phase or expert phase changes print at once; step progress at most every plainEveryMs.
    const shape = (s: string) => s.replace(/^\[[^\]]*\] /, '').replace(/ \d+\/\d+ loss [^ ]+/g, '');
    const changed = shape(summary) !== shape(this.lastPlain);
    if (changed || now - this.lastPlainAt >= this.plainEveryMs) {
      this.out.write(`${summary}\n`);
      this.lastPlain = summary;
      this.lastPlainAt = now;
    }
  }

  /** Print lines below the live view (the view is not redrawn over them). */
  print(text: string): void {
    this.drawnLines = 0;
    this.out.write(text.endsWith('\n') ? text : `${text}\n`);
  }
}
