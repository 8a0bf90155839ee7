// The tokenizer of a checkpoint, for sampling. Until the trainer reads Hugging Face tokenizer.json
// files (issue 8, tokenizer.ts), only byte-level checkpoints can be decoded: vocab_size 259 and either
// no tokenizer files (what the trainer wrote so far) or a tokenizer.json that is the byte tokenizer
// (256 byte symbols + three special tokens). Anything else is refused, naming the folder, rather
// than decoded as bytes, which would print nonsense.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LanguageModel, TextCodec } from '../trainer/generate.js';
import { BYTE_VOCAB_SIZE } from '../trainer/hfConfig.js';
import { BOS, EOS, decode, encode } from '../trainer/tokenizer.js';

/** A tokenizer.json shaped like the byte tokenizer: 256 vocabulary entries, specials at 256..258. */
function isByteTokenizerJson(file: string): boolean {
  try {
    const json = JSON.parse(readFileSync(file, 'utf8')) as {
      model?: { vocab?: Record<string, number> };
      added_tokens?: { id: number }[];
    };
    const vocab = Object.values(json.model?.vocab ?? {});
    const added = (json.added_tokens ?? []).map((t) => t.id).sort((a, b) => a - b);
    return vocab.length === 256 && vocab.every((id) => id >= 0 && id < 256) && added.join() === '256,257,258';
  } catch {
    return false;
  }
}

export async function checkpointTokenizer(model: LanguageModel): Promise<TextCodec> {
  const file = join(model.dir, 'tokenizer.json');
  const hasFile = existsSync(file);
  if (hasFile && !isByteTokenizerJson(file)) {
    throw new Error(`${file}: only the byte-level tokenizer can be read yet`);
  }
  if (model.dims.vocab !== BYTE_VOCAB_SIZE) {
    throw new Error(
      `${model.dir}: vocab_size ${model.dims.vocab} is not the byte tokenizer's ${BYTE_VOCAB_SIZE}${hasFile ? '' : ' and it has no tokenizer.json'}`,
    );
  }
  return {
    bosId: BOS,
    eosId: EOS,
    encode: (text) => Promise.resolve(Array.from(encode(text))),
    decode: (ids) => decode(ids),
  };
}
