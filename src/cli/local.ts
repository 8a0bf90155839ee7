// `btx local`: the whole product on one machine. Starts the embedded control plane and the
// operator in this process, puts the sample corpora on the run's volume, applies the CRD and the
// manifest, shows live progress, and ends with the results table. Exit 0 when the run Succeeded.
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import winston from 'winston';
import type { KubeConfig } from '@kubernetes/client-node';
import { VOLUME_MOUNT_PATH } from '../api/stageContract.js';
import type { BTXRun } from '../api/types.js';
import { API_VERSION, KIND } from '../api/types.js';
import { formatFieldErrors, validateRun } from '../api/validation.js';
import { errorFields, log } from '../util/log.js';
import { LocalCluster, isTerminal, type ManifestObject } from './localCluster.js';
import {
  failureReason,
  ProgressView,
  renderCheckpoints,
  renderCompute,
  renderResults,
  renderRouting,
} from './progressView.js';
import { parseManifests } from './manifests.js';
import { type Flags, UsageError } from './flags.js';
import { localOptions, projectRoot } from './localArgs.js';
import { renderSamples, sampleModels, sampleTargets } from './localSamples.js';

export { command } from './localArgs.js';

/** The one BTXRun of the manifest, checked before anything starts. */
function findRun(objects: ManifestObject[], file: string): BTXRun {
  const runs = objects.filter((o) => o.kind === KIND);
  if (runs.length !== 1) throw new UsageError(`${file}: expected exactly one ${KIND}, found ${runs.length}`);
  const run = runs[0] as unknown as BTXRun;
  if (run.apiVersion !== API_VERSION)
    throw new UsageError(`${file}: ${KIND} apiVersion must be ${API_VERSION}`);
  run.metadata.namespace ??= 'default';
  const errors = validateRun(run);
  if (errors.length > 0) throw new UsageError(`${file}: invalid ${KIND}: ${formatFieldErrors(errors)}`);
  return run;
}

