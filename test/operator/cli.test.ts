import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runBtxInProcess } from '../support/btx.js';

test('btx operator --help prints its flags and exits 0; a bad flag exits 2 with a reason', async () => {
  const help = await runBtxInProcess(['operator', '--help']);
  const workers = await runBtxInProcess(['operator', '--workers', '0']);
  const bogus = await runBtxInProcess(['operator', '--bogus']);
  assert.equal(help.code, 0);
  assert.equal(workers.code, 2);
  assert.equal(bogus.code, 2);
  for (const flag of [
    '--kubeconfig',
    '--namespace',
    '--metrics-port',
    '--leader-elect',
    '--no-leader-elect',
    '--lease-namespace',
    '--workers',
  ]) {
    assert.ok(help.stdout.includes(flag), flag);
  }
  assert.match(workers.stderr, /--workers must be an integer >= 1/);
  assert.match(bogus.stderr, /unknown flag '--bogus'/);
});
