// A stage whose input can never work fails its Job at once instead of spending the pod retries: the
// stage Jobs carry a podFailurePolicy that fails on the usage and refused-input exit codes, the Job
// controller (the embedded cluster's, as Kubernetes does) honours it, and `btx` exits with that code
// for data that is not there. Before, a missing data path took the tokenize Job's three pods (~40 s).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { EXIT_INPUT_REFUSED, EXIT_USAGE } from '../../src/api/stageContract.js';
import { planJob } from '../../src/cluster/jobs/jobPlan.js';
import { repoRoot } from '../support/tools.js';
import { jobPod, makeRun, podIn, World } from './fixtures.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');

/** The Job's Failed condition in a plan's status (wire JSON). */
function failedCondition(plan: ReturnType<typeof planJob>): { reason?: string } | undefined {
  const conditions = (plan.status.conditions ?? []) as { type: string; reason?: string }[];
  return conditions.find((c) => c.type === 'Failed');
}

test('tokenize and single-pod stage Jobs fail at once on exit 2 or 3 and retry on other failures', () => {
  const w = new World(makeRun());
  w.step();
  const tokenize = [...w.jobs.values()].find((j) => j.metadata?.name?.includes('tokenize'));
  w.throughTokenize();
  w.step();
  const seed = w.jobs.get('demo-seed');
  assert.ok(tokenize && seed, 'a tokenize Job and the seed Job were created');
  for (const job of [tokenize, seed]) {
    const started = { ...job, status: { startTime: new Date(T0) } };
    const plan = (exitCode: number) =>
      planJob(started, [podIn(jobPod(job, {}), { phase: 'Failed', exitCode })], T0, {
        backoffBaseMs: 1000,
        backoffMaxMs: 60_000,
      });
    for (const code of [EXIT_USAGE, EXIT_INPUT_REFUSED]) {
      assert.equal(
        failedCondition(plan(code))?.reason,
        'PodFailurePolicy',
        `${job.metadata?.name} exit ${code}`,
      );
    }
    const retried = plan(1);
    assert.equal(failedCondition(retried), undefined);
    assert.equal(retried.status.failed, 1, `${job.metadata?.name}: exit 1 spends one retry`);
  }
});

test('btx tokenize exits 3 (input refused) for a data path that is not there', () => {
  const out = mkdtempSync(join(tmpdir(), 'btx-refused-'));
  const r = spawnSync(
    process.execPath,
    [
      join(repoRoot, 'bin', 'btx.js'),
      'tokenize',
      '--data',
      `gone=${join(out, 'no-such-data')}`,
      '--out',
      out,
    ],
    { encoding: 'utf8', env: { ...process.env, BTX_LOG_LEVEL: 'error' } },
  );
  assert.equal(r.status, EXIT_INPUT_REFUSED, r.stderr);
  assert.match(r.stderr, /data path .*no-such-data cannot be read/);
});
