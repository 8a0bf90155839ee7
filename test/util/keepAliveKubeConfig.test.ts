// KeepAliveKubeConfig: client-node API calls share kept TLS connections instead of opening one per
// call (client-node 1.4 builds a fresh https.Agent for every request). Connections are counted by a
// TCP relay in front of the embedded API server, so the count is what the server side sees.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { kubeconfigYaml } from '../../src/cluster/apiserver/kubeconfig.js';
import { KeepAliveKubeConfig } from '../../src/util/keepAliveKubeConfig.js';
import { startTestApiServer, TEST_TOKEN } from '../support/controlPlane.js';
import { countingRelay } from '../support/countingRelay.js';

async function withRelay(
  run: (kubeconfig: (token?: string) => KubeConfig, connections: () => number) => Promise<void>,
): Promise<void> {
  const cp = await startTestApiServer();
  const relay = await countingRelay(cp.server.port);
  try {
    await run((token = TEST_TOKEN) => {
      const kc = new KubeConfig();
      kc.loadFromString(kubeconfigYaml(`http://127.0.0.1:${relay.port}`, token, 'relay', cp.server.caCert));
      return kc;
    }, relay.connections);
  } finally {
    relay.server.close();
    await cp.stop();
  }
}

test('ten API calls through a KeepAliveKubeConfig open one TLS connection; a plain KubeConfig opens ten', async () => {
  await withRelay(async (kubeconfig, connections) => {
    const plain = kubeconfig().makeApiClient(CoreV1Api);
    for (let i = 0; i < 10; i++) await plain.listNamespacedConfigMap({ namespace: 'default' });
    const plainConnections = connections();

    const pooledConfig = KeepAliveKubeConfig.from(kubeconfig());
    const pooled = pooledConfig.makeApiClient(CoreV1Api);
    for (let i = 0; i < 10; i++) {
      await pooled.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: `c${i}` } } });
    }
    const list = await pooled.listNamespacedConfigMap({ namespace: 'default' });
    pooledConfig.closeConnections();

    assert.equal(
      plainConnections,
      10,
      'client-node itself opens a connection per call (the reason for the class)',
    );
    assert.equal(connections() - plainConnections, 1);
    assert.equal(list.items.length, 10);
  });
});

test('a KeepAliveKubeConfig still verifies the server against the kubeconfig CA, also after the CA changes, and sends its user token', async () => {
  await withRelay(async (kubeconfig) => {
    const wrongToken = KeepAliveKubeConfig.from(kubeconfig('not-the-token'));
    await assert.rejects(
      wrongToken.makeApiClient(CoreV1Api).listNamespacedConfigMap({ namespace: 'default' }),
      (err: { code?: number }) => err.code === 401,
    );
    wrongToken.closeConnections();

    // Warm: a verified connection sits in the pool. Then the kubeconfig trusts another CA only (a
    // rotated CA, or a rotated client certificate): the kept connection must not serve it.
    const pooled = KeepAliveKubeConfig.from(kubeconfig());
    const api = pooled.makeApiClient(CoreV1Api);
    await api.listNamespacedConfigMap({ namespace: 'default' });
    const other = await startTestApiServer();
    await other.stop();
    const cluster = pooled.getCurrentCluster()!;
    pooled.loadFromOptions({
      clusters: [{ ...cluster, caData: Buffer.from(other.server.caCert).toString('base64') }],
      users: pooled.getUsers(),
      contexts: pooled.getContexts(),
      currentContext: pooled.getCurrentContext(),
    });
    await assert.rejects(
      api.listNamespacedConfigMap({ namespace: 'default' }),
      /certificate|self.signed|signature/i,
    );
    pooled.closeConnections();
  });
});
