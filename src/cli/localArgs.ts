// The flags of `btx local`, apart from the command so they can be tested without a cluster.
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { VOLUME_MOUNT_PATH } from '../api/stageContract.js';

export const USAGE = `usage: btx local [-f MANIFEST] [--data-dir DIR] [--kubeconfig FILE] [--keep-running]

Runs a BTXRun on this machine: the embedded control plane (API server, kubelet, Job controller),
the operator, and the trainer as local processes. Shows live progress and ends with the results.

  -f, --file FILE        the manifest (default: examples/btxrun-local.yaml); one BTXRun, plus any
                         Namespace/PersistentVolumeClaim objects it needs
      --data-dir DIR     where the cluster keeps its state and volumes (default: .btx/local)
      --kubeconfig FILE  where to write the kubeconfig (default: DATA_DIR/kubeconfig)
      --metrics-port N   the operator's /metrics port (default: a free port)
      --timeout SECONDS  give up after this long (default: 3600)
      --keep-running     after the run ends, keep the cluster up until Ctrl-C
  -h, --help             this text

The sample corpora (data/samples/<domain>) are copied to the claim's folder, so ${VOLUME_MOUNT_PATH}/data/<domain> resolves.
Exit status: 0 when the run Succeeded, 1 when it Failed (the reason is printed), 2 for usage errors.
`;

export const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface LocalOptions {
  file: string;
  dataDir: string;
  kubeconfigPath?: string;
  metricsPort?: number;
  timeoutSeconds: number;
  keepRunning: boolean;
}

export function parseLocalArgs(argv: string[]): LocalOptions | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      file: { type: 'string', short: 'f' },
      'data-dir': { type: 'string' },
      kubeconfig: { type: 'string' },
      'metrics-port': { type: 'string' },
      timeout: { type: 'string' },
      'keep-running': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: false,
  });
  if (values.help) return 'help';
  const number = (name: string, raw: string | undefined): number | undefined => {
    if (raw === undefined) return undefined;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 0)
      throw new UsageError(`--${name} must be a non-negative integer, got '${raw}'`);
    return n;
  };
  return {
    file: resolve(values.file ?? join(projectRoot, 'examples', 'btxrun-local.yaml')),
    dataDir: resolve(values['data-dir'] ?? join('.btx', 'local')),
    kubeconfigPath: values.kubeconfig === undefined ? undefined : resolve(values.kubeconfig),
    metricsPort: number('metrics-port', values['metrics-port']),
    timeoutSeconds: number('timeout', values.timeout) ?? 3600,
    keepRunning: values['keep-running'] ?? false,
  };
}

export class UsageError extends Error {}
