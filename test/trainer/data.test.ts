// Tokenize once, stream forever: documents -> held-out split -> token shards + manifest, reused while
// the sources and tokenizer are the same and rebuilt when a source changes; batches read by random
// access are a function of (seed, batch index).
import assert from 'node:assert/strict';
import { readFileSync, utimesSync, writeFileSync, appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { heldOutWindows, trainingBatch } from '../../src/trainer/data.js';
import { closeDomain, loadDomain, openDomain, tokenizeDomain } from '../../src/trainer/tokenize.js';
import { byteTokenizer, loadTokenizer } from '../../src/trainer/tokenizer.js';
import type { TokenStream } from '../../src/trainer/tokenShards.js';
import { llama3TokenizerDir } from '../../scripts/llama3TokenizerDir.js';
import { byteDomain, REPO_SAMPLES, tempDir, writeCorpus } from './trainerFixtures.js';

const tmp = tempDir('data');
after(tmp.cleanup);
const bytes = byteTokenizer();
const EOS = bytes.eosId!;

/** The documents of a stream (byte tokenizer: each document is followed by EOS). */
function documentsOf(stream: TokenStream): string[] {
  const ids = Array.from(stream.all());
  const docs: string[] = [];
  let start = 0;
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] === EOS) {
      docs.push(bytes.decode(ids.slice(start, i)));
      start = i + 1;
    }
  }
  return docs;
}

test('domains: hold out about a tenth of the paragraphs, the same ones on every load, never in training', async () => {
  const a = await byteDomain('math', join(REPO_SAMPLES, 'math'));
  const tokens = join(tmp.dir, 'again');
  const b = await loadDomain('math', 'samples/math', join(REPO_SAMPLES, 'math'), tokens, bytes);
  assert.deepEqual(a.heldOut.all(), b.heldOut.all());
  const ratio = a.heldOutDocuments / a.documents;
  assert.ok(ratio > 0.05 && ratio < 0.15, `held-out ratio ${ratio}`);
  const train = new Set(documentsOf(a.train));
  const held = documentsOf(a.heldOut);
  assert.equal(held.length, a.heldOutDocuments);
  assert.ok(held.every((d) => !train.has(d)));
  assert.equal(a.manifest.dtype, 'uint16');
  assert.equal(a.manifest.tokens, a.manifest.bytes + a.documents); // bytes + one EOS each
  closeDomain(a);
  closeDomain(b);
});

test('domains: split a 1,000-line file without blank lines by line: ~10% held out, no line in both', async () => {
  const file = join(tmp.dir, 'lines.txt');
  writeFileSync(
    file,
    Array.from({ length: 1000 }, (_, i) => `example ${i}: ${(i * 7919) % 1000} plus ${i % 17}`).join('\n'),
  );
  const d = await byteDomain('lines', file);
  assert.equal(d.documents, 1000);
  assert.equal(d.manifest.source.files[0]!.unit, 'line');
  assert.ok(d.heldOutDocuments >= 70 && d.heldOutDocuments <= 130, `${d.heldOutDocuments} held out`);
  const train = documentsOf(d.train);
  const held = documentsOf(d.heldOut);
  assert.equal(train.length + held.length, 1000);
  const trainSet = new Set(train);
  assert.equal(held.filter((l) => trainSet.has(l)).length, 0);
  assert.deepEqual([...train, ...held].sort(), readFileSync(file, 'utf8').split('\n').sort());
  closeDomain(d);
});

test('domains: refuse a domain too small for a held-out part, naming it and the counts', async () => {
  const file = join(tmp.dir, 'tiny.txt');
  writeFileSync(file, 'one line\nanother line\n');
  await assert.rejects(
    byteDomain('tiny', file),
    /domain tiny \(.*tiny\.txt\): 2 documents give 0 held-out and 2 training documents/,
  );
});

test('domains: read .jsonl text fields and name the line of a bad record', async () => {
  const file = join(tmp.dir, 'docs.jsonl');
  const docs = Array.from({ length: 40 }, (_, i) => JSON.stringify({ text: `document number ${i}` }));
  writeFileSync(file, `${docs.join('\n')}\n`);
  const d = await byteDomain('j', file);
  assert.equal(d.documents, 40);
  closeDomain(d);
  writeFileSync(file, `${JSON.stringify({ text: 'ok' })}\n{"body": 1}\n`);
  await assert.rejects(byteDomain('j', file), /docs\.jsonl:2: no string "text" field/);
});

test('domains: cut a line longer than 1 MiB into pieces and keep every byte', async () => {
  const file = join(tmp.dir, 'long.txt');
  const lines = Array.from({ length: 30 }, (_, i) => `short line ${i}`);
  const long = 'ä'.repeat(700_000); // 1.4 MB of two-byte characters
  writeFileSync(file, [...lines, long].join('\n'));
  const d = await byteDomain('long', file);
  assert.equal(d.documents, 32);
  const all = [...documentsOf(d.train), ...documentsOf(d.heldOut)];
  assert.equal(all.filter((s) => s.startsWith('ä')).join(''), long);
  closeDomain(d);
});

