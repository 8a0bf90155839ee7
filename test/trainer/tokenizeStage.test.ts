// `btx tokenize` as the operator's tokenize stage (the contract in docs/stage-contract.md): what its
// termination message says for a small domain, a current one, a tokenized folder and a domain too big
// for one pod (a split, nothing written); and the later stages with BTX_TOKENIZED, which read the
// stage's shards and refuse to tokenize on their own.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { TerminationMessage } from '../../src/api/stageContract.js';
import { closeDomain, loadDomain, partsFor } from '../../src/trainer/tokenize.js';
import { byteTokenizer } from '../../src/trainer/tokenizer.js';
import { runBtxProcess } from '../support/btx.js';
import { tempDir, writeCorpus } from './trainerFixtures.js';

const tmp = tempDir('tokenize-stage');
after(tmp.cleanup);
const bytes = byteTokenizer();

/** One tokenize pod: the stage's variables, and the termination message it wrote. */
async function tokenizePod(env: Record<string, string>): Promise<TerminationMessage> {
  const log = join(tmp.dir, `termination-${Math.random().toString(16).slice(2)}`);
  const r = await runBtxProcess(['tokenize'], {
    BTX_STAGE: 'tokenize',
    BTX_LOCAL_PATHS: JSON.stringify({ '/dev/termination-log': log }),
    ...env,
  });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(readFileSync(log, 'utf8')) as TerminationMessage;
}

test('partsFor: one part up to partBytes, then ceil(bytes / partBytes), at most maxParts', () => {
  assert.equal(partsFor(1000, 1000, 16), 1);
  assert.equal(partsFor(1001, 1000, 16), 2);
  assert.equal(partsFor(5_000_000_000, 1 << 30, 16), 5);
  assert.equal(partsFor(100_000, 1000, 16), 16);
  assert.equal(partsFor(100_000, 1000, 1), 1);
});

test('the tokenize stage: a split for a big stale domain, counts for a small one, reused when current, a tokenized folder checked', async () => {
  const small = join(tmp.dir, 'small');
  const big = join(tmp.dir, 'big');
  mkdirSync(small);
  mkdirSync(big);
  writeCorpus(small, 'small', 60);
  writeCorpus(big, 'big', 400);
  const tokens = join(tmp.dir, 'tokens');
  const bigBytes = readFileSync(join(big, 'big.txt')).length;
  const env = { BTX_TOKENS: tokens, BTX_PART_BYTES: String(Math.ceil(bigBytes / 3)), BTX_MAX_PARTS: '8' };

  const first = await tokenizePod({ ...env, BTX_DATA: `small=${small},big=${big}` });
  assert.deepEqual(first.split, [{ domain: 'big', bytes: bigBytes, parts: 3 }]);
  assert.equal(existsSync(join(tokens, 'big')), false, 'a split writes nothing');
  const [s] = first.tokenized ?? [];
  assert.equal(s?.domain, 'small');
  assert.equal(s?.reused, false);
  assert.ok(s.tokens > s.heldOutTokens && s.heldOutTokens > 0 && s.documents === 60, JSON.stringify(s));
  const manifest = JSON.parse(readFileSync(join(tokens, 'small', 'manifest.json'), 'utf8')) as {
    tokens: number;
  };
  assert.equal(manifest.tokens, s.tokens);

  // Current shards: counted from the manifest and reused, even over the split threshold.
  const again = await tokenizePod({ ...env, BTX_DATA: `small=${small}`, BTX_PART_BYTES: '1' });
  assert.deepEqual(again.tokenized, [{ ...s, reused: true }]);
  assert.equal(again.split, undefined);

  // A data path that is a tokenized folder already: checked against the tokenizer, never rewritten.
  const direct = await tokenizePod({
    BTX_TOKENS: join(tmp.dir, 'other'),
    BTX_DATA: `pre=${join(tokens, 'small')}`,
  });
  assert.deepEqual(direct.tokenized, [{ ...s, domain: 'pre', reused: true }]);
});

test('with BTX_TOKENIZED a stage reads the shards the tokenize stage made and never tokenizes on its own', async () => {
  const src = join(tmp.dir, 'stage-src');
  mkdirSync(src);
  writeCorpus(src, 'plums');
  const tokens = join(tmp.dir, 'stage-tokens');
  await assert.rejects(
    loadDomain('plums', '/btx/data/plums', src, tokens, bytes, true),
    /domain plums: the tokenize stage's shards in .*stage-tokens\/plums are not current for \/btx\/data\/plums \(no manifest\)/,
  );
  assert.equal(existsSync(join(tokens, 'plums')), false, 'nothing was tokenized');
  // Made by the stage (here: without BTX_TOKENIZED, the same code path as the tokenize pod), then read.
  closeDomain(await loadDomain('plums', '/btx/data/plums', src, tokens, bytes));
  const d = await loadDomain('plums', '/btx/data/plums', src, tokens, bytes, true);
  assert.ok(d.train.length > 0 && d.heldOut.length > 0);
  closeDomain(d);
  // A source changed after the stage ran: an error naming the domain and the change, not a silent rebuild.
  utimesSync(join(src, 'plums.txt'), new Date(), new Date(Date.now() + 5000));
  writeFileSync(join(src, 'plums.txt'), readFileSync(join(src, 'plums.txt')));
  await assert.rejects(
    loadDomain('plums', '/btx/data/plums', src, tokens, bytes, true),
    /domain plums: .* \(source plums\.txt changed\)/,
  );
});
