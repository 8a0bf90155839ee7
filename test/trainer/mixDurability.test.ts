// A finished mix is durable: every file in the output folder (shards, index, config, the tokenizer
// and generation files copied from the first expert, trainer_state.json) was fsynced before the folder
// was renamed into place. FileHandle's sync and datasync are wrapped to record which files they reach
// (by the descriptor's /proc/self/fd link).
import assert from 'node:assert/strict';
import { readlinkSync } from 'node:fs';
import { mkdtemp, open, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, test } from 'node:test';
import { mixExperts } from '../../src/trainer/mix/mixExperts.js';
import { log } from '../../src/util/log.js';
import { llama3TokenizerDir } from '../../scripts/llama3TokenizerDir.js';
import { writeLlamaCheckpoint, type LlamaShape } from './mixFixtures.js';

log.level = 'warn';

const root = await mkdtemp(join(tmpdir(), 'btx-mix-durable-'));
after(() => rm(root, { recursive: true, force: true }));

test('every file of the mixed folder is fsynced before the folder is published', async () => {
  const shape: LlamaShape = { vocab: 32, hidden: 8, intermediate: 12, layers: 2, heads: 2 };
  const tokenizer = llama3TokenizerDir();
  const experts = [
    await writeLlamaCheckpoint(join(root, 'a'), shape, { dtype: 'BF16', seed: 1, tokenizer }),
    await writeLlamaCheckpoint(join(root, 'b'), shape, { dtype: 'BF16', seed: 2, tokenizer }),
  ];
  const probe = await open(join(root, 'probe'), 'w');
  const proto = Object.getPrototypeOf(probe) as {
    sync(): Promise<void>;
    datasync(): Promise<void>;
  };
  await probe.close();
  const { sync, datasync } = proto;
  const synced = new Set<string>();
  const record = (fd: number) => synced.add(basename(readlinkSync(`/proc/self/fd/${fd}`)));
  proto.sync = async function (this: { fd: number }) {
    await sync.call(this);
    record(this.fd);
  };
  proto.datasync = async function (this: { fd: number }) {
    await datasync.call(this);
    record(this.fd);
  };
  const out = join(root, 'mixed');
  try {
    await mixExperts({
      experts: experts.map((dir) => ({ dir })),
      out,
      verifyInputs: false,
      shardSize: 3000,
    });
  } finally {
    proto.sync = sync;
    proto.datasync = datasync;
  }
  const files = await readdir(out);
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'config.json'])
    assert.ok(files.includes(f), `${f} is in the mixed folder`);
  assert.ok(files.filter((f) => f.endsWith('.safetensors')).length > 1, `sharded: ${files.join(', ')}`);
  const unsynced = files.filter((f) => !synced.has(f));
  assert.deepEqual(unsynced, [], `files never fsynced (synced: ${[...synced].join(', ')})`);
});
