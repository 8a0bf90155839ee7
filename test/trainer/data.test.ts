import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { heldOutWindows, loadDomain, trainingBatch } from '../../src/trainer/data.js';
import { byteTokenizer, encodeBytes as encode } from '../../src/trainer/tokenizer.js';

const decode = (ids: ArrayLike<number>) => byteTokenizer().decode(Array.from(ids));
import { REPO_SAMPLES, tempDir, writeCorpus } from './trainerFixtures.js';

const tmp = tempDir('data');
after(tmp.cleanup);

test('byte tokenizer: round-trips UTF-8 text and drops specials when decoding', () => {
  const text = 'naïve ∑ code();';
  assert.equal(decode([256, ...encode(text), 257]), text);
});

test('domains: hold out about a tenth of the documents, the same ones on every load', async () => {
  const a = await loadDomain('math', join(REPO_SAMPLES, 'math'));
  const b = await loadDomain('math', join(REPO_SAMPLES, 'math'));
  assert.deepEqual(a.heldOut, b.heldOut);
  const ratio = a.heldOutDocuments / a.documents;
  assert.ok(ratio > 0.05 && ratio < 0.15, `held-out ratio ${ratio}`);
  // Held-out paragraphs are not in the training stream.
  const heldText = decode(a.heldOut).split('\n\n')[0]!;
  assert.ok(!decode(a.train).includes(heldText));
});

test('domains: read .jsonl text fields and name the line of a bad record', async () => {
  const file = join(tmp.dir, 'docs.jsonl');
  writeFileSync(
    file,
    `${JSON.stringify({ text: 'first document' })}\n${JSON.stringify({ text: 'second one' })}\n`,
  );
  const d = await loadDomain('j', file);
  assert.equal(d.documents, 2);
  writeFileSync(file, `${JSON.stringify({ text: 'ok' })}\n{"body": 1}\n`);
  await assert.rejects(loadDomain('j', file), /docs\.jsonl:2: no string "text" field/);
});

test('batches: are a function of (seed, batch index) only, so a resumed run sees the same data', async () => {
  const source = { domains: [await loadDomain('a', writeCorpus(tmp.dir, 'a'))] };
  assert.deepEqual(trainingBatch(source, 3, 17, 4, 16), trainingBatch(source, 3, 17, 4, 16));
  assert.notDeepEqual(trainingBatch(source, 3, 17, 4, 16), trainingBatch(source, 3, 18, 4, 16));
  assert.notDeepEqual(trainingBatch(source, 3, 17, 4, 16), trainingBatch(source, 4, 17, 4, 16));
});

test('batches: mix domains by weight (a zero weight is never drawn)', async () => {
  const a = await loadDomain('a', writeCorpus(tmp.dir, 'alpha'));
  const b = await loadDomain('b', writeCorpus(tmp.dir, 'omega'));
  const text = decode(trainingBatch({ domains: [a, b], weights: [0, 1] }, 1, 0, 64, 40));
  assert.ok(text.includes('omega') && !text.includes('alpha'));
});

test('batches: evaluate every model on the same evenly spaced held-out windows', async () => {
  const d = await loadDomain('math', join(REPO_SAMPLES, 'math'));
  const w = heldOutWindows(d, 32, 8);
  assert.equal(w.length, 8 * 33);
  assert.deepEqual(w.subarray(0, 33), Int32Array.from(d.heldOut.subarray(0, 33)));
  assert.deepEqual(heldOutWindows(d, 32, 8), w);
});
