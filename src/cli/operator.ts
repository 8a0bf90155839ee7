// `btx operator`: run the BTXRun operator against a cluster (in-cluster config, or a kubeconfig).
import { existsSync, readFileSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';
import { log } from '../util/log.js';
import type { CommandSpec, Flags } from './flags.js';

export const command: CommandSpec = {
  name: 'btx operator',
  usage: 'btx operator [flags]',
  about: `Runs the BTXRun operator: watches BTXRuns and the Pods and Jobs it owns, and carries each run
through seed -> experts -> mix -> finetune -> eval.`,
  flags: [
    {
      name: 'kubeconfig',
      value: 'FILE',
      help: 'kubeconfig to use (default: in-cluster config, else $KUBECONFIG / ~/.kube/config)',
    },
    {
      name: 'namespace',
      short: 'n',
      value: 'NS',
      repeatable: true,
      help: 'watch only this namespace (default: all namespaces)',
    },
    {
      name: 'metrics-port',
      value: 'N',
      help: 'serve /metrics, /healthz and /readyz on this port (0: a free port; default 8080)',
    },
    {
      name: 'metrics-host',
      value: 'HOST',
      help: 'address /metrics and the probes listen on (default 0.0.0.0: every interface, for scraping and kubelet probes; 127.0.0.1 keeps them on this machine)',
    },
    { name: 'no-metrics', help: 'no HTTP server' },
    { name: 'leader-elect', help: 'run leader election on a Lease (for more than one replica)' },
    { name: 'no-leader-elect', help: 'act without leader election (the default; wins over --leader-elect)' },
    {
      name: 'lease-namespace',
      value: 'NS',
      help: 'the Lease\'s namespace (default: this pod\'s namespace, else "default")',
    },
    { name: 'lease-name', value: 'NAME', help: "the Lease's name (default btx-operator)" },
    { name: 'workers', value: 'N', help: 'concurrent reconciles (default 4)' },
  ],
};

interface OperatorFlags {
  kubeconfig?: string;
  namespaces: string[];
  metricsPort?: number;
  metricsHost: string;
  leaderElect: boolean;
  leaseNamespace?: string;
  leaseName?: string;
  workers: number;
}

function operatorFlags(f: Flags): OperatorFlags {
  return {
    kubeconfig: f.string('kubeconfig'),
    namespaces: f.list('namespace'),
    metricsPort: f.boolean('no-metrics', false)
      ? undefined
      : f.number('metrics-port', 8080, { integer: true, min: 0, max: 65535 }),
    metricsHost: f.string('metrics-host') ?? '0.0.0.0',
    leaderElect: f.boolean('leader-elect', false) && !f.boolean('no-leader-elect', false),
    leaseNamespace: f.string('lease-namespace'),
    leaseName: f.string('lease-name'),
    workers: f.number('workers', 4, { integer: true, min: 1 }),
  };
}

const SA_NAMESPACE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

function podNamespace(): string {
  if (process.env.POD_NAMESPACE) return process.env.POD_NAMESPACE;
  if (existsSync(SA_NAMESPACE)) return readFileSync(SA_NAMESPACE, 'utf8').trim();
  return 'default';
}

function kubeConfigFor(flags: OperatorFlags): KubeConfig {
  const kc = new KubeConfig();
  if (flags.kubeconfig) kc.loadFromFile(flags.kubeconfig);
  else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
  else kc.loadFromDefault();
  return kc;
}

export async function run(parsed: Flags): Promise<number> {
  const flags = operatorFlags(parsed);
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
  log.info('operator started', {
    metricsAddress: operator.metricsAddress,
    leaderElection: flags.leaderElect,
  });
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
