// The tokenizer of a checkpoint, for sampling: the checkpoint's own tokenizer.json (any Hugging Face
// tokenizer, through src/trainer/tokenizer.ts), or the byte tokenizer for a byte-level checkpoint
// written before checkpoints carried their tokenizer (vocab_size 259, no tokenizer files). A
// tokenizer with more ids than vocab_size is refused, naming the folder and both numbers.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { LanguageModel, TextCodec } from '../trainer/generate.js';
import { BYTE_VOCAB_SIZE } from '../trainer/hfConfig.js';
import { byteTokenizer, loadCheckpointTokenizer, TOKENIZER_FILE } from '../trainer/tokenizer.js';

export async function checkpointTokenizer(model: LanguageModel): Promise<TextCodec> {
  if (!existsSync(join(model.dir, TOKENIZER_FILE)) && model.dims.vocab === BYTE_VOCAB_SIZE)
    return byteTokenizer();
  return loadCheckpointTokenizer(model.dir, model.dims.vocab);
}
