// The operator under load: N concurrent BTXRuns x 4 experts whose stage pods finish at once. The
// control plane runs without kubelet and Job controller; this bench plays both through the API
// (pods Succeeded with a termination message, Jobs Complete). The operator runs in a child process
// so its CPU time and peak RSS are its own. Every 4th run has one expert fail once, to measure how
// fast the replacement pod appears. Then the same reaction time on the idle operator, one failing
// run at a time: quiet, and with 3 CPU-burning processes the bench starts (and always stops).
// Every request the fake kubelet sends is awaited or caught and counted, and both processes count
// unhandled rejections, so a failure shows as a number in the report instead of killing the bench.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  BatchV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  makeInformer,
  PatchStrategy,
  setHeaderOptions,
  type V1Job,
  type V1Pod,
} from '@kubernetes/client-node';
import { startApiServer } from '../src/cluster/apiserver/server.js';
import { kubeconfigYaml } from '../src/cluster/apiserver/kubeconfig.js';
import { btxRunCRD } from '../src/api/crd.js';
import { GROUP, PLURAL, VERSION, type BTXRun } from '../src/api/types.js';
import { MANAGED_SELECTOR } from '../src/operator/names.js';
import { KeepAliveKubeConfig } from '../src/util/keepAliveKubeConfig.js';

const RUNS = Number(process.env.BTX_BENCH_RUNS ?? 200);
const EXPERTS = 4;
const QUIET_RUNS = 10;
const HOGS = 3;
/** How long the 200 runs may take before the bench reports what finished. */
const LOAD_DEADLINE_MS = Number(process.env.BTX_BENCH_DEADLINE_S ?? 600) * 1000;
const CHILD_FLAG = '--operator-child';

interface ChildReport {
  unhandledRejections: number;
  writes: Record<string, number>;
  reconciles: Record<string, number>;
  cpuSeconds: number;
  maxRssMiB: number;
  rssAtReadyMiB: number;
}

