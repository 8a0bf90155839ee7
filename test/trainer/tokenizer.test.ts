// Tokenizers as data: the Llama 3 tokenizer through HF's Rust `tokenizers` gives the ids an
// independent implementation gives, the byte tokenizer's tokenizer.json loads back through the same
// library with identical ids, and a checkpoint without a tokenizer, or with one larger than its
// vocabulary, is refused with the folder and the numbers.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Tokenizer } from 'tokenizers';
import {
  byteTokenizer,
  checkTokenizerFits,
  loadCheckpointTokenizer,
  loadTokenizer,
  TOKENIZER_FILE,
} from '../../src/trainer/tokenizer.js';
import { llama3TokenizerDir } from '../../scripts/llama3TokenizerDir.js';
import { tempDir } from './trainerFixtures.js';

const tmp = tempDir('tokenizer');
after(tmp.cleanup);

const LLAMA3_TOKENIZER_DIR = llama3TokenizerDir();

// Ids from an independent implementation: @lenml/tokenizers 3.7.2 (a JavaScript port of
// transformers.js's BPE, no shared code with the Rust library), `tokenizer.encode(s,
// {add_special_tokens: false})` over the same Llama 3 files, printed once and pasted here.
// "Hello world" -> [9906, 1917] and the pangram's ids also match Meta's tiktoken-based tokenizer.
const LLAMA3_IDS: [string, number[]][] = [
  ['Hello world', [9906, 1917]],
  [
    'The quick brown fox jumps over the lazy dog.',
    [791, 4062, 14198, 39935, 35308, 927, 279, 16053, 5679, 13],
  ],
  [
    'Café crème brûlée à la façon de Noël',
    [34, 2642, 978, 1589, 25253, 1437, 30872, 75, 8047, 3869, 1208, 76407, 409, 2360, 74553],
  ],
  ['日本語のテキストと中文', [102433, 102158, 16144, 57933, 62903, 71634, 19732, 108891]],
  ['Emoji 🤗🚀👍🏽 done', [93831, 11410, 97, 245, 9468, 248, 222, 9468, 239, 235, 9468, 237, 121, 2884]],
  ['def add(a, b):\n    return a + b\n', [755, 923, 2948, 11, 293, 997, 262, 471, 264, 489, 293, 198]],
  ['    four leading spaces', [262, 3116, 6522, 12908]],
  [' x', [865]],
  ['<|begin_of_text|>Hi<|end_of_text|>', [128000, 13347, 128001]],
  ['<|start_header_id|>user<|end_header_id|>\n\n', [128006, 882, 128007, 271]],
  [
    'naïve résumé — “quotes” 12345',
    [3458, 38672, 588, 9517, 1264, 978, 2001, 1054, 54382, 863, 220, 4513, 1774],
  ],
  ['Привет, мир!', [54745, 28089, 8341, 11, 115388, 0]],
];

test('Llama 3 tokenizer from a checkpoint folder: encodes a dozen strings to the ids an independent implementation gives, and decodes them back', async () => {
  const tok = await loadTokenizer(LLAMA3_TOKENIZER_DIR);
  assert.equal(tok.vocabSize, 128256);
  assert.equal(tok.bosId, 128000);
  assert.equal(tok.eosId, 128001);
  for (const [text, ids] of LLAMA3_IDS) {
    assert.deepEqual(await tok.encode(text), ids, JSON.stringify(text));
    assert.equal(tok.decode(ids), text.replace(/<\|[a-z_]+\|>/g, ''), JSON.stringify(text));
  }
  const batch = await tok.encodeBatch(LLAMA3_IDS.map(([t]) => t));
  assert.deepEqual(
    batch,
    LLAMA3_IDS.map(([, ids]) => ids),
  );
});

test('Llama 3 tokenizer from a checkpoint folder: is identified by the sha256 of tokenizer.json', async () => {
  const a = await loadTokenizer(LLAMA3_TOKENIZER_DIR);
  assert.match(a.sha256, /^[0-9a-f]{64}$/);
  assert.notEqual(a.sha256, byteTokenizer().sha256);
  assert.deepEqual([...a.files.keys()].sort(), ['tokenizer.json', 'tokenizer_config.json']);
});

test('byte tokenizer: round-trips UTF-8 text and drops specials when decoding', async () => {
  const b = byteTokenizer();
  const text = 'naïve ∑ code();';
  assert.equal(b.decode([256, ...(await b.encode(text)), 257]), text);
  assert.deepEqual(await b.encode('a<|eos|>'), [97, 257]);
});

test('byte tokenizer: is written as a tokenizer.json that HF tokenizers loads with the same ids and text', async () => {
  const files = byteTokenizer().files;
  const hf = Tokenizer.fromString(new TextDecoder().decode(files.get(TOKENIZER_FILE)!));
  assert.equal(hf.getVocabSize(true), 259);
  const everyByte = String.fromCharCode(...Array.from({ length: 256 }, (_, i) => i));
  for (const text of [
    'Hello world',
    '  leading\tand\n\nblank',
    'héllo 日本語 🤗',
    '<|bos|>x<|pad|>',
    everyByte,
  ]) {
    const ids = (await hf.encode(text, null, { addSpecialTokens: false })).getIds();
    assert.deepEqual(ids, await byteTokenizer().encode(text), JSON.stringify(text));
    assert.equal(await hf.decode(ids, true), byteTokenizer().decode(ids));
  }
  // And it comes back from a folder as the byte tokenizer itself.
  const dir = join(tmp.dir, 'bytes');
  mkdirSync(dir);
  for (const [name, bytes] of files) writeFileSync(join(dir, name), bytes);
  assert.equal(await loadTokenizer(dir), byteTokenizer());
});

test('refused checkpoints: a folder without tokenizer.json is named in the error', async () => {
  const dir = join(tmp.dir, 'no-tokenizer');
  mkdirSync(dir);
  await assert.rejects(loadTokenizer(dir), (err: Error) => {
    assert.ok(err.message.includes(dir) && err.message.includes('tokenizer.json'), err.message);
    return true;
  });
});

test('refused checkpoints: a tokenizer larger than vocab_size names the folder and both sizes', async () => {
  const dir = join(tmp.dir, 'llama3-small-vocab');
  mkdirSync(dir);
  for (const f of ['tokenizer.json', 'tokenizer_config.json'])
    copyFileSync(join(LLAMA3_TOKENIZER_DIR, f), join(dir, f));
  await assert.rejects(loadCheckpointTokenizer(dir, 32000), (err: Error) => {
    assert.match(err.message, /128256 tokens/);
    assert.match(err.message, /vocab_size is 32000/);
    assert.ok(err.message.includes(dir), err.message);
    return true;
  });
  assert.throws(() => checkTokenizerFits(byteTokenizer(), 258, 'x'), /259 tokens.*vocab_size is 258/);
  checkTokenizerFits(byteTokenizer(), 259, 'x');
});
