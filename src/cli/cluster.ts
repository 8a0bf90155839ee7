// `btx cluster`: the embedded control plane (API server, one-node scheduler + kubelet, Job controller)
// until SIGINT/SIGTERM, then every pod is stopped (SIGTERM, grace, SIGKILL) and it exits 0.
import { join, resolve } from 'node:path';
import { log } from '../util/log.js';
import type { CommandSpec, Flags } from './flags.js';

export const command: CommandSpec = {
  name: 'btx cluster',
  usage: 'btx cluster [flags]',
  about: `Runs a one-node Kubernetes subset on this machine: an API server that kubectl and client-node
accept, a kubelet that runs pods as local processes, and the Job controller.`,
  flags: [
    {
      name: 'kubeconfig',
      value: 'FILE',
      help: 'where to write the kubeconfig (default <data-dir>/kubeconfig)',
    },
    { name: 'port', value: 'N', help: 'API server port on 127.0.0.1 (default 6443; 0 = a free port)' },
    { name: 'data-dir', value: 'DIR', help: 'objects, volumes and pod logs (default .btx/cluster)' },
    { name: 'gpus', value: 'N', help: 'nvidia.com/gpu the node offers (default 0)' },
    {
      name: 'cpu',
      value: 'Q',
      help: "node allocatable cpu, e.g. 4 or 3500m (default: this machine's cores)",
    },
    {
      name: 'memory',
      value: 'Q',
      help: "node allocatable memory, e.g. 16Gi (default: this machine's memory)",
    },
    {
      name: 'host-path',
      value: 'PREFIX',
      repeatable: true,
      help: 'hostPath volumes under PREFIX use the real path',
    },
  ],
};

export async function run(f: Flags): Promise<number> {
  const port = f.number('port', 6443, { integer: true, min: 0, max: 65535 });
  const gpus = f.number('gpus', 0, { integer: true, min: 0 });
  const kubeconfig = f.string('kubeconfig');
  // Loaded here so that `btx cluster --help` stays fast.
  const { startControlPlane } = await import('../cluster/controlPlane.js');
  const { btxPodRuntime } = await import('./podRuntime.js');
  const dataDir = resolve(f.string('data-dir') ?? join('.btx', 'cluster'));
  const plane = await startControlPlane({
    dataDir,
    port,
    gpus,
    cpu: f.string('cpu'),
    memory: f.string('memory'),
    kubeconfigPath: kubeconfig ? resolve(kubeconfig) : undefined,
    hostPathPrefixes: f.has('host-path') ? f.list('host-path') : undefined,
    ...btxPodRuntime(),
  });
  process.stdout.write(
    `btx cluster: API server at ${plane.url}\n` +
      `kubeconfig: ${plane.kubeconfigPath}\n` +
      `data dir:   ${plane.dataDir}\n` +
      `try: KUBECONFIG=${plane.kubeconfigPath} kubectl get nodes\n`,
  );
  log.info('control plane running', {
    url: plane.url,
    kubeconfig: plane.kubeconfigPath,
    dataDir: plane.dataDir,
  });

  const signal = await new Promise<NodeJS.Signals>((done) => {
    process.once('SIGINT', () => done('SIGINT'));
    process.once('SIGTERM', () => done('SIGTERM'));
  });
  log.info('stopping control plane', { signal });
  await plane.stop();
  return 0;
}
