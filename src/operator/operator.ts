// startOperator(): caches, the controller, leader election and the HTTP endpoints, wired together.
// Every replica keeps its caches warm; only the leader runs workers, and it stops acting the moment
// it loses the lease.
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { KubeConfig } from '@kubernetes/client-node';
import { KeepAliveKubeConfig } from '../util/keepAliveKubeConfig.js';
import { log } from '../util/log.js';
import { Controller } from './controller.js';
import { startHttpServer } from './httpServer.js';
import { LeaderElector } from './leaderElection.js';
import { createMetrics, type OperatorMetrics } from './metrics.js';
import type { WriteCounter } from './apply.js';

export interface LeaderElectionConfig {
  namespace: string;
  /** Default 'btx-operator'. */
  name?: string;
  identity?: string;
  leaseDurationSeconds?: number;
  renewDeadlineSeconds?: number;
  retryPeriodSeconds?: number;
}

export interface OperatorOptions {
  kubeConfig: KubeConfig;
  /** Default: all namespaces. */
  namespaces?: string[];
  /** 0 = a free port, undefined = no HTTP server. */
  metricsPort?: number;
  metricsHost?: string;
  leaderElection?: LeaderElectionConfig | false;
  /** Concurrent reconciles (different runs); default 4. */
  workers?: number;
  /** For benchmarks: told about every API write. */
  countWrite?: WriteCounter;
}

export interface RunningOperator {
  /** Where /metrics and the probes listen (`0.0.0.0:8080`: every interface). */
  metricsAddress?: string;
  /** How a client on this machine reaches /metrics. */
  metricsUrl?: string;
  isLeader(): boolean;
  stop(): Promise<void>;
  /** The operator's metrics registry and helpers. */
  metrics: OperatorMetrics;
}

export async function startOperator(opts: OperatorOptions): Promise<RunningOperator> {
  const metrics = createMetrics();
  const election = opts.leaderElection;
  const identity = (election && election.identity) || `${hostname()}_${randomBytes(4).toString('hex')}`;
  // One kept connection pool for every API call (client-node alone opens a TLS connection per call).
  const kubeConfig = KeepAliveKubeConfig.from(opts.kubeConfig);
  const controller = new Controller({
    kubeConfig,
    namespaces: opts.namespaces,
    workers: Math.max(1, opts.workers ?? 4),
    metrics,
    identity,
    countWrite: opts.countWrite,
  });
  let http: Awaited<ReturnType<typeof startHttpServer>> | undefined;
  if (opts.metricsPort !== undefined) {
    http = await startHttpServer(opts.metricsPort, opts.metricsHost ?? '127.0.0.1', {
      registry: metrics.registry,
      healthy: () => controller.caches.healthy(),
      ready: () => controller.caches.synced(),
    });
    log.info('serving /metrics, /healthz, /readyz', { address: http.address });
  }
  await controller.startCaches();
  log.info('caches synced', { namespaces: opts.namespaces?.join(',') || 'all', identity });

  let elector: LeaderElector | undefined;
  let leading = false;
  if (election) {
    elector = new LeaderElector({
      kubeConfig,
      namespace: election.namespace,
      name: election.name,
      identity,
      leaseDurationSeconds: election.leaseDurationSeconds,
      renewDeadlineSeconds: election.renewDeadlineSeconds,
      retryPeriodSeconds: election.retryPeriodSeconds,
      onStartedLeading: () => {
        leading = true;
        controller.startActing();
      },
      onStoppedLeading: () => {
        leading = false;
        // Stop at once: workers finish the step in hand and take nothing new. A replica that lost
        // the lease exits in a real cluster (restartPolicy brings it back as a standby).
        void controller.stopActing();
      },
    });
    elector.start();
  } else {
    leading = true;
    controller.startActing();
  }

  let stopping: Promise<void> | undefined;
  return {
    metricsAddress: http?.address,
    metricsUrl: http?.url,
    metrics,
    isLeader: () => leading && controller.isActing(),
    stop: () => {
      stopping ??= (async () => {
        await controller.stopActing();
        await elector?.stop();
        await controller.stop();
        await http?.close();
        kubeConfig.closeConnections();
        log.info('operator stopped', { identity });
      })();
      return stopping;
    },
  };
}
