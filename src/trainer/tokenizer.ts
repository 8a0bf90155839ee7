// Byte-level tokenizer: token = UTF-8 byte (0..255), plus three specials. Any text, any language,
// no vocabulary file; BYTE_VOCAB_SIZE (hfConfig.ts) is 256 + 3.
export const BOS = 256;
export const EOS = 257;
export const PAD = 258;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Bytes of `text`, without specials. */
export function encode(text: string): Uint16Array {
  return Uint16Array.from(encoder.encode(text));
}

/** Text of `tokens`; specials are dropped, invalid UTF-8 becomes U+FFFD. */
export function decode(tokens: ArrayLike<number>): string {
  const bytes: number[] = [];
  for (let i = 0; i < tokens.length; i++) if (tokens[i]! < 256) bytes.push(tokens[i]!);
  return decoder.decode(Uint8Array.from(bytes));
}

/** Byte tokens go up to PAD; a model with a smaller vocabulary would index past its embedding. */
export function checkByteVocab(vocabSize: number, what: string): void {
  if (vocabSize <= PAD) {
    throw new Error(`${what}: vocab_size ${vocabSize} is smaller than the byte tokenizer's ${PAD + 1}`);
  }
}
