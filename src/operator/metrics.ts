// The operator's Prometheus metrics: one custom prom-client Registry per operator (tests start many),
// bounded labels only, and every series of a run removed when the run is deleted.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { PHASES, type BTXRun, type RunPhase } from '../api/types.js';

export const METRIC_NAMES = [
  'btx_runs',
  'btx_run_phase',
  'btx_expert_progress_ratio',
  'btx_expert_loss',
  'btx_expert_step',
  'btx_expert_restarts_total',
  'btx_stage_duration_seconds',
  'btx_tokenize_tokens',
  'btx_eval_loss',
  'btx_eval_perplexity',
  'btx_eval_bits_per_byte',
  'btx_eval_mean_loss',
  'btx_training_flops',
  'btx_routing_share',
  'btx_reconcile_total',
  'btx_reconcile_duration_seconds',
  'btx_workqueue_depth',
] as const;

export type ReconcileResult = 'success' | 'error' | 'requeue' | 'skipped';

/** The label sets one run has set, so they can all be removed with it. */
interface RunSeries {
  phase?: RunPhase;
  experts: Set<string>;
  restarts: Set<string>; // `${expert}\0${reason}`
  results: Set<string>; // `${model}\0${domain}`
  means: Set<string>; // models with a mean loss
  flops: Set<string>; // models with training FLOPs
  routing: Set<string>; // `${domain}\0${expert}`
  tokenized: Set<string>; // domain (or _seed)
}

export class OperatorMetrics {
  readonly registry = new Registry();
  private readonly runs: Gauge<'phase'>;
  private readonly runPhase: Gauge<'namespace' | 'name' | 'phase'>;
  private readonly progress: Gauge<'namespace' | 'run' | 'expert'>;
  private readonly loss: Gauge<'namespace' | 'run' | 'expert'>;
  private readonly step: Gauge<'namespace' | 'run' | 'expert'>;
  private readonly restarts: Counter<'namespace' | 'run' | 'expert' | 'reason'>;
  private readonly stageDuration: Histogram<'stage'>;
  private readonly tokenizeTokens: Gauge<'namespace' | 'run' | 'domain'>;
  private readonly evalLoss: Gauge<'namespace' | 'run' | 'model' | 'domain'>;
  private readonly evalBitsPerByte: Gauge<'namespace' | 'run' | 'model' | 'domain'>;
  private readonly evalPerplexity: Gauge<'namespace' | 'run' | 'model' | 'domain'>;
  private readonly evalMeanLoss: Gauge<'namespace' | 'run' | 'model'>;
  private readonly trainingFlops: Gauge<'namespace' | 'run' | 'model'>;
  private readonly routingShare: Gauge<'namespace' | 'run' | 'domain' | 'expert'>;
  private readonly reconciles: Counter<'result'>;
  private readonly reconcileDuration: Histogram;
  private readonly queueDepth: Gauge;
  private readonly series = new Map<string, RunSeries>();

