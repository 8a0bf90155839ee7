import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ENV } from '../../src/api/stageContract.js';
import { saveCheckpoint } from '../../src/trainer/checkpoint.js';
import { disposeParams, initParams, modelDims, paramsToTensors } from '../../src/trainer/model.js';
import { EVAL_FLAGS, Flags, helpText, parseFlags, TRAIN_FLAGS } from '../../src/trainer/options.js';
import { repoRoot } from '../support/tools.js';
import { backend, tempDir, tinyLlama, writeCorpus } from './trainerFixtures.js';

const tmp = tempDir('cli');
const volume = join(tmp.dir, 'volume');
const terminationLog = join(tmp.dir, 'termination-log');

before(async () => {
  await backend();
  mkdirSync(join(volume, 'data'), { recursive: true });
  writeCorpus(join(volume, 'data'), 'apples');
  const config = tinyLlama();
  const params = initParams(modelDims(config), 3);
  await saveCheckpoint(join(volume, 'seed', 'step-10'), await paramsToTensors(params), config, {
    stage: 'seed',
    step: 10,
    totalSteps: 10,
    loss: null,
    dataPosition: 10,
    randomSeed: 3,
    time: new Date().toISOString(),
  });
  disposeParams(params);
});
after(tmp.cleanup);

/** Run `node bin/btx.js ...args` as the embedded kubelet would (stage env + BTX_LOCAL_PATHS). */
function btx(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(repoRoot, 'bin', 'btx.js'), ...args], {
      env: {
        PATH: process.env.PATH,
        BTX_LOG_LEVEL: 'warn',
        BTX_BACKEND: 'wasm',
        [ENV.localPaths]: JSON.stringify({ '/btx': volume, '/dev/termination-log': terminationLog }),
        ...env,
      },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`btx ${args.join(' ')} timed out; stderr: ${stderr}`));
    }, 60_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('btx train / btx eval as stages', () => {
  it('btx train expert reads the BTX_* env, maps /btx through BTX_LOCAL_PATHS and writes the termination message', async () => {
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

  it('btx eval as a stage writes results.json and puts the results in the termination message', async () => {
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

  it('fails with a one-line reason and no stack trace when a required setting is missing', async () => {
    const r = await btx(['train', 'expert'], { [ENV.output]: '/btx/x' });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /^btx: btx train expert: --data \(or BTX_DATA\) is required$/m);
    assert.ok(
      !/\n\s+at /.test(
        r.stdout +
          r.stderr
            .split('\n')
            .filter((l) => !l.startsWith('{'))
            .join('\n'),
      ),
    );
  });

  it('--help lists every flag with its BTX_* variable', () => {
    const train = helpText('usage', TRAIN_FLAGS);
    for (const f of TRAIN_FLAGS) assert.match(train, new RegExp(`--${f.flag}\\b.*${f.env}`));
    const ev = helpText('usage', EVAL_FLAGS);
    for (const f of EVAL_FLAGS) assert.match(ev, new RegExp(`--${f.flag}\\b.*${f.env}`));
  });

  it('a flag wins over its BTX_* variable; the variable fills in what flags leave out', () => {
    process.env.BTX_STEPS = '5';
    process.env.BTX_BATCH_SIZE = '3';
    try {
      const parsed = parseFlags(['--steps', '7'], TRAIN_FLAGS, 'btx train expert');
      assert.notEqual(parsed, 'help');
      const f = new Flags(parsed as Exclude<typeof parsed, 'help'>, 'btx train expert');
      assert.equal(f.number('steps', 200), 7);
      assert.equal(f.number('batch-size', 8), 3);
    } finally {
      delete process.env.BTX_STEPS;
      delete process.env.BTX_BATCH_SIZE;
    }
  });
});
