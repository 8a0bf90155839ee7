import { readFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { evalTerminationMessage, runEval } from '../../src/trainer/evaluate.js';
import type { EvalReport } from '../../src/trainer/evaluate.js';
import type { ModelConfig } from '../../src/trainer/hfConfig.js';
import {
  backend,
  saveRandomCheckpoint,
  tempDir,
  tinyLlama,
  tinyMixtral,
  writeCorpus,
} from './trainerFixtures.js';

const tmp = tempDir('eval');
before(backend);
after(tmp.cleanup);

function checkpoint(name: string, config: ModelConfig): Promise<string> {
  return saveRandomCheckpoint(join(tmp.dir, name), config, { randomSeed: 2, stage: 'test' });
}

test('eval: scores every model on every domain and reports MoE routing per layer and averaged', async () => {
  const moeConfig = { ...tinyMixtral(3), btx_experts: ['a', 'b', 'generalist'] };
  const report = await runEval({
    checkpoints: [
      { name: 'dense', dir: await checkpoint('dense', tinyLlama()) },
      { name: 'btx', dir: await checkpoint('moe', moeConfig) },
    ],
    data: [
      { name: 'a', path: writeCorpus(tmp.dir, 'a') },
      { name: 'b', path: writeCorpus(tmp.dir, 'b') },
    ],
    batches: 1,
    batchSize: 2,
    tokens: join(tmp.dir, 'tokens'),
  });
  assert.equal(report.seqLen, 16);
  assert.equal(report.results.length, 4);
  for (const r of report.results) {
    assert.ok(r.loss > 4 && r.loss < 7, `untrained loss ${r.loss} should be near ln(259)`);
    assert.ok(Math.abs(r.perplexity - Math.exp(r.loss)) < 1e-6 * r.perplexity);
    // Bits per byte: byte tokens plus one EOS per document, over the held-out text's UTF-8 bytes.
    const m = JSON.parse(readFileSync(join(tmp.dir, 'tokens', r.domain, 'manifest.json'), 'utf8')) as {
      heldOutTokens: number;
      heldOutBytes: number;
      heldOutDocuments: number;
    };
    assert.equal(m.heldOutTokens, m.heldOutBytes + m.heldOutDocuments);
    const bpb = (r.loss / Math.LN2) * (m.heldOutTokens / m.heldOutBytes);
    assert.ok(Math.abs(r.bitsPerByte! - bpb) < 1e-9 && r.bitsPerByte! > r.loss / Math.LN2);
  }
  const routing = report.routing.filter((r) => r.model === 'btx');
  assert.equal(routing.length, 2 * (2 + 1)); // 2 domains x (2 layers + mean)
  assert.ok(!report.routing.some((r) => r.model === 'dense'));
  for (const r of routing) {
    assert.deepEqual(r.experts, ['a', 'b', 'generalist']);
    assert.ok(Math.abs(r.shares.reduce((x, y) => x + y, 0) - 1) < 1e-5);
  }
});

test('eval: keeps the eval termination message under 4096 bytes, trimming routing before results', () => {
  const domains = Array.from({ length: 40 }, (_, i) => `domain-${i}`);
  const report: EvalReport = {
    seqLen: 64,
    tokensPerDomain: 1,
    results: domains.map((domain) => ({ model: 'btx', domain, loss: 1.234567, perplexity: 3.4567891 })),
    means: [],
    routing: domains.map((domain) => ({
      model: 'btx',
      domain,
      layer: -1,
      experts: domains,
      shares: domains.map(() => 1 / 40),
    })),
  };
  const m = evalTerminationMessage(report, '/btx/runs/ns/r/eval/results.json');
  assert.ok(Buffer.byteLength(JSON.stringify(m)) < 4096);
  assert.equal(m.results?.length, 40);
  assert.equal(m.results?.[0]?.loss, 1.2346);
});
