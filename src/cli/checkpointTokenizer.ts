// The tokenizer of a checkpoint, for sampling. Until the trainer reads Hugging Face tokenizer.json
// files (issue 8, tokenizer.ts), only byte-level checkpoints (no tokenizer files, vocab_size 259,
// everything this trainer writes today) can be decoded; anything else is refused rather than
// decoded as bytes, which would print nonsense.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { LanguageModel, TextCodec } from '../trainer/generate.js';
import { BYTE_VOCAB_SIZE } from '../trainer/hfConfig.js';
import { BOS, EOS, decode, encode } from '../trainer/tokenizer.js';

export async function checkpointTokenizer(model: LanguageModel): Promise<TextCodec> {
  const file = join(model.dir, 'tokenizer.json');
  if (existsSync(file)) throw new Error(`${file}: Hugging Face tokenizers cannot be read yet`);
  if (model.dims.vocab !== BYTE_VOCAB_SIZE) {
    throw new Error(
      `${model.dir} has no tokenizer.json and its vocab_size ${model.dims.vocab} is not the byte tokenizer's ${BYTE_VOCAB_SIZE}`,
    );
  }
  return {
    bosId: BOS,
    eosId: EOS,
    encode: (text) => Promise.resolve(Array.from(encode(text))),
    decode: (ids) => decode(ids),
  };
}
