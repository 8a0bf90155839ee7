// `btx cluster`: the embedded control plane (API server, one-node scheduler + kubelet, Job controller)
// until SIGINT/SIGTERM, then every pod is stopped (SIGTERM, grace, SIGKILL) and it exits 0.
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { log } from '../util/log.js';

const HELP = `usage: btx cluster [flags]

Runs a one-node Kubernetes subset on this machine: an API server that kubectl and client-node
accept, a kubelet that runs pods as local processes, and the Job controller.

flags:
  --kubeconfig FILE   where to write the kubeconfig (default <data-dir>/kubeconfig)
  --port N            API server port on 127.0.0.1 (default 6443; 0 = a free port)
  --data-dir DIR      objects, volumes and pod logs (default .btx/cluster)
  --gpus N            nvidia.com/gpu the node offers (default 0)
  --cpu Q             node allocatable cpu, e.g. 4 or 3500m (default: this machine's cores)
  --memory Q          node allocatable memory, e.g. 16Gi (default: this machine's memory)
  --host-path PREFIX  hostPath volumes under PREFIX use the real path (repeatable)
  -h, --help          this help
`;

export async function run(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        kubeconfig: { type: 'string' },
        port: { type: 'string', default: '6443' },
        'data-dir': { type: 'string', default: '.btx/cluster' },
        gpus: { type: 'string', default: '0' },
        cpu: { type: 'string' },
        memory: { type: 'string' },
        'host-path': { type: 'string', multiple: true },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    process.stderr.write(`btx cluster: ${err instanceof Error ? err.message : String(err)}\n\n${HELP}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const port = Number(values.port);
  const gpus = Number(values.gpus);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write(`btx cluster: --port must be a port number, got ${JSON.stringify(values.port)}\n`);
    return 2;
  }
  if (!Number.isInteger(gpus) || gpus < 0) {
    process.stderr.write(`btx cluster: --gpus must be a whole number, got ${JSON.stringify(values.gpus)}\n`);
    return 2;
  }
  // Loaded here so that `btx cluster --help` stays fast.
  const { startControlPlane } = await import('../cluster/controlPlane.js');
  const dataDir = resolve(values['data-dir']);
  const plane = await startControlPlane({
    dataDir,
    port,
    gpus,
    cpu: values.cpu,
    memory: values.memory,
    kubeconfigPath: values.kubeconfig ? resolve(values.kubeconfig) : undefined,
    hostPathPrefixes: values['host-path'],
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
