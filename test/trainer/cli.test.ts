import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ENV } from '../../src/api/stageContract.js';
import { helpText, parseFlags } from '../../src/cli/flags.js';
import { EVAL_COMMAND, TRAIN_COMMAND } from '../../src/cli/trainArgs.js';
import { runBtxProcess } from '../support/btx.js';
import { backend, saveRandomCheckpoint, tempDir, tinyLlama, writeCorpus } from './trainerFixtures.js';

const tmp = tempDir('cli');
const volume = join(tmp.dir, 'volume');
const terminationLog = join(tmp.dir, 'termination-log');

before(async () => {
  await backend();
  mkdirSync(join(volume, 'data'), { recursive: true });
  writeCorpus(join(volume, 'data'), 'apples');
  await saveRandomCheckpoint(join(volume, 'seed', 'step-10'), tinyLlama(), { randomSeed: 3, step: 10 });
});
after(tmp.cleanup);

/** `btx ...args` as the embedded kubelet runs it (stage env + BTX_LOCAL_PATHS). */
function btx(args: string[], env: Record<string, string>) {
  return runBtxProcess(args, {
    BTX_LOG_LEVEL: 'warn',
    BTX_BACKEND: 'wasm',
    [ENV.localPaths]: JSON.stringify({ '/btx': volume, '/dev/termination-log': terminationLog }),
    ...env,
  });
}

test('btx train expert reads the BTX_* env, maps /btx through BTX_LOCAL_PATHS and writes the termination message', async () => {
  const r = await btx(['train', 'expert'], {
    [ENV.stage]: 'expert',
    [ENV.domain]: 'apples',
    [ENV.data]: '/btx/data/apples.txt',
    [ENV.input]: '/btx/seed',
    [ENV.output]: '/btx/experts/apples',
    [ENV.steps]: '4',
    [ENV.batchSize]: '2',
    [ENV.checkpointEvery]: '2',
    BTX_SEQ_LEN: '16',
  });
  assert.equal(r.code, 0, r.stderr);
  const message = JSON.parse(readFileSync(terminationLog, 'utf8')) as {
    checkpoint: string;
    step: number;
    loss: number;
  };
  assert.equal(message.checkpoint, '/btx/experts/apples/step-4'); // a container path
  assert.equal(message.step, 4);
  assert.ok(message.loss > 0 && message.loss < 10);
  assert.ok(existsSync(join(volume, 'experts', 'apples', 'step-2', 'optimizer.safetensors')));
  assert.ok(existsSync(join(volume, 'experts', 'apples', 'step-4', 'model.safetensors')));
});

test('btx eval as a stage writes results.json and puts the results in the termination message', async () => {
  const r = await btx(['eval'], {
    [ENV.stage]: 'eval',
    [ENV.checkpoints]: 'seed=/btx/seed,expert=/btx/experts/apples',
    [ENV.data]: 'apples=/btx/data/apples.txt',
    [ENV.output]: '/btx/eval',
    [ENV.evalBatches]: '1',
    [ENV.batchSize]: '2',
    BTX_SEQ_LEN: '16',
  });
  assert.equal(r.code, 0, r.stderr);
  const message = JSON.parse(readFileSync(terminationLog, 'utf8')) as {
    checkpoint: string;
    results: { model: string; loss: number }[];
  };
  assert.equal(message.checkpoint, '/btx/eval/results.json');
  assert.deepEqual(
    message.results.map((x) => x.model),
    ['seed', 'expert'],
  );
  const expert = message.results.find((x) => x.model === 'expert')!;
  const seed = message.results.find((x) => x.model === 'seed')!;
  assert.ok(expert.loss < seed.loss, 'the trained expert should beat its random seed');
  assert.ok(existsSync(join(volume, 'eval', 'results.json')));
});

test('btx train fails with a one-line reason and no stack trace when a required setting is missing', async () => {
  const r = await btx(['train', 'expert'], { [ENV.output]: '/btx/x' });
  assert.equal(r.code, 2);
  // The whole of stderr: one plain line, no JSON log line, no stack trace.
  assert.equal(r.stderr, 'btx train: --data (or BTX_DATA) is required\n');
  assert.ok(!/\n\s+at /.test(r.stdout + r.stderr));
});

test('btx train/eval --help lists every flag with its BTX_* variable', () => {
  for (const command of [TRAIN_COMMAND, EVAL_COMMAND]) {
    const help = helpText(command);
    for (const f of command.flags) assert.match(help, new RegExp(`--${f.name}\\b.*${f.env}`));
  }
});

test('btx train: a flag wins over its BTX_* variable; the variable fills in what flags leave out', () => {
  const f = parseFlags(TRAIN_COMMAND, ['--steps', '7'], { BTX_STEPS: '5', BTX_BATCH_SIZE: '3' });
  assert.ok(f !== 'help');
  assert.equal(f.number('steps', 200), 7);
  assert.equal(f.number('batch-size', 8), 3);
});
