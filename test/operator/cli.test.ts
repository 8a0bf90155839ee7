import { test } from 'node:test';
import assert from 'node:assert/strict';
import { run } from '../../src/cli/operator.js';

test('btx operator --help prints its flags and exits 0; a bad flag exits 2 with a reason', async () => {
  const out: string[] = [];
  const err: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  const writeErr = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((s: string) => (out.push(String(s)), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => (err.push(String(s)), true)) as typeof process.stderr.write;
  try {
    assert.equal(await run(['--help']), 0);
    assert.equal(await run(['--workers', '0']), 2);
    assert.equal(await run(['--bogus']), 2);
  } finally {
    process.stdout.write = write;
    process.stderr.write = writeErr;
  }
  const help = out.join('');
  for (const flag of [
    '--kubeconfig',
    '--namespace',
    '--metrics-port',
    '--leader-elect',
    '--no-leader-elect',
    '--lease-namespace',
    '--workers',
  ]) {
    assert.ok(help.includes(flag), flag);
  }
  assert.match(err.join(''), /--workers must be an integer >= 1/);
  assert.match(err.join(''), /unknown flag '--bogus'/);
});