/** The child: an operator that counts its API writes and reports CPU and peak RSS on SIGTERM. */
async function child(kubeconfigPath: string): Promise<void> {
  let unhandledRejections = 0;
  process.on('unhandledRejection', (err) => {
    if (unhandledRejections++ === 0) process.stderr.write(`operator: unhandled rejection: ${String(err)}\n`);
  });
  const { startOperator } = await import('../src/operator/operator.js');
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  const writes: Record<string, number> = {};
  const op = await startOperator({
    kubeConfig: kc,
    workers: 8,
    countWrite: (verb, resource) => {
      const k = `${verb} ${resource}`;
      writes[k] = (writes[k] ?? 0) + 1;
    },
  });
  const atReady = process.cpuUsage();
  const rssAtReadyMiB = process.memoryUsage().rss / 1024 / 1024;
  process.stdout.write('ready\n');
  process.once('SIGTERM', async () => {
    const reconciles = (await op.metrics.registry.getMetricsAsJSON()).find(
      (x) => x.name === 'btx_reconcile_total',
    );
    const cpu = process.cpuUsage(atReady); // the load only: not the start (module loading, cache sync)
    const report: ChildReport = {
      unhandledRejections,
      writes,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      maxRssMiB: process.resourceUsage().maxRSS / 1024,
      rssAtReadyMiB,
      reconciles: Object.fromEntries(
        ((reconciles?.values ?? []) as { labels: Record<string, unknown>; value: number }[]).map((v) => [
          String(v.labels.result),
          v.value,
        ]),
      ),
    };
    process.stdout.write(`${JSON.stringify(report)}\n`);
    void op.stop().then(() => process.exit(0));
  });
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

/** At most `limit` promises in flight. */
function limiter(limit: number) {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async <T>(fn: () => Promise<T>): Promise<T> => {
    if (active >= limit) await new Promise<void>((r) => waiting.push(r));
    active++;
    try {
      return await fn();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}

/**
 * The fake kubelet's requests: started from informer callbacks (nobody awaits them there), so each
 * is tracked until it settles, and a failure is counted, never left as an unhandled rejection.
 * drain() waits for all of them: the control plane stops only after its last request is answered.
 */
function backgroundRequests(limit: ReturnType<typeof limiter>) {
  const inFlight = new Set<Promise<void>>();
  const failures: string[] = [];
  return {
    failures,
    start(what: string, fn: () => Promise<unknown>): void {
      const p: Promise<void> = limit(fn).then(
        () => undefined,
        (err: unknown) => {
          failures.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
        },
      );
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
    },
    async drain(): Promise<void> {
      while (inFlight.size > 0) await Promise.all(inFlight);
    },
  };
}

/** Processes that burn one CPU each until stopped (or, whatever happens to the bench, 10 minutes). */
function startHogs(n: number): { stop: () => Promise<void> } {
  const hogs = Array.from({ length: n }, () =>
    spawn(process.execPath, ['-e', 'const end = Date.now() + 600000; while (Date.now() < end);'], {
      stdio: 'ignore',
    }),
  );
  return {
    stop: async () => {
      await Promise.all(
        hogs.map(
          (h) =>
            new Promise<void>((resolve) => {
              if (h.exitCode !== null || h.signalCode !== null) return resolve();
              h.once('exit', () => resolve());
              h.kill('SIGKILL');
            }),
        ),
      );
    },
  };
}

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

function terminated(message: object, exitCode = 0) {
  const now = new Date();
  return {
    status: {
      phase: exitCode === 0 ? 'Succeeded' : 'Failed',
      startTime: now,
      containerStatuses: [
        {
          name: 'trainer',
          image: 'bench',
          imageID: 'bench',
          ready: false,
          restartCount: 0,
          state: {
            terminated: { exitCode, message: JSON.stringify(message), startedAt: now, finishedAt: now },
          },
        },
      ],
    },
  };
}

export async function bench(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'btx-bench-operator-'));
  // The API server alone (this bench plays kubelet and Job controller) and without its snapshot:
  // the snapshot serializes every object on the event loop each 500 ms while objects change, which
  // after a few hundred runs stalls every request (the API server's bench measures it, persistence
  // off and on); that is not what an operator meets on a real cluster.
  const plane = await startApiServer({ token: randomBytes(16).toString('hex'), dataDir, persist: false });
  const kubeconfigPath = join(dataDir, 'kubeconfig');
  writeFileSync(kubeconfigPath, kubeconfigYaml(plane.url, plane.token, 'bench', plane.caCert), {
    mode: 0o600,
  });
  // Kept connections, as a real kubelet's: each request of the fake kubelet is on the measured path.
  const kc = new KeepAliveKubeConfig();
  kc.loadFromFile(kubeconfigPath);
  const core = kc.makeApiClient(CoreV1Api);
  const batch = kc.makeApiClient(BatchV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const limit = limiter(32);
  const requests = backgroundRequests(limit);
  let unhandledRejections = 0;
  const onUnhandled = (err: unknown) => {
    if (unhandledRejections++ === 0) console.error(`bench: unhandled rejection: ${String(err)}`);
  };
  process.on('unhandledRejection', onUnhandled);
  const res = await fetch(`${plane.url}/apis/apiextensions.k8s.io/v1/customresourcedefinitions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${plane.token}`, 'content-type': 'application/json' },
    body: JSON.stringify(btxRunCRD()),
  });
  if (!res.ok) throw new Error(`CRD install failed: ${res.status}`);

  const operator = spawn(
    process.execPath,
    ['--import', 'tsx', fileURLToPath(import.meta.url), CHILD_FLAG, kubeconfigPath],
    {
      stdio: ['ignore', 'pipe', process.env.BTX_BENCH_DEBUG ? 'inherit' : 'ignore'],
      env: { ...process.env, BTX_LOG_LEVEL: process.env.BTX_BENCH_DEBUG ? 'debug' : 'error' },
    },
  );
  let out = '';
  operator.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => operator.once('exit', () => r()));

  // The fake kubelet + Job controller.
  const failAt = new Map<string, number>(); // replacement pod name -> when its predecessor failed
  const latencies: number[] = [];
  const quietLatencies: number[] = [];
  const hogLatencies: number[] = [];
  const failingRuns = new Set<string>();
  const seen = new Set<string>();
  const pods = makeInformer<V1Pod>(
    kc,
    '/api/v1/pods',
    () => core.listPodForAllNamespaces({ labelSelector: MANAGED_SELECTOR }),
    MANAGED_SELECTOR,
  );
  pods.on('add', (pod) => {
    const name = pod.metadata?.name ?? '';
    const namespace = pod.metadata?.namespace ?? 'default';
    if (seen.has(name) || pod.metadata?.ownerReferences?.some((o) => o.kind === 'Job')) return;
    seen.add(name);
    const failedAt = failAt.get(name);
    if (failedAt !== undefined) {
      const into = name.startsWith('q') ? quietLatencies : name.startsWith('h') ? hogLatencies : latencies;
      into.push(Date.now() - failedAt);
    }
    const labels = pod.metadata?.labels ?? {};
    const run = labels['btx.ai/run'] ?? '';
    const fails =
      labels['btx.ai/expert'] === 'd0' && labels['btx.ai/attempt'] === '1' && failingRuns.has(run);
    const env = Object.fromEntries((pod.spec?.containers[0]?.env ?? []).map((e) => [e.name, e.value]));
    requests.start(`finish pod ${name}`, async () => {
      // The clock starts as the failure is sent: a quiet operator may answer before the reply arrives.
      if (fails) failAt.set(name.replace(/-1$/, '-2'), Date.now());
      await core.patchNamespacedPodStatus(
        {
          name,
          namespace,
          body: terminated({ checkpoint: `${env.BTX_OUTPUT}/step-1`, step: 1, loss: 1 }, fails ? 1 : 0),
        },
        mergePatch,
      );
    });
  });
  const jobs = makeInformer<V1Job>(
    kc,
    '/apis/batch/v1/jobs',
    () => batch.listJobForAllNamespaces({ labelSelector: MANAGED_SELECTOR }),
    MANAGED_SELECTOR,
  );
  jobs.on('add', (job) => {
    const name = job.metadata?.name ?? '';
    const namespace = job.metadata?.namespace ?? 'default';
    const template = job.spec?.template;
    const stage = template?.metadata?.labels?.['btx.ai/stage'];
    const message =
      stage === 'eval'
        ? {
            results: [{ model: 'btx', domain: 'd0', loss: 1, perplexity: 2.7 }],
            routing: [{ domain: 'd0', expert: 'd0', share: 1 }],
          }
        : stage === 'tokenize'
          ? {
              checkpoint: '/btx/tokens',
              tokenized: [
                {
                  domain: template?.metadata?.labels?.['btx.ai/expert'] ?? '',
                  documents: 10,
                  tokens: 1000,
                  bytes: 1000,
                  heldOutTokens: 100,
                  reused: false,
                },
              ],
            }
          : { checkpoint: `/btx/${name}`, step: 1, loss: 1 };
    requests.start(`complete job ${name}`, async () => {
      const podName = `${name}-x`;
      await core.createNamespacedPod({
        namespace,
        body: {
          metadata: {
            name: podName,
            labels: { ...template?.metadata?.labels, 'job-name': name },
            annotations: template?.metadata?.annotations,
            ownerReferences: [
              { apiVersion: 'batch/v1', kind: 'Job', name, uid: job.metadata?.uid ?? '', controller: true },
            ],
          },
          spec: template?.spec ?? { containers: [] },
        },
      });
      await core.patchNamespacedPodStatus(
        { name: podName, namespace, body: terminated(message) },
        mergePatch,
      );
      const now = new Date();
      await batch.patchNamespacedJobStatus(
        {
          name,
          namespace,
          body: {
            status: {
              succeeded: 1,
              startTime: now,
              completionTime: now,
              conditions: [{ type: 'Complete', status: 'True', lastTransitionTime: now }],
            },
          },
        },
        mergePatch,
      );
    });
  });
  await Promise.all([pods.start(), jobs.start()]);
  await new Promise<void>((resolve, reject) => {
    const t = setInterval(() => {
      if (out.includes('ready')) {
        clearInterval(t);
        resolve();
      }
    }, 50);
    operator.once('exit', () => reject(new Error('the operator child exited early')));
  });

  const createRun = (name: string) =>
    custom.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: 'default',
      plural: PLURAL,
      body: {
        apiVersion: `${GROUP}/${VERSION}`,
        kind: 'BTXRun',
        metadata: { name },
        spec: {
          storage: { persistentVolumeClaim: { claimName: 'data' } },
          seed: { checkpoint: '/btx/seed' },
          domains: Array.from({ length: EXPERTS }, (_, d) => ({ name: `d${d}`, data: `/btx/data/d${d}` })),
          expert: { steps: 1, maxRestarts: 2, backoffSeconds: 0 },
          mix: { includeSeedAsExpert: false },
          eval: { batches: 1 },
        },
      },
    });
  const succeeded = async (): Promise<number> => {
    const list = (await custom.listNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: 'default',
      plural: PLURAL,
    })) as { items: BTXRun[] };
    return list.items.filter((r) => r.status?.phase === 'Succeeded').length;
  };

  // Under load: every run at once, every 4th with one expert failing once.
  for (let i = 0; i < RUNS; i += 4) failingRuns.add(`r${i}`);
  const started = Date.now();
  await Promise.all(Array.from({ length: RUNS }, (_, i) => limit(() => createRun(`r${i}`))));
  let done = 0;
  const deadline = Date.now() + LOAD_DEADLINE_MS;
  while (Date.now() < deadline) {
    done = await succeeded();
    if (done === RUNS) break;
    // Listing every run is work for the API server under test: once a second is enough.
    await new Promise((r) => setTimeout(r, 1000));
  }
  const wall = (Date.now() - started) / 1000;
  // Printed now, so a bench stopped later (a timeout on a busy machine) still says how far it got.
  console.log(`load phase: ${done}/${RUNS} runs succeeded in ${wall.toFixed(1)} s`);
  // Quiet: one failing run at a time on the now idle operator, for the reaction time without a backlog;
  // then the same with CPU hogs, as on a busy node.
  const phaseOf = async (name: string): Promise<string | undefined> =>
    (
      (await custom.getNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: 'default',
        plural: PLURAL,
        name,
      })) as BTXRun
    ).status?.phase;
  let oneByOneDone = 0;
  const oneAtATime = async (prefix: string) => {
    for (let i = 0; i < QUIET_RUNS; i++) {
      const name = `${prefix}${i}`;
      failingRuns.add(name);
      await createRun(name);
      const until = Date.now() + 30_000;
      let phase: string | undefined;
      while ((phase = await phaseOf(name)) !== 'Succeeded' && Date.now() < until)
        await new Promise((r) => setTimeout(r, 50));
      if (phase === 'Succeeded') oneByOneDone++;
    }
  };
  await oneAtATime('q');
  const hogs = startHogs(HOGS);
  try {
    await oneAtATime('h');
  } finally {
    await hogs.stop();
  }
  operator.kill('SIGTERM');
  await exited;
  await pods.stop();
  await jobs.stop();
  await requests.drain();
  kc.closeConnections();
  await plane.stop();
  process.off('unhandledRejection', onUnhandled);
  rmSync(dataDir, { recursive: true, force: true });

  const report = JSON.parse(out.split('\n').find((l) => l.startsWith('{')) ?? '{}') as Partial<ChildReport>;
  const writes = report.writes ?? {};
  const total = Object.values(writes).reduce((a, b) => a + b, 0);
  const sum = (...keys: string[]) => keys.reduce((n, k) => n + (writes[k] ?? 0), 0);
  const failing = Math.ceil(RUNS / 4) + 2 * QUIET_RUNS;
  const allRuns = RUNS + 2 * QUIET_RUNS;
  // The minimum the design needs for a run with no failure: 4 tokenize Jobs, 4 expert pods + 3 Jobs;
  // one status write per stage change (started, tokenized, experts done, mix done, finetune done,
  // succeeded); one Event per transition (4 expert started + 4 succeeded, 4 stages started + 4
  // succeeded: tokenize once for all its Jobs, run succeeded).
  const minimum = { creates: 2 * EXPERTS + 3, status: 6, events: 2 * EXPERTS + 8 + 1 };
  const perRun = (n: number) => (n / allRuns).toFixed(2);
  console.log(
    `runs: ${done}/${RUNS} succeeded in ${wall.toFixed(1)} s (${EXPERTS} experts each; ${failing} runs had one expert fail once)`,
  );
  console.log(
    `one at a time: ${oneByOneDone}/${2 * QUIET_RUNS} succeeded; unhandled rejections: bench ${unhandledRejections}, operator ${report.unhandledRejections ?? 'unknown (no report)'}; fake kubelet requests failed: ${requests.failures.length}${requests.failures[0] ? ` (first: ${requests.failures[0]})` : ''}`,
  );
  console.log(
    `operator CPU under load (start excluded): ${report.cpuSeconds?.toFixed(2)} s, ${(((report.cpuSeconds ?? 0) / allRuns) * 1000).toFixed(1)} ms per run`,
  );
  const reconciles = Object.values(report.reconciles ?? {}).reduce((a, b) => a + b, 0);
  console.log(`reconciles per run: ${perRun(reconciles)} (${JSON.stringify(report.reconciles ?? {})})`);
  console.log(
    `operator peak RSS: ${report.maxRssMiB?.toFixed(0)} MiB (${report.rssAtReadyMiB?.toFixed(0)} MiB when started and synced, before any run)`,
  );
  console.log(
    `API writes per run: ${perRun(total)} (minimum for a run without failures: ${minimum.creates + minimum.status + minimum.events})`,
  );
  console.log(
    `  creates (pods+jobs): ${perRun(sum('create pods', 'create jobs'))} vs minimum ${minimum.creates} (+1 pod per failing run)`,
  );
  console.log(`  status writes:       ${perRun(sum('update btxruns/status'))} vs minimum ${minimum.status}`);
  console.log(`  events:              ${perRun(sum('create events'))} vs minimum ${minimum.events}`);
  console.log(`  deletes:             ${perRun(sum('delete pods', 'delete jobs'))} vs minimum 0`);
  const sorted = [...latencies].sort((a, b) => a - b);
  const quiet = [...quietLatencies].sort((a, b) => a - b);
  const hogged = [...hogLatencies].sort((a, b) => a - b);
  console.log(
    `failed expert pod -> replacement created, under load: p50 ${percentile(sorted, 50)} ms, p99 ${percentile(sorted, 99)} ms (${sorted.length} samples, queued behind ${RUNS} runs)`,
  );
  console.log(
    `failed expert pod -> replacement created, quiet:      p50 ${percentile(quiet, 50)} ms, p99 ${percentile(quiet, 99)} ms (${quiet.length} samples); load/quiet p50 ratio ${(percentile(sorted, 50) / percentile(quiet, 50)).toFixed(0)}x`,
  );
  console.log(
    `failed expert pod -> replacement created, ${HOGS} CPU hogs: p50 ${percentile(hogged, 50)} ms, p99 ${percentile(hogged, 99)} ms (${hogged.length} samples)`,
  );
}

if (process.argv[2] === CHILD_FLAG) await child(process.argv[3] as string);
