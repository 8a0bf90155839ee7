// `btx operator`: run the BTXRun operator against a cluster (in-cluster config, or a kubeconfig).
import { existsSync, readFileSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';
import { log } from '../util/log.js';

const USAGE = `usage: btx operator [flags]

Runs the BTXRun operator: watches BTXRuns and the Pods and Jobs it owns, and carries each run
through seed -> experts -> mix -> finetune -> eval.

flags:
  --kubeconfig FILE       kubeconfig to use (default: in-cluster config, else $KUBECONFIG / ~/.kube/config)
  --namespace NS          watch only this namespace (repeatable; default: all namespaces)
  --metrics-port N        serve /metrics, /healthz and /readyz on this port (0: a free port; default 8080)
  --metrics-host HOST     address to listen on (default 0.0.0.0)
  --no-metrics            no HTTP server
  --leader-elect          run leader election on a Lease (for more than one replica)
  --no-leader-elect       act without leader election (default)
  --lease-namespace NS    the Lease's namespace (default: this pod's namespace, else "default")
  --lease-name NAME       the Lease's name (default btx-operator)
  --workers N             concurrent reconciles (default 4)
  -h, --help              show this help
`;

interface Flags {
  kubeconfig?: string;
  namespaces: string[];
  metricsPort?: number;
  metricsHost: string;
  leaderElect: boolean;
  leaseNamespace?: string;
  leaseName?: string;
  workers: number;
}

function parse(argv: string[]): Flags | 'help' {
  const flags: Flags = {
    namespaces: [],
    metricsPort: 8080,
    metricsHost: '0.0.0.0',
    leaderElect: false,
    workers: 4,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const [name, inline] =
      arg.startsWith('--') && arg.includes('=')
        ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)]
        : [arg, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined || v === '') throw new Error(`${name} needs a value`);
      return v;
    };
    const int = (min: number): number => {
      const v = value();
      const n = Number(v);
      if (!Number.isInteger(n) || n < min)
        throw new Error(`${name} must be an integer >= ${min}, got '${v}'`);
      return n;
    };
    switch (name) {
      case '-h':
      case '--help':
        return 'help';
      case '--kubeconfig':
        flags.kubeconfig = value();
        break;
      case '--namespace':
      case '-n':
        flags.namespaces.push(value());
        break;
      case '--metrics-port':
        flags.metricsPort = int(0);
        break;
      case '--metrics-host':
        flags.metricsHost = value();
        break;
      case '--no-metrics':
        flags.metricsPort = undefined;
        break;
      case '--leader-elect':
        flags.leaderElect = true;
        break;
      case '--no-leader-elect':
        flags.leaderElect = false;
        break;
      case '--lease-namespace':
        flags.leaseNamespace = value();
        break;
      case '--lease-name':
        flags.leaseName = value();
        break;
      case '--workers':
        flags.workers = int(1);
        break;
      default:
        throw new Error(`unknown flag '${arg}' (see btx operator --help)`);
    }
  }
  return flags;
}

const SA_NAMESPACE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

function podNamespace(): string {
  if (process.env.POD_NAMESPACE) return process.env.POD_NAMESPACE;
  if (existsSync(SA_NAMESPACE)) return readFileSync(SA_NAMESPACE, 'utf8').trim();
  return 'default';
}

function kubeConfigFor(flags: Flags): KubeConfig {
  const kc = new KubeConfig();
  if (flags.kubeconfig) kc.loadFromFile(flags.kubeconfig);
  else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
  else kc.loadFromDefault();
  return kc;
}

export async function run(argv: string[]): Promise<number> {
  let flags: Flags | 'help';
  try {
    flags = parse(argv);
  } catch (err) {
    process.stderr.write(`btx operator: ${err instanceof Error ? err.message : String(err)}\n`);
    return 2;
  }
  if (flags === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  const { startOperator } = await import('../operator/operator.js');
  const operator = await startOperator({
    kubeConfig: kubeConfigFor(flags),
    namespaces: flags.namespaces.length > 0 ? flags.namespaces : undefined,
    metricsPort: flags.metricsPort,
    metricsHost: flags.metricsHost,
    workers: flags.workers,
    leaderElection: flags.leaderElect
      ? {
          namespace: flags.leaseNamespace ?? podNamespace(),
          ...(flags.leaseName ? { name: flags.leaseName } : {}),
          ...(process.env.POD_NAME ? { identity: process.env.POD_NAME } : {}),
        }
      : false,
  });
  log.info('operator started', { metricsUrl: operator.metricsUrl, leaderElection: flags.leaderElect });
  await new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      log.info('shutting down', { signal });
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      resolve();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  await operator.stop();
  return 0;
}
