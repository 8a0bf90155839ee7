// The test harness itself: what tests rely on when they restart an API server under it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startTestApiServer } from './controlPlane.js';

test('after restartApiServer the very next request is answered, however many idle connections the old server had', async () => {
  // Before: fetch reused an idle connection the stopped server had closed ("other side closed"),
  // which failed the persistence test under load and this one within a few rounds.
  const t = await startTestApiServer({ persist: true });
  try {
    for (let round = 0; round < 10; round++) {
      await Promise.all([1, 2, 3].map(() => t.json('GET', '/api/v1/namespaces/default/configmaps')));
      await t.restartApiServer();
      assert.equal(
        (await t.json('GET', '/api/v1/namespaces/default/configmaps')).status,
        200,
        `round ${round}`,
      );
    }
  } finally {
    await t.stop();
  }
});
