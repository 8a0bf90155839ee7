// Tokenizers as data: a checkpoint folder carries its tokenizer as Hugging Face files
// (`tokenizer.json` + `tokenizer_config.json`), loaded with HF's own Rust `tokenizers` library
// (Node bindings, prebuilt binary inside the npm package). The built-in byte tokenizer (bytes
// 0..255, then BOS, EOS, PAD) is written as a real `tokenizer.json` into every checkpoint the trainer
// creates, so every checkpoint says how its ids map to text and `AutoTokenizer` loads it.
//
// `encode` is async because the bindings only offer async encoding; `decode` is synchronous
// (token strings through the tokenizer's decoder), which is what a sampling loop wants.
import { createHash } from 'node:crypto';
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Tokenizer } from 'tokenizers';
import { InputError } from './inputError.js';
import { collectGarbage } from './nativeMemory.js';

export interface TextTokenizer {
  /** Including added/special tokens. */
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosId: number | null;
  /** Identity: sha256 (hex) of the tokenizer.json bytes. */
  readonly sha256: string;
  /** The files that describe it, by name (tokenizer.json, tokenizer_config.json, ...), for checkpoints. */
  readonly files: ReadonlyMap<string, Uint8Array>;
  /** Ids of `text`; no special tokens are added (special-token text in `text` maps to its id). */
  encode(text: string): Promise<number[]>;
  /** Many texts at once (one call into the library; it may use several threads). */
  encodeBatch(texts: readonly string[]): Promise<number[][]>;
  /** Text of `ids`; special tokens are dropped. */
  decode(ids: readonly number[]): string;
}

export const TOKENIZER_FILE = 'tokenizer.json';
export const TOKENIZER_CONFIG_FILE = 'tokenizer_config.json';
/** The tokenizer files a checkpoint may carry; copied along with the model. */
export const TOKENIZER_FILES = [TOKENIZER_FILE, TOKENIZER_CONFIG_FILE, 'special_tokens_map.json'] as const;

/** Byte tokenizer ids: bytes are 0..255, then these (BYTE_VOCAB_SIZE in hfConfig.ts is 259). */
export const BOS = 256;
export const EOS = 257;
export const PAD = 258;
const BYTE_SPECIALS = [
  { id: BOS, content: '<|bos|>' },
  { id: EOS, content: '<|eos|>' },
  { id: PAD, content: '<|pad|>' },
] as const;

export function sha256Hex(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** GPT-2's byte -> printable character table (HF's ByteLevel pre-tokenizer and decoder use it). */
function bytesToUnicode(): string[] {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const table = new Array<string>(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    table[b] = String.fromCodePoint(printable.includes(b) ? b : 256 + extra++);
  }
  return table;
}

function addedToken(id: number, content: string) {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}

/**
 * The byte tokenizer as HF files: a BPE model without merges whose vocabulary is the 256
 * ByteLevel characters (id = byte value), ByteLevel pre-tokenizer without regex split (every byte
 * is its own token) and ByteLevel decoder, plus BOS/EOS/PAD as special added tokens. No
 * post-processor: encoding adds nothing, exactly like `byteTokenizer().encode`.
 */
export function byteTokenizerFiles(): Map<string, Uint8Array> {
  const chars = bytesToUnicode();
  const vocab: Record<string, number> = {};
  chars.forEach((c, b) => (vocab[c] = b));
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false };
  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: BYTE_SPECIALS.map((s) => addedToken(s.id, s.content)),
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: null,
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: [],
    },
  };
  const config = {
    tokenizer_class: 'PreTrainedTokenizerFast',
    bos_token: '<|bos|>',
    eos_token: '<|eos|>',
    pad_token: '<|pad|>',
    add_bos_token: false,
    add_eos_token: false,
    clean_up_tokenization_spaces: false,
    model_max_length: 1_000_000,
    added_tokens_decoder: Object.fromEntries(
      BYTE_SPECIALS.map((s) => {
        const { id, ...rest } = addedToken(s.id, s.content);
        return [String(id), rest];
      }),
    ),
  };
  const enc = new TextEncoder();
  return new Map([
    [TOKENIZER_FILE, enc.encode(`${JSON.stringify(tokenizerJson, null, 2)}\n`)],
    [TOKENIZER_CONFIG_FILE, enc.encode(`${JSON.stringify(config, null, 2)}\n`)],
  ]);
}

const SPECIAL_TEXT = /<\|(bos|eos|pad)\|>/g;
const SPECIAL_ID: Record<string, number> = { bos: BOS, eos: EOS, pad: PAD };

/** UTF-8 bytes of `text`, with the three special-token texts mapped to their ids (as HF does). */
export function encodeBytes(text: string): number[] {
  const encoder = new TextEncoder();
  if (!text.includes('<|')) return Array.from(encoder.encode(text));
  const out: number[] = [];
  let at = 0;
  for (const m of text.matchAll(SPECIAL_TEXT)) {
    for (const b of encoder.encode(text.slice(at, m.index))) out.push(b);
    out.push(SPECIAL_ID[m[1]!]!);
    at = m.index + m[0].length;
  }
  for (const b of encoder.encode(text.slice(at))) out.push(b);
  return out;
}

let byteSingleton: TextTokenizer | undefined;

/** The built-in byte tokenizer (pure JS; the same ids as its tokenizer.json through HF). */
export function byteTokenizer(): TextTokenizer {
  if (byteSingleton) return byteSingleton;
  const files = byteTokenizerFiles();
  const decoder = new TextDecoder();
  byteSingleton = {
    vocabSize: PAD + 1,
    bosId: BOS,
    eosId: EOS,
    sha256: sha256Hex(files.get(TOKENIZER_FILE)!),
    files,
    encode: (text) => Promise.resolve(encodeBytes(text)),
    encodeBatch: (texts) => Promise.resolve(texts.map(encodeBytes)),
    decode: (ids) => decoder.decode(Uint8Array.from(ids.filter((id) => id < 256))),
  };
  return byteSingleton;
}

