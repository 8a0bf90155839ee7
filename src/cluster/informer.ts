// client-node informers that keep going: client-node's ListWatch stops for good on an error
// (a refused connection, a failed list), so this restarts it after a delay, as client-go's reflector does.
import {
  makeInformer,
  type Informer,
  type KubeConfig,
  type KubernetesObject,
  type ListPromise,
  type ObjectCache,
} from '@kubernetes/client-node';
import { log, errorFields } from '../util/log.js';

export interface WatchedResource<T extends KubernetesObject> extends ObjectCache<T> {
  /** Resolves once the first list has filled the cache. */
  synced: Promise<void>;
  stop(): Promise<void>;
}

export function watchResource<T extends KubernetesObject>(
  kc: KubeConfig,
  path: string,
  list: ListPromise<T>,
  onChange: (obj: T) => void,
  restartDelayMs = 1000,
): WatchedResource<T> {
  const informer: Informer<T> & ObjectCache<T> = makeInformer(kc, path, list);
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let markSynced: () => void = () => {};
  const synced = new Promise<void>((resolve) => (markSynced = resolve));
  let failedSinceStart = false;

  const start = async (): Promise<void> => {
    failedSinceStart = false;
    try {
      await informer.start();
    } catch (err) {
      failedSinceStart = true;
      log.warn('informer start failed', { path, ...errorFields(err) });
      restart();
      return;
    }
    if (!failedSinceStart) markSynced();
  };
  const restart = (): void => {
    if (stopped || timer) return;
    timer = setTimeout(() => {
      timer = undefined;
      void start();
    }, restartDelayMs);
  };
  informer.on('add', onChange);
  informer.on('update', onChange);
  informer.on('delete', onChange);
  informer.on('error', (err: unknown) => {
    failedSinceStart = true;
    if (stopped) return;
    log.warn('watch failed, restarting', { path, ...errorFields(err) });
    restart();
  });
  void start();
  return {
    synced,
    get: (name, namespace) => informer.get(name, namespace),
    list: (namespace) => informer.list(namespace),
    stop: async () => {
      stopped = true;
      if (timer) clearTimeout(timer);
      await informer.stop();
    },
  };
}
