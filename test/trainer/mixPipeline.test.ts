// The mix's bounded pipeline (slicePipeline.ts): jobs are prepared concurrently but committed in
// order, never more than `depth` at once and never two in one buffer slot; a failure stops it only
// after every job in flight has settled. And through the whole mix: any pipeline depth, slice size
// and number of worker threads writes the same bytes.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { mixExperts } from '../../src/trainer/mix/mixExperts.js';
import { runPipeline } from '../../src/trainer/mix/slicePipeline.js';
import { log } from '../../src/util/log.js';
import { writeLlamaCheckpoint, type LlamaShape } from './mixFixtures.js';

log.level = 'warn';

const root = await mkdtemp(join(tmpdir(), 'btx-mix-pipeline-'));
after(() => rm(root, { recursive: true, force: true }));

/** A promise that resolves after a few event-loop turns, a different number per job. */
function turns(n: number): Promise<void> {
  return n <= 0 ? Promise.resolve() : new Promise((r) => setImmediate(() => void turns(n - 1).then(r)));
}

/** Deterministic "random" delays that make later jobs often finish preparing before earlier ones. */
const delay = (j: number) => (j * 7919) % 5;

test('jobs are committed in order with their own prepared values, at most depth in flight, one per slot', async () => {
  for (const depth of [1, 2, 3, 5]) {
    const count = 23;
    const committed: number[] = [];
    const slotOwner = new Map<number, number>();
    let inFlight = 0;
    let maxInFlight = 0;
    let preparedAheadOfCommit = false;
    await runPipeline(count, depth, {
      prepare: async (j, slot) => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        assert.equal(slot, j % depth, `job ${j}'s slot`);
        assert.equal(slotOwner.get(slot), undefined, `slot ${slot} is still job ${slotOwner.get(slot)}'s`);
        slotOwner.set(slot, j);
        // A job started while an earlier one waits to be committed: reads overlap writes.
        if (committed.length < j) preparedAheadOfCommit = true;
        await turns(delay(j));
        return `job ${j}`;
      },
      commit: async (j, slot, value) => {
        assert.equal(value, `job ${j}`);
        assert.equal(committed.length, j, `job ${j} committed after ${committed.join(',')}`);
        await turns(delay(j + 1));
        committed.push(j);
        slotOwner.delete(slot);
        inFlight--;
      },
    });
    assert.deepEqual(
      committed,
      Array.from({ length: count }, (_, j) => j),
    );
    assert.equal(maxInFlight, depth, `depth ${depth}: most jobs in flight at once`);
    assert.equal(preparedAheadOfCommit, depth > 1, `depth ${depth}: later jobs prepared before commits`);
  }
});

test('a failed prepare or commit rejects only after every job in flight has settled, and nothing is committed after it', async () => {
  for (const failIn of ['prepare', 'commit'] as const) {
    const committed: number[] = [];
    const unsettled = new Set<number>();
    const failed = runPipeline(40, 3, {
      prepare: async (j) => {
        unsettled.add(j);
        await turns(delay(j) + 2);
        unsettled.delete(j);
        if (failIn === 'prepare' && j === 7) throw new Error('read failed at job 7');
        return j;
      },
      commit: async (j) => {
        await turns(1);
        if (failIn === 'commit' && j === 7) throw new Error('write failed at job 7');
        committed.push(j);
      },
    });
    await assert.rejects(failed, new RegExp(`failed at job 7`));
    assert.deepEqual([...unsettled], [], `${failIn}: jobs still preparing when it rejected`);
    assert.deepEqual(committed, [0, 1, 2, 3, 4, 5, 6], failIn);
  }
  await assert.rejects(
    runPipeline(1, 0, { prepare: () => Promise.resolve(), commit: () => Promise.resolve() }),
    /depth must be an integer >= 1, got 0/,
  );
});

async function fileHashes(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const f of (await readdir(dir)).sort()) {
    if (f === 'trainer_state.json') continue; // holds the time of the run
    out[f] = createHash('sha256')
      .update(await readFile(join(dir, f)))
      .digest('hex');
  }
  return out;
}

test('every pipeline depth, slice size and thread count writes byte-identical files', async () => {
  const shape: LlamaShape = { vocab: 40, hidden: 16, intermediate: 24, layers: 2, heads: 2 };
  const experts = [
    await writeLlamaCheckpoint(join(root, 'in', 'a'), shape, { dtype: 'BF16', seed: 1 }),
    await writeLlamaCheckpoint(join(root, 'in', 'b'), shape, { dtype: 'F16', seed: 2, shardSize: 900 }),
    await writeLlamaCheckpoint(join(root, 'in', 'c'), shape, { dtype: 'BF16', seed: 3, shardSize: 2000 }),
  ];
  const runs = [
    { pipelineDepth: 1, sliceElements: 1 << 20 },
    { pipelineDepth: 1, sliceElements: 37 },
    { pipelineDepth: 2, sliceElements: 37 },
    { pipelineDepth: 3, sliceElements: 5 },
    { pipelineDepth: 8, sliceElements: 64 },
    // The arithmetic and hashing on two worker threads instead of this one.
    { pipelineDepth: 3, sliceElements: 37, threads: 2 },
  ];
  const hashes = [];
  for (const [i, run] of runs.entries()) {
    const out = join(root, 'out', String(i));
    await mixExperts({ experts: experts.map((dir) => ({ dir })), out, shardSize: 3000, ...run });
    hashes.push(await fileHashes(out));
  }
  assert.ok(Object.keys(hashes[0]!).length > 3, 'several shards, an index and a config');
  for (const [i, h] of hashes.entries()) assert.deepEqual(h, hashes[0], JSON.stringify(runs[i]));
  await assert.rejects(
    mixExperts({ experts: experts.map((dir) => ({ dir })), out: join(root, 'out', 'x'), pipelineDepth: 0 }),
    /pipeline depth 0 must be an integer >= 1/,
  );
});