/** A tokenizer refused for a checkpoint folder; the message names the folder and the numbers. */
export class TokenizerError extends InputError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TokenizerError';
  }
}

function tokenText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && typeof (v as { content?: unknown }).content === 'string') {
    return (v as { content: string }).content;
  }
  return undefined;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** A tokenizer from HF files (tokenizer.json bytes + the parsed tokenizer_config.json). */
function hfTokenizer(
  dir: string,
  files: Map<string, Uint8Array>,
  config: Record<string, unknown>,
): TextTokenizer {
  const json = files.get(TOKENIZER_FILE)!;
  const text = new TextDecoder().decode(json);
  let tok: Tokenizer;
  let added: { id: number; content: string; special?: boolean }[];
  try {
    // From the file, not from `text`: handing Rust the 9 MB string costs ~20 MiB more peak RSS.
    tok = Tokenizer.fromFile(join(dir, TOKENIZER_FILE));
    added = ((JSON.parse(text) as { added_tokens?: unknown }).added_tokens ?? []) as typeof added;
  } catch (err) {
    throw new TokenizerError(`tokenizer ${join(dir, TOKENIZER_FILE)}: cannot be loaded (${String(err)})`, {
      cause: err,
    });
  }
  const special = new Set(added.filter((a) => a.special).map((a) => a.id));
  const idOf = (key: string): number | null => {
    const t = tokenText(config[key]);
    if (t === undefined) return null;
    const id = tok.tokenToId(t);
    if (id === null) {
      throw new TokenizerError(
        `tokenizer ${join(dir, TOKENIZER_CONFIG_FILE)}: ${key} ${JSON.stringify(t)} is not in ${TOKENIZER_FILE}`,
      );
    }
    return id;
  };
  const decoder = tok.getDecoder();
  const options = { addSpecialTokens: false };
  // Only the ids leave this function, so the Encoding wrappers are garbage when it returns.
  const batchIds = async (texts: readonly string[]) =>
    (await tok.encodeBatch([...texts], options)).map((e) => e.getIds());
  return {
    vocabSize: tok.getVocabSize(true),
    bosId: idOf('bos_token'),
    eosId: idOf('eos_token'),
    sha256: sha256Hex(json),
    files,
    encode: async (t) => (await tok.encode(t, null, options)).getIds(),
    encodeBatch: async (texts) => {
      if (texts.length === 0) return [];
      const ids = await batchIds(texts);
      collectGarbage(); // free the batch's Rust-side encodings now (nativeMemory.ts)
      return ids;
    },
    decode: (ids) => {
      const tokens: string[] = [];
      for (const id of ids) {
        if (special.has(id)) continue;
        const t = tok.idToToken(id);
        if (t !== null) tokens.push(t);
      }
      return decoder ? decoder.decode(tokens) : tokens.join('');
    },
  };
}

/**
 * The tokenizer of a checkpoint folder (host path). The byte tokenizer's own files load as the
 * pure-JS byte tokenizer (same ids, no native calls). Throws TokenizerError naming the folder.
 */
export async function loadTokenizer(checkpointDir: string): Promise<TextTokenizer> {
  const files = new Map<string, Uint8Array>();
  for (const name of TOKENIZER_FILES) {
    const path = join(checkpointDir, name);
    if (await exists(path)) files.set(name, new Uint8Array(await readFile(path)));
  }
  if (!files.has(TOKENIZER_FILE)) {
    throw new TokenizerError(
      `checkpoint ${checkpointDir} has no ${TOKENIZER_FILE}: the trainer needs the checkpoint's tokenizer ` +
        `(${TOKENIZER_FILE} and ${TOKENIZER_CONFIG_FILE}, as Hugging Face saves them) to know what its token ids mean`,
    );
  }
  const sha = sha256Hex(files.get(TOKENIZER_FILE)!);
  const bytes = byteTokenizer();
  if (sha === bytes.sha256) return bytes;
  let config: Record<string, unknown> = {};
  const rawConfig = files.get(TOKENIZER_CONFIG_FILE);
  if (rawConfig) {
    try {
      config = JSON.parse(new TextDecoder().decode(rawConfig)) as Record<string, unknown>;
    } catch (err) {
      throw new TokenizerError(
        `tokenizer ${join(checkpointDir, TOKENIZER_CONFIG_FILE)}: not valid JSON (${(err as Error).message})`,
        { cause: err },
      );
    }
  }
  return hfTokenizer(checkpointDir, files, config);
}

/** Refuse a model whose embedding has fewer rows than the tokenizer has ids. */
export function checkTokenizerFits(tokenizer: TextTokenizer, vocabSize: number, dir: string): void {
  if (tokenizer.vocabSize > vocabSize) {
    throw new TokenizerError(
      `checkpoint ${dir}: its tokenizer has ${tokenizer.vocabSize} tokens but config.json vocab_size is ` +
        `${vocabSize}; ids ${vocabSize}..${tokenizer.vocabSize - 1} would index past the embedding`,
    );
  }
}

/** The tokenizer of a model checkpoint we are about to train or score: loaded and checked against vocab_size. */
export async function loadCheckpointTokenizer(dir: string, vocabSize: number): Promise<TextTokenizer> {
  const tokenizer = await loadTokenizer(dir);
  checkTokenizerFits(tokenizer, vocabSize, dir);
  return tokenizer;
}
