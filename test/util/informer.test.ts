// The reconnecting informer against an API server that refuses every request (an expired token):
// its backoff grows and it reports itself wedged, which the operator's /healthz turns into a 500.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CoreV1Api, KubeConfig, type V1ConfigMap } from '@kubernetes/client-node';
import { ResilientInformer } from '../../src/util/informer.js';

function kubeConfigFor(url: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: url, skipTLSVerify: true }],
    users: [{ name: 'u', token: 'expired' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return kc;
}

test('an informer whose every request gets 401 backs off more each time and counts as wedged after the threshold', async () => {
  let authorized = false;
  const hits: number[] = [];
  const server = createServer((req, res) => {
    hits.push(Date.now());
    if (!authorized) {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', status: 'Failure', reason: 'Unauthorized', code: 401 }));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    if ((req.url ?? '').includes('watch=true')) return; // a watch that stays open, quietly
    res.end(
      JSON.stringify({
        kind: 'ConfigMapList',
        apiVersion: 'v1',
        metadata: { resourceVersion: '1' },
        items: [],
      }),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const kc = kubeConfigFor(url);
  const core = kc.makeApiClient(CoreV1Api);
  const informer = new ResilientInformer<V1ConfigMap>(
    kc,
    'configmaps',
    '/api/v1/namespaces/default/configmaps',
    () => core.listNamespacedConfigMap({ namespace: 'default' }),
    () => undefined,
    undefined,
    { reconnectBaseMs: 50, reconnectMaxMs: 10_000, wedgedAfterMs: 60_000 },
  );
  const started = informer.start();
  try {
    for (let i = 0; i < 300 && informer.consecutiveFailures < 5; i++)
      await new Promise((r) => setTimeout(r, 20));
    assert.ok(informer.consecutiveFailures >= 5, `failures: ${informer.consecutiveFailures}`);
    // Waits of 100, 200, 400 ms before the 3rd..5th request (before the fix, 'connect' reset the count
    // before every list, so every wait was the first one, 50 ms). A timer never fires early, so each
    // gap is at least its wait however loaded the machine is; load only lengthens gaps (a comparison
    // of gaps with each other failed at 101, 178, 172 ms on a busy machine).
    const gaps = [2, 3, 4].map((i) => (hits[i] as number) - (hits[i - 1] as number));
    for (const [k, wait] of [100, 200, 400].entries())
      assert.ok(
        gaps[k]! >= wait - 2,
        `gaps ${gaps.join(', ')}: gap ${k} is shorter than its wait of ${wait} ms`,
      );
    assert.equal(informer.wedged(Date.now()), false, 'not yet: the threshold has not passed');
    assert.equal(informer.wedged(Date.now() + 60_001), true);
    // The token works again: the next list ends the failure run.
    authorized = true;
    await started;
    assert.equal(informer.consecutiveFailures, 0);
    assert.equal(informer.wedged(Date.now() + 60_001), false);
  } finally {
    await informer.stop();
    server.closeAllConnections();
    server.close();
  }
});