/** Every sample domain folder (data/samples/<domain>) goes to <claim folder>/data/<domain>. */
function copySamples(claimFolder: string): string[] {
  const samples = join(projectRoot, 'data', 'samples');
  if (!existsSync(samples)) return [];
  const target = join(claimFolder, 'data');
  mkdirSync(target, { recursive: true });
  const copied: string[] = [];
  for (const entry of readdirSync(samples, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    cpSync(join(samples, entry.name), join(target, entry.name), { recursive: true });
    copied.push(entry.name);
  }
  return copied;
}

/**
 * Every model folder made by scripts/make-example-checkpoint.ts (data/models/<name>) goes to
 * <claim folder>/models/<name>, so examples/btxrun-checkpoint.yaml finds its seed at /btx/models/.
 */
function copyModels(claimFolder: string): string[] {
  const models = join(projectRoot, 'data', 'models');
  if (!existsSync(models)) return [];
  const copied: string[] = [];
  for (const entry of readdirSync(models, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    cpSync(join(models, entry.name), join(claimFolder, 'models', entry.name), { recursive: true });
    copied.push(entry.name);
  }
  return copied;
}

/** Logs go to a file: the terminal belongs to the progress view. */
function logToFile(path: string): void {
  mkdirSync(dirname(path), { recursive: true });
  log.clear();
  log.add(new winston.transports.File({ filename: path }));
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((done) => {
    const wake = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', wake);
      done();
    };
    const timer = setTimeout(wake, ms);
    signal.addEventListener('abort', wake, { once: true });
  });
}

async function startOperator(kubeConfig: KubeConfig, namespace: string, metricsPort: number | undefined) {
  const { startOperator: start } = await import('../operator/operator.js');
  return start({ kubeConfig, namespaces: [namespace], metricsPort: metricsPort ?? 0, leaderElection: false });
}

export async function run(flags: Flags): Promise<number> {
  // Flags, the file, its YAML, the run's spec: all the user's to fix (UsageError, exit 2), and
  // nothing has started yet.
  const opts = localOptions(flags);
  if (!existsSync(opts.file)) throw new UsageError(`${opts.file}: no such file`);
  let objects: ManifestObject[];
  try {
    objects = parseManifests(readFileSync(opts.file, 'utf8'));
  } catch (err) {
    throw new UsageError(`${opts.file}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const btxRun = findRun(objects, opts.file);

  const out = process.stdout;
  const logFile = join(opts.dataDir, 'btx-local.log');
  logToFile(logFile);

  const stop = new AbortController();
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) {
      process.stderr.write('btx local: stopping at once\n');
      process.exit(130);
    }
    interrupted = true;
    process.stderr.write('\nbtx local: stopping (Ctrl-C again to force)\n');
    stop.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const namespace = btxRun.metadata.namespace ?? 'default';
  const claimName = btxRun.spec.storage.persistentVolumeClaim.claimName;
  const cluster = new LocalCluster({
    dataDir: opts.dataDir,
    kubeconfigPath: opts.kubeconfigPath,
  });
  let operator: { metricsUrl?: string; stop(): Promise<void> } | undefined;
  try {
    out.write(`btx local: ${opts.file}\n  data dir   ${opts.dataDir}\n  logs       ${logFile}\n`);
    await cluster.start();
    out.write(`  kubeconfig ${cluster.kubeconfigPath}\n`);
    out.write(`             kubectl --kubeconfig ${cluster.kubeconfigPath} get btx -w\n`);
    await cluster.applyCrd();
    const started = await startOperator(cluster.kubeConfig(), namespace, opts.metricsPort);
    operator = started;
    if (started.metricsUrl) out.write(`  metrics    ${started.metricsUrl}\n`);

    await cluster.ensureNamespace(namespace);
    await cluster.ensureClaim(namespace, claimName);
    const claimFolder = cluster.claimFolder(namespace, claimName);
    const copied = copySamples(claimFolder);
    if (copied.length > 0) out.write(`  samples    ${copied.join(', ')} -> ${join(claimFolder, 'data')}\n`);
    const models = copyModels(claimFolder);
    if (models.length > 0) out.write(`  models     ${models.join(', ')} -> ${join(claimFolder, 'models')}\n`);
    for (const obj of objects) {
      if (obj.kind !== KIND) await cluster.applyObject(obj, namespace);
    }
    // A fresh run every time: the old run, its pods and its checkpoints go first.
    await cluster.deleteRun(namespace, btxRun.metadata.name ?? '', stop.signal);
    rmSync(join(claimFolder, 'runs', namespace, btxRun.metadata.name ?? ''), {
      recursive: true,
      force: true,
    });
    await cluster.createRun(btxRun);
    out.write('\n');

    const view = new ProgressView(out);
    const deadline = Date.now() + opts.timeoutSeconds * 1000;
    let current: BTXRun | undefined;
    while (!stop.signal.aborted) {
      current = await cluster.getRun(namespace, btxRun.metadata.name ?? '').catch((err: unknown) => {
        log.warn('could not read the run', errorFields(err));
        return current;
      });
      const stages = current
        ? await cluster.stageProgress(namespace, btxRun.metadata.name ?? '').catch(() => ({}))
        : {};
      if (current) view.update(current, Date.now(), stages);
      if (current && isTerminal(current)) break;
      if (Date.now() > deadline) {
        view.print(`btx local: the run did not finish within ${opts.timeoutSeconds}s`);
        return 1;
      }
      await sleep(500, stop.signal);
    }
    if (interrupted || !current) return 130;

    const toHost = (p: string) =>
      p === VOLUME_MOUNT_PATH || p.startsWith(`${VOLUME_MOUNT_PATH}/`)
        ? claimFolder + p.slice(VOLUME_MOUNT_PATH.length)
        : p;
    const succeeded = current.status?.phase === 'Succeeded';
    const lines = ['', ...(succeeded ? [] : [`Run failed: ${failureReason(current)}`, ''])];
    lines.push(...renderResults(current), '');
    const compute = renderCompute(current);
    if (compute.length > 0) lines.push(...compute, '');
    const routing = renderRouting(current);
    if (routing.length > 0) lines.push(...routing, '');
    if (succeeded) {
      // Sampling takes a few seconds: the tables first.
      view.print(lines.join('\n'));
      lines.length = 0;
      lines.push(''); // the blank line the first print ended without
      const samples = renderSamples(await sampleModels(sampleTargets(current, toHost)));
      if (samples.length > 0) lines.push(...samples, '');
    }
    lines.push(...renderCheckpoints(current, toHost));
    view.print(lines.join('\n'));
    if (opts.keepRunning && !interrupted) {
      out.write(
        `\nThe cluster keeps running (kubectl --kubeconfig ${cluster.kubeconfigPath} ...). Ctrl-C stops it.\n`,
      );
      await new Promise<void>((done) => stop.signal.addEventListener('abort', () => done()));
    }
    return succeeded ? 0 : 1;
  } catch (err) {
    log.error('btx local failed', errorFields(err));
    const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : '';
    process.stderr.write(
      `btx local: ${err instanceof Error ? err.message : String(err)}${cause} (details in ${logFile})\n`,
    );
    return 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await operator?.stop().catch((err: unknown) => log.warn('operator stop failed', errorFields(err)));
    await cluster.stop().catch((err: unknown) => log.warn('control plane stop failed', errorFields(err)));
  }
}