  constructor() {
    const registers = [this.registry];
    const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) =>
      new Gauge<L>({ name, help, labelNames, registers });
    const counter = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
      new Counter<L>({ name, help, labelNames, registers });
    const expertLabels = ['namespace', 'run', 'expert'] as const;
    const evalLabels = ['namespace', 'run', 'model', 'domain'] as const;
    this.runs = gauge('btx_runs', 'BTXRuns by phase.', ['phase']);
    this.runPhase = gauge('btx_run_phase', 'The current phase of each BTXRun (1 for the current phase).', [
      'namespace',
      'name',
      'phase',
    ]);
    this.progress = gauge(
      'btx_expert_progress_ratio',
      'Training progress of each expert, step / totalSteps.',
      expertLabels,
    );
    this.loss = gauge('btx_expert_loss', 'Latest training loss of each expert.', expertLabels);
    this.step = gauge('btx_expert_step', 'Latest training step of each expert.', expertLabels);
    this.restarts = counter(
      'btx_expert_restarts_total',
      'Expert restarts seen by this operator, by failure reason (a bounded set).',
      ['namespace', 'run', 'expert', 'reason'],
    );
    this.stageDuration = new Histogram({
      name: 'btx_stage_duration_seconds',
      help: 'How long stages took from start to success (experts: per expert).',
      labelNames: ['stage'],
      buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400],
      registers,
    });
    this.tokenizeTokens = gauge(
      'btx_tokenize_tokens',
      "Tokens of each domain's shards (train and held-out; _seed: the seed's training data), from the tokenize stage.",
      ['namespace', 'run', 'domain'],
    );
    this.evalLoss = gauge('btx_eval_loss', 'Held-out loss per model and domain.', evalLabels);
    this.evalPerplexity = gauge(
      'btx_eval_perplexity',
      'Held-out perplexity per model and domain.',
      evalLabels,
    );
    this.evalBitsPerByte = gauge(
      'btx_eval_bits_per_byte',
      'Held-out bits per byte of text per model and domain (comparable across tokenizers).',
      evalLabels,
    );
    // model: seed, btx, dense, sparseUpcycling, btm, or an expert by its domain name (at most 64).
    this.evalMeanLoss = gauge(
      'btx_eval_mean_loss',
      "Each model's held-out loss averaged over the domains, every domain weighted equally.",
      ['namespace', 'run', 'model'],
    );
    this.trainingFlops = gauge(
      'btx_training_flops',
      'Training FLOPs (6 x active parameters x tokens) of the BTX model (experts + finetune) and of each compute-matched baseline.',
      ['namespace', 'run', 'model'],
    );
    this.routingShare = gauge(
      'btx_routing_share',
      "Share of a domain's tokens routed to each expert by the BTX model.",
      ['namespace', 'run', 'domain', 'expert'],
    );
    this.reconciles = counter(
      'btx_reconcile_total',
      'Reconciles by result: success, error, requeue (asked to come back), skipped (waiting on expectations).',
      ['result'],
    );
    this.reconcileDuration = new Histogram({
      name: 'btx_reconcile_duration_seconds',
      help: 'Time spent in one reconcile, I/O included.',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.queueDepth = gauge('btx_workqueue_depth', 'Run keys waiting in the work queue.');
    collectDefaultMetrics({ register: this.registry });
    for (const phase of PHASES) this.runs.set({ phase }, 0);
  }

  private entry(key: string): RunSeries {
    let s = this.series.get(key);
    if (!s) {
      s = {
        experts: new Set(),
        restarts: new Set(),
        results: new Set(),
        means: new Set(),
        flops: new Set(),
        routing: new Set(),
        tokenized: new Set(),
      };
      this.series.set(key, s);
    }
    return s;
  }

  /** Set every per-run series from the run's stored status. */
  observeRun(run: BTXRun): void {
    const namespace = run.metadata.namespace ?? 'default';
    const name = run.metadata.name ?? '';
    const s = this.entry(`${namespace}/${name}`);
    const phase: RunPhase = run.status?.phase ?? 'Pending';
    if (s.phase !== phase) {
      if (s.phase !== undefined) this.runPhase.remove({ namespace, name, phase: s.phase });
      s.phase = phase;
      this.runPhase.set({ namespace, name, phase }, 1);
      this.countPhases();
    }
    this.dropGone(namespace, name, s, run);
    for (const e of run.status?.experts ?? []) {
      const labels = { namespace, run: name, expert: e.name };
      s.experts.add(e.name);
      if (e.step !== undefined) this.step.set(labels, e.step);
      if (e.step !== undefined && e.totalSteps) this.progress.set(labels, Math.min(1, e.step / e.totalSteps));
      if (typeof e.loss === 'number') this.loss.set(labels, e.loss);
    }
    for (const d of run.status?.tokenize?.domains ?? []) {
      if (d.tokens === undefined) continue;
      s.tokenized.add(d.name);
      this.tokenizeTokens.set({ namespace, run: name, domain: d.name }, d.tokens);
    }
    for (const r of run.status?.results ?? []) {
      const labels = { namespace, run: name, model: r.model, domain: r.domain };
      s.results.add(`${r.model}\0${r.domain}`);
      this.evalLoss.set(labels, r.loss);
      this.evalPerplexity.set(labels, r.perplexity);
      if (r.bitsPerByte !== undefined) this.evalBitsPerByte.set(labels, r.bitsPerByte);
    }
    for (const m of run.status?.meanResults ?? []) {
      s.means.add(m.model);
      this.evalMeanLoss.set({ namespace, run: name, model: m.model }, m.loss);
    }
    for (const c of run.status?.compute ?? []) {
      s.flops.add(c.model);
      this.trainingFlops.set({ namespace, run: name, model: c.model }, c.flops);
    }
    for (const r of run.status?.routing ?? []) {
      s.routing.add(`${r.domain}\0${r.expert}`);
      this.routingShare.set({ namespace, run: name, domain: r.domain, expert: r.expert }, r.share);
    }
  }

  /**
   * Series the status no longer has: the experts, results and routing of a domain removed in a new
   * round, and the finished round's results and routing once the next round starts (status.rounds
   * keeps them; the gauges show the current round, as the status does).
   */
  private dropGone(namespace: string, name: string, s: RunSeries, run: BTXRun): void {
    const experts = new Set((run.status?.experts ?? []).map((e) => e.name));
    for (const expert of [...s.experts].filter((e) => !experts.has(e))) {
      this.removeExpert(namespace, name, expert);
      s.experts.delete(expert);
    }
    const results = new Set((run.status?.results ?? []).map((r) => `${r.model}\0${r.domain}`));
    for (const k of [...s.results].filter((r) => !results.has(r))) {
      this.removeResult(namespace, name, k);
      s.results.delete(k);
    }
    const means = new Set((run.status?.meanResults ?? []).map((m) => m.model));
    for (const model of [...s.means].filter((m) => !means.has(m))) {
      this.evalMeanLoss.remove({ namespace, run: name, model });
      s.means.delete(model);
    }
    const flops = new Set<string>((run.status?.compute ?? []).map((c) => c.model));
    for (const model of [...s.flops].filter((m) => !flops.has(m))) {
      this.trainingFlops.remove({ namespace, run: name, model });
      s.flops.delete(model);
    }
    const routing = new Set((run.status?.routing ?? []).map((r) => `${r.domain}\0${r.expert}`));
    for (const k of [...s.routing].filter((r) => !routing.has(r))) {
      this.removeRouting(namespace, name, k);
      s.routing.delete(k);
    }
    const tokenized = new Set((run.status?.tokenize?.domains ?? []).map((d) => d.name));
    for (const domain of [...s.tokenized].filter((d) => !tokenized.has(d))) {
      this.tokenizeTokens.remove({ namespace, run: name, domain });
      s.tokenized.delete(domain);
    }
  }

  private removeExpert(namespace: string, run: string, expert: string): void {
    const labels = { namespace, run, expert };
    this.progress.remove(labels);
    this.loss.remove(labels);
    this.step.remove(labels);
  }

  private removeResult(namespace: string, run: string, key: string): void {
    const [model = '', domain = ''] = key.split('\0');
    this.evalLoss.remove({ namespace, run, model, domain });
    this.evalPerplexity.remove({ namespace, run, model, domain });
    this.evalBitsPerByte.remove({ namespace, run, model, domain });
  }

  private removeRouting(namespace: string, run: string, key: string): void {
    const [domain = '', expert = ''] = key.split('\0');
    this.routingShare.remove({ namespace, run, domain, expert });
  }

  expertRestarted(namespace: string, run: string, expert: string, reason: string): void {
    this.entry(`${namespace}/${run}`).restarts.add(`${expert}\0${reason}`);
    this.restarts.inc({ namespace, run, expert, reason });
  }

  stageFinished(stage: string, seconds: number): void {
    if (Number.isFinite(seconds) && seconds >= 0) this.stageDuration.observe({ stage }, seconds);
  }

  /** The run is gone: remove every series it had. */
  forgetRun(namespace: string, name: string): void {
    const key = `${namespace}/${name}`;
    const s = this.series.get(key);
    if (!s) return;
    if (s.phase !== undefined) this.runPhase.remove({ namespace, name, phase: s.phase });
    for (const expert of s.experts) this.removeExpert(namespace, name, expert);
    for (const k of s.restarts) {
      const [expert = '', reason = ''] = k.split('\0');
      this.restarts.remove({ namespace, run: name, expert, reason });
    }
    for (const domain of s.tokenized) this.tokenizeTokens.remove({ namespace, run: name, domain });
    for (const k of s.results) this.removeResult(namespace, name, k);
    for (const model of s.means) this.evalMeanLoss.remove({ namespace, run: name, model });
    for (const model of s.flops) this.trainingFlops.remove({ namespace, run: name, model });
    for (const k of s.routing) this.removeRouting(namespace, name, k);
    this.series.delete(key);
    this.countPhases();
  }

  reconciled(result: ReconcileResult, seconds: number): void {
    this.reconciles.inc({ result });
    this.reconcileDuration.observe(seconds);
  }

  setQueueDepth(depth: number): void {
    this.queueDepth.set(depth);
  }

  private countPhases(): void {
    const counts = new Map<RunPhase, number>(PHASES.map((p) => [p, 0]));
    for (const s of this.series.values()) if (s.phase) counts.set(s.phase, (counts.get(s.phase) ?? 0) + 1);
    for (const [phase, n] of counts) this.runs.set({ phase }, n);
  }
}

export function createMetrics(): OperatorMetrics {
  return new OperatorMetrics();
}
