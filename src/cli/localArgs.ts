// The flags of `btx local`, apart from the command so they can be tested without a cluster.
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VOLUME_MOUNT_PATH } from '../api/stageContract.js';
import { type CommandSpec, type Flags, parseFlags } from './flags.js';

export const command: CommandSpec = {
  name: 'btx local',
  usage: 'btx local [-f MANIFEST] [--data-dir DIR] [--kubeconfig FILE] [--keep-running]',
  about: `Runs a BTXRun on this machine: the embedded control plane (API server, kubelet, Job controller),
the operator, and the trainer as local processes. Shows live progress and ends with the results.`,
  flags: [
    {
      name: 'file',
      short: 'f',
      value: 'FILE',
      help: 'the manifest (default: examples/btxrun-local.yaml); one BTXRun, plus any\nNamespace/PersistentVolumeClaim objects it needs',
    },
    {
      name: 'data-dir',
      value: 'DIR',
      help: 'where the cluster keeps its state and volumes (default: .btx/local)',
    },
    {
      name: 'kubeconfig',
      value: 'FILE',
      help: 'where to write the kubeconfig (default: DATA_DIR/kubeconfig)',
    },
    { name: 'metrics-port', value: 'N', help: "the operator's /metrics port (default: a free port)" },
    { name: 'timeout', value: 'SECONDS', help: 'give up after this long (default: 3600)' },
    { name: 'keep-running', help: 'after the run ends, keep the cluster up until Ctrl-C' },
  ],
  footer: `The sample corpora (data/samples/<domain>) are copied to the claim's folder, so ${VOLUME_MOUNT_PATH}/data/<domain> resolves.
Exit status: 0 when the run Succeeded, 1 when it Failed (the reason is printed), 2 for usage errors.`,
};

export const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface LocalOptions {
  file: string;
  dataDir: string;
  kubeconfigPath?: string;
  metricsPort?: number;
  timeoutSeconds: number;
  keepRunning: boolean;
}

/** Flags (and any variables) as given, for tests. */
export function parseLocalArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): LocalOptions | 'help' {
  const f = parseFlags(command, argv, env);
  return f === 'help' ? 'help' : localOptions(f);
}

export function localOptions(f: Flags): LocalOptions {
  const kubeconfig = f.string('kubeconfig');
  return {
    file: resolve(f.string('file') ?? join(projectRoot, 'examples', 'btxrun-local.yaml')),
    dataDir: resolve(f.string('data-dir') ?? join('.btx', 'local')),
    kubeconfigPath: kubeconfig === undefined ? undefined : resolve(kubeconfig),
    metricsPort: f.optionalNumber('metrics-port', { integer: true, min: 0, max: 65535 }),
    timeoutSeconds: f.number('timeout', 3600, { integer: true, min: 0 }),
    keepRunning: f.boolean('keep-running', false),
  };
}
