// `btx generate` as a user runs it (node bin/btx.js generate ...): it prints the prompt and the
// continuation the library samples (same seed, same text, in another process), works on a mixed
// (MoE) checkpoint and a training output folder, and refuses bad flags naming the flag.
import assert from 'node:assert/strict';
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { command, generateOptions } from '../../src/cli/generate.js';
import { parseFlags } from '../../src/cli/flags.js';
import { checkpointTokenizer } from '../../src/cli/checkpointTokenizer.js';
import { saveCheckpoint } from '../../src/trainer/checkpoint.js';
import { disposeLanguageModel, generateText, loadLanguageModel } from '../../src/trainer/generate.js';
import type { ModelConfig } from '../../src/trainer/hfConfig.js';
import { disposeParams, initParams, modelDims, paramsToTensors } from '../../src/trainer/model.js';
import { byteTokenizer } from '../../src/trainer/tokenizer.js';
import { llama3TokenizerDir } from '../../scripts/llama3TokenizerDir.js';
import { runBtxInProcess, runBtxProcess } from '../support/btx.js';
import { backend, tempDir, tinyLlama, tinyMixtral } from '../trainer/trainerFixtures.js';
import { EXIT_INPUT_REFUSED } from '../../src/api/stageContract.js';

const tmp = tempDir('generate-cli');
const denseDir = join(tmp.dir, 'seed'); // a training output folder: step-3 inside
const moeDir = join(tmp.dir, 'mixed');

async function save(dir: string, config: ModelConfig): Promise<void> {
  const params = initParams(modelDims(config), 5);
  await saveCheckpoint(dir, await paramsToTensors(params), config, {
    stage: 'test',
    step: 3,
    totalSteps: 3,
    loss: null,
    dataPosition: 3,
    randomSeed: 5,
    time: new Date().toISOString(),
  });
  disposeParams(params);
}

before(async () => {
  await backend();
  await save(join(denseDir, 'step-3'), tinyLlama());
  await save(moeDir, tinyMixtral(3));
});
after(tmp.cleanup);

function btx(args: string[]) {
  return runBtxProcess(['generate', ...args], { BTX_LOG_LEVEL: 'warn', BTX_BACKEND: 'wasm' });
}

function options(args: string[]) {
  const flags = parseFlags(command, args, {});
  assert.notEqual(flags, 'help');
  if (flags === 'help') throw new Error('help');
  return generateOptions(flags);
}

/** What the library samples in this process for the same checkpoint and options. */
async function expected(dir: string, prompt: string, args: string[]): Promise<string> {
  const opts = options(['--checkpoint', dir, '--prompt', prompt, ...args]);
  const model = await loadLanguageModel(dir);
  try {
    return (await generateText(model, await checkpointTokenizer(model), prompt, opts)).text;
  } finally {
    disposeLanguageModel(model);
  }
}

test('btx generate: prints the prompt and the sampled continuation of a dense checkpoint (newest step-N)', async () => {
  const args = ['--max-tokens', '12', '--temperature', '1', '--top-p', '0.9', '--seed', '7'];
  const r = await btx(['--checkpoint', denseDir, '--prompt', 'Hello', ...args]);
  assert.equal(r.code, 0, r.stderr);
  const continuation = await expected(denseDir, 'Hello', args);
  assert.ok(continuation.length > 0);
  assert.equal(r.stdout, `Hello${continuation}\n`);
  assert.match(
    r.stderr,
    /btx generate: 12 tokens \(max tokens\) in [\d.]+ s, [\d.]+ tokens\/s, from .*step-3/,
  );
});

test('btx generate: samples greedily from a mixed (MoE) checkpoint; another seed changes nothing at temperature 0', async () => {
  const args = ['--max-tokens', '10', '--temperature', '0'];
  const r = await btx(['--checkpoint', moeDir, '--prompt', 'abc', ...args, '--seed', '123']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `abc${await expected(moeDir, 'abc', [...args, '--seed', '1'])}\n`);
});

test('btx generate: refuses bad values with exit 2 and one line naming the flag', async () => {
  const r = await runBtxInProcess(['generate', '--checkpoint', denseDir, '--prompt', 'x', '--top-p', '1.5']);
  assert.equal(r.code, 2);
  assert.equal(r.stderr, "btx generate: --top-p must be a number >= 0 and <= 1, got '1.5'\n");
  const bad: [string[], RegExp][] = [
    [['--max-tokens', '0'], /--max-tokens must be an integer >= 1, got '0'/],
    [['--max-tokens', '2.5'], /--max-tokens must be an integer >= 1/],
    [['--temperature=-0.1'], /--temperature must be a number >= 0, got '-0.1'/],
    [['--temperature', 'hot'], /--temperature must be a number >= 0/],
    [['--top-p', '0'], /--top-p must be above 0/],
    [['--seed', '1.5'], /--seed must be an integer, got '1.5'/],
  ];
  for (const [extra, message] of bad) {
    assert.throws(() => options(['--checkpoint', 'd', '--prompt', 'x', ...extra]), message);
  }
  assert.throws(() => options(['--prompt', 'x']), /--checkpoint is required/);
  assert.throws(() => options(['--checkpoint', 'd']), /--prompt is required/);
  assert.throws(() => options(['--checkpoint', 'd', '--prompt', '']), /--prompt needs a value/);
});

test('btx generate: fails with one line naming the folder when there is no checkpoint or no usable tokenizer', async () => {
  const missing = await btx(['--checkpoint', join(tmp.dir, 'nothing'), '--prompt', 'x']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^btx: no checkpoint in .*nothing/m);
  assert.doesNotMatch(missing.stderr, /^\s+at /m);
  const wide = join(tmp.dir, 'wide');
  await save(wide, tinyLlama({ vocab_size: 300 }));
  const r = await btx(['--checkpoint', wide, '--prompt', 'x']);
  assert.equal(r.code, EXIT_INPUT_REFUSED, 'a checkpoint without a tokenizer is refused input');
  assert.match(r.stderr, /wide has no tokenizer\.json/);
});

test('btx generate: decodes with the tokenizer.json of the checkpoint, refuses one larger than vocab_size', async () => {
  const dir = join(tmp.dir, 'with-tokenizer');
  await save(dir, tinyLlama());
  for (const [name, bytes] of byteTokenizer().files) writeFileSync(join(dir, name), bytes);
  const model = await loadLanguageModel(dir);
  try {
    const tokenizer = await checkpointTokenizer(model);
    assert.deepEqual(await tokenizer.encode('hé'), [104, 195, 169]);
    assert.equal(tokenizer.decode([104, 195, 169, 257]), 'hé');
    // Llama 3's tokenizer (128,256 ids) in a checkpoint of 259 rows: refused with the folder and both sizes.
    for (const f of ['tokenizer.json', 'tokenizer_config.json'])
      copyFileSync(join(llama3TokenizerDir(), f), join(dir, f));
    await assert.rejects(
      checkpointTokenizer(model),
      /with-tokenizer: its tokenizer has 128256 tokens but config\.json vocab_size is 259/,
    );
  } finally {
    disposeLanguageModel(model);
  }
});