test('shards: are reused while sources and tokenizer match, and rebuilt when a source changes', async () => {
  const dir = join(tmp.dir, 'stale-src');
  mkdirSync(dir);
  writeCorpus(dir, 'pears');
  const tokens = join(tmp.dir, 'stale-tokens');
  const req = {
    name: 'pears',
    dataPath: '/data/pears',
    hostDataPath: dir,
    tokensDir: tokens,
    tokenizer: bytes,
  };
  const first = await tokenizeDomain(req);
  assert.equal(first.reused, false);
  const again = await tokenizeDomain(req);
  assert.equal(again.reused, true);
  assert.equal(again.manifest.createdAt, first.manifest.createdAt);
  // The same bytes with a new mtime count as a change (the manifest keys on size and mtime).
  utimesSync(join(dir, 'pears.txt'), new Date(), new Date(Date.now() + 5000));
  const touched = await tokenizeDomain(req);
  assert.equal(touched.reused, false);
  appendFileSync(join(dir, 'pears.txt'), '\n\nA new paragraph about pears and plums.');
  const grown = await tokenizeDomain(req);
  assert.equal(grown.reused, false);
  assert.equal(grown.manifest.documents, first.manifest.documents + 1);
  // Another tokenizer invalidates them too.
  const llama = await loadTokenizer(llama3TokenizerDir());
  const relabelled = await tokenizeDomain({ ...req, tokenizer: llama });
  assert.equal(relabelled.reused, false);
  assert.equal(relabelled.manifest.tokenizerSha256, llama.sha256);
});

test('shards: hold Llama 3 ids as uint32 and read back exactly what the tokenizer gives', async () => {
  const llama = await loadTokenizer(llama3TokenizerDir());
  const file = join(tmp.dir, 'llama.jsonl');
  const texts = Array.from({ length: 50 }, (_, i) => `Résumé ${i}: 日本語 and emoji 🤗 x${i * 31}`);
  writeFileSync(file, texts.map((text) => JSON.stringify({ text })).join('\n'));
  const d = await loadDomain('llama', file, file, join(tmp.dir, 'llama-tokens'), llama);
  assert.equal(d.manifest.dtype, 'uint32');
  assert.deepEqual(d.manifest.separator, [128001]);
  const expected = (await llama.encodeBatch(texts)).flatMap((ids) => [...ids, 128001]);
  const got = [...d.train.all(), ...d.heldOut.all()];
  assert.equal(got.length, expected.length);
  assert.ok(got.some((id) => id > 65535));
  // Streams are documents in file order, split by hash: merge them back by membership.
  assert.deepEqual(
    [...got].sort((a, b) => a - b),
    [...expected].sort((a, b) => a - b),
  );
  closeDomain(d);
});

test('shards: split across the pods of an Indexed Job: parts merge into exactly the single-pod result', async () => {
  const dir = join(tmp.dir, 'parts-src');
  mkdirSync(dir);
  writeFileSync(
    join(dir, 'a.jsonl'),
    Array.from({ length: 300 }, (_, i) =>
      JSON.stringify({ text: `json document ${i} ${'z'.repeat(i % 23)}` }),
    ).join('\n'),
  );
  writeFileSync(join(dir, 'b.txt'), Array.from({ length: 200 }, (_, i) => `line example ${i}`).join('\n'));
  writeCorpus(dir, 'c', 40); // paragraph mode: goes whole to one part
  const base = { name: 'p', dataPath: '/data/p', hostDataPath: dir, tokenizer: bytes };
  const single = await tokenizeDomain({ ...base, tokensDir: join(tmp.dir, 'parts-one') });
  const results = [];
  for (const index of [2, 0, 1]) {
    results.push(
      await tokenizeDomain({ ...base, tokensDir: join(tmp.dir, 'parts-three'), part: { index, count: 3 } }),
    );
  }
  assert.equal(results[0]!.merged, null); // parts missing
  assert.equal(results[1]!.merged, null);
  const merged = results[2]!.merged!;
  assert.equal(merged.parts, 3);
  for (const key of ['documents', 'tokens', 'bytes', 'heldOutDocuments', 'heldOutTokens'] as const) {
    assert.equal(merged[key], single.manifest[key], key);
  }
  const one = openDomain('p', join(tmp.dir, 'parts-one', 'p'), single.manifest);
  const three = await loadDomain('p', '/data/p', dir, join(tmp.dir, 'parts-three'), bytes);
  assert.equal(three.manifest.parts, 3); // the trainer reuses the merged parts
  assert.deepEqual(documentsOf(three.train).sort(), documentsOf(one.train).sort());
  assert.deepEqual(documentsOf(three.heldOut).sort(), documentsOf(one.heldOut).sort());
  closeDomain(one);
  closeDomain(three);
});

test('batches: are a function of (seed, batch index) only, so a resumed run sees the same data', async () => {
  const source = { domains: [await byteDomain('a', writeCorpus(tmp.dir, 'a'))] };
  assert.deepEqual(trainingBatch(source, 3, 17, 4, 16), trainingBatch(source, 3, 17, 4, 16));
  assert.notDeepEqual(trainingBatch(source, 3, 17, 4, 16), trainingBatch(source, 3, 18, 4, 16));
  assert.notDeepEqual(trainingBatch(source, 3, 17, 4, 16), trainingBatch(source, 4, 17, 4, 16));
});

test('batches: mix domains by weight (a zero weight is never drawn)', async () => {
  const a = await byteDomain('a', writeCorpus(tmp.dir, 'alpha'));
  const b = await byteDomain('b', writeCorpus(tmp.dir, 'omega'));
  const text = bytes.decode(Array.from(trainingBatch({ domains: [a, b], weights: [0, 1] }, 1, 0, 64, 40)));
  assert.ok(text.includes('omega') && !text.includes('alpha'));
});

test('batches: evaluate every model on the same evenly spaced held-out windows', async () => {
  const d = await byteDomain('math', join(REPO_SAMPLES, 'math'));
  const w = heldOutWindows(d, 32, 8);
  assert.equal(w.length, 8 * 33);
  assert.deepEqual(w.subarray(0, 33), d.heldOut.all().subarray(0, 33));
  assert.deepEqual(heldOutWindows(d, 32, 8), w);
});
