// A watcher that stops reading is disconnected once its unread bytes pass the bound, while the
// writers and a watcher that keeps reading go on undisturbed.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, test } from 'node:test';
import { serverInternals } from '../../src/cluster/apiserver/server.js';
import { TEST_TOKEN, type TestApiServer, startTestApiServer } from '../support/controlPlane.js';
import { waitFor } from '../support/waitFor.js';

let t: TestApiServer;

before(async () => {
  t = await startTestApiServer({ watchBufferBytes: 256 * 1024 });
});

after(async () => {
  await t?.stop();
});

test('a watcher that does not read is dropped; a reading watcher gets every event', async () => {
  const { port } = t.server;
  const path = '/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=0';
  // The slow one: a raw connection that sends the request and never reads the answer.
  const slow = connect(port, '127.0.0.1');
  await new Promise<void>((r) => slow.once('connect', () => r()));
  slow.pause();
  let slowClosed = false;
  slow.on('close', () => (slowClosed = true));
  slow.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TEST_TOKEN}\r\n\r\n`);
  // The reading one counts ADDED events.
  const ctrl = new AbortController();
  const res = await fetch(`${t.url}${path}`, {
    headers: { Authorization: `Bearer ${TEST_TOKEN}` },
    signal: ctrl.signal,
  });
  let added = 0;
  const reading = (async () => {
    let buf = '';
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buf += Buffer.from(chunk).toString('utf8');
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          if (buf.slice(0, nl).startsWith('{"type":"ADDED"')) added++;
          buf = buf.slice(nl + 1);
        }
      }
    } catch {
      // aborted
    }
  })();
  await waitFor('both watchers', () => serverInternals(t.server).api.store.watcherCount() === 2, 10_000);
  const { api } = serverInternals(t.server);
  const info = api.registry.get('', 'configmaps')!;
  const data = { blob: 'x'.repeat(20_000) };
  const total = 1000; // 20 MB: more than the kernel's socket buffers hold
  for (let i = 0; i < total; i++) {
    api.create(info, 'v1', 'default', { metadata: { name: `big-${i}` }, data });
    if (i % 5 === 4) await new Promise((r) => setImmediate(r));
  }
  await waitFor(
    `the reading watcher to get all ${total} events (has ${added})`,
    () => added === total,
    20_000,
  );
  await waitFor('the slow watcher to be dropped', () => slowClosed || api.store.watcherCount() === 1, 10_000);
  assert.equal(api.store.watcherCount(), 1);
  ctrl.abort();
  slow.destroy();
  await reading;
});
