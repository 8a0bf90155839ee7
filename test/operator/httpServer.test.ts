// /metrics and the probes say where they really listen (issue 9: the log said 127.0.0.1 while the
// server listened on every interface).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { startHttpServer } from '../../src/operator/httpServer.js';

const probes = { registry: new Registry(), healthy: () => true, ready: () => true };

test('the HTTP server reports the address it listens on: 0.0.0.0 is every interface, not 127.0.0.1', async () => {
  const wildcard = await startHttpServer(0, '0.0.0.0', probes);
  const loopback = await startHttpServer(0, '127.0.0.1', probes);
  try {
    assert.match(wildcard.address, /^0\.0\.0\.0:\d+$/);
    assert.match(loopback.address, /^127\.0\.0\.1:\d+$/);
    // The URL is for a client on this machine, and it answers.
    const port = wildcard.address.split(':')[1];
    assert.equal(wildcard.url, `http://127.0.0.1:${port}/metrics`);
    assert.equal((await fetch(wildcard.url.replace('/metrics', '/healthz'))).status, 200);
  } finally {
    await wildcard.close();
    await loopback.close();
  }
});
