// Cross-check against Hugging Face transformers: builds tiny random Llama experts with the trainer's
// code (llamaConfigFromSpec, parameterShapes, saveCheckpoint), mixes them with the real `btx mix` CLI,
// computes our TensorFlow.js logits for fixed token ids on every checkpoint (loaded back from disk)
// and writes them next to the checkpoints; then scripts/hf-crosscheck.py loads the same folders with
// transformers' LlamaForCausalLM / MixtralForCausalLM and compares. See docs/trainer.md,
// "Cross-check with Hugging Face transformers".
//
//   node --import tsx scripts/hf-crosscheck.ts [--out DIR] [--python PYTHON] [--no-python]
//
// PYTHON (default $HF_PYTHON, else python3) needs torch, transformers >= 4.36 and safetensors; the
// repository itself has no Python dependencies. Exit status: the Python script's (0 = all within
// tolerance), or 0 after writing the files with --no-python.
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { initBackend } from '../src/trainer/backend.js';
import { loadCheckpoint, saveCheckpoint, type NamedTensor } from '../src/trainer/checkpoint.js';
import { llamaConfigFromSpec, type LlamaConfig } from '../src/trainer/hfConfig.js';
import {
  crossEntropy,
  disposeParams,
  forward,
  modelDims,
  paramsFromTensors,
  paramsToTensors,
  parameterShapes,
} from '../src/trainer/model.js';
import { loadBalancingLoss } from '../src/trainer/moe.js';
import { writeSafetensors } from '../src/trainer/safetensors.js';
import * as tf from '../src/trainer/tfjs.js';
import { loadTokenizer, type TextTokenizer } from '../src/trainer/tokenizer.js';
import { llama3TokenizerDir } from './llama3TokenizerDir.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Token ids [BATCH, SEQ], fixed. */
const DEFAULT_BATCH = 2;
const DEFAULT_SEQ = 16;
const BATCH = DEFAULT_BATCH;
const SEQ = DEFAULT_SEQ;
/** The Llama 3 case's input: text through our tokenizer; the Python side checks AutoTokenizer agrees. */
const LLAMA3_TEXT =
  'Hello world! Café crème, 日本語 and 🤗 emoji.\n    def f(x): return x * 2  <|end_of_text|>';

/** mulberry32 uniforms + Box-Muller normals: deterministic and backend-independent. */
function normals(n: number, seed: number): Float32Array {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - uniform()));
    const u = 2 * Math.PI * uniform();
    out[i] = r * Math.cos(u);
    if (i + 1 < n) out[i + 1] = r * Math.sin(u);
  }
  return out;
}

/**
 * Random weights for every parameter the trainer's model has. Not HF's N(0, 0.02) init: with it the
 * logits are ~1e-3 and every difference looks small. Matrices are N(0, 1/in) (embeddings N(0, 1)),
 * so activations and logits are O(1); norm weights are 1 + N(0, 0.2^2), so a misplaced RMSNorm
 * weight or epsilon shows.
 */
function randomTensors(config: LlamaConfig, seed: number): NamedTensor[] {
  const d = modelDims(config);
  return parameterShapes(d).map(([name, shape], i) => {
    const data = normals(
      shape.reduce((a, b) => a * b, 1),
      (seed * 1000003 + i * 7919) >>> 0,
    );
    if (shape.length === 1) for (let j = 0; j < data.length; j++) data[j] = 1 + 0.2 * data[j]!;
    else {
      const std = name === 'model.embed_tokens.weight' ? 1 : 1 / Math.sqrt(shape[1]!);
      for (let j = 0; j < data.length; j++) data[j] = data[j]! * std;
    }
    return { name, shape, data };
  });
}

/** Through the trainer's own path: tensors -> tf variables -> paramsToTensors -> saveCheckpoint. */
async function saveExpert(
  dir: string,
  config: LlamaConfig,
  tensors: NamedTensor[],
  tokenizer?: TextTokenizer,
): Promise<void> {
  const params = paramsFromTensors(modelDims(config), new Map(tensors.map((t) => [t.name, t])));
  await saveCheckpoint(
    dir,
    await paramsToTensors(params),
    config,
    {
      stage: 'expert',
      step: 0,
      totalSteps: 0,
      loss: null,
      dataPosition: 0,
      randomSeed: 0,
      time: new Date().toISOString(),
    },
    tokenizer ? { files: tokenizer.files } : {},
  );
  disposeParams(params);
}

function fixedIds(vocab: number): Int32Array {
  const ids = new Int32Array(BATCH * SEQ);
  let s = 12345;
  for (let i = 0; i < ids.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    ids[i] = (s >>> 8) % vocab;
  }
  return ids;
}

interface CaseResult {
  name: string;
  dir: string;
  architecture: string;
  logitsKey: string;
  lmLoss: number;
  auxLoss: number | null;
  /** Per MoE layer, the tensor holding our [N, E] 0/1 selection mask. */
  maskKeys: string[];
  /** The tensor of this case's input ids (default input_ids, [BATCH, SEQ]). */
  inputKey?: string;
  /** The text those ids are our tokenizer's encoding of (checked against AutoTokenizer). */
  text?: string;
}

/** Load a checkpoint folder back with the trainer's loader and run our forward pass on `ids`. */
async function ourLogits(
  name: string,
  dir: string,
  ids: Int32Array,
  out: NamedTensor[],
  [BATCH, SEQ]: [number, number] = [DEFAULT_BATCH, DEFAULT_SEQ],
): Promise<CaseResult> {
  const ckpt = await loadCheckpoint(dir);
  const d = modelDims(ckpt.config);
  const params = paramsFromTensors(d, ckpt.tensors);
  const input = tf.tensor2d(ids, [BATCH, SEQ], 'int32');
  const { logits, routing } = forward(params, d, input, { training: false });
  // HF's loss: logits[:, :-1] against ids[:, 1:], mean over all predicted tokens.
  const vocab = logits.shape[1];
  const lm = tf.tidy(() => {
    const l3 = tf.reshape(logits, [BATCH, SEQ, vocab]);
    const pred = tf.reshape(tf.slice(l3, [0, 0, 0], [BATCH, SEQ - 1, vocab]), [BATCH * (SEQ - 1), vocab]);
    const targets = tf.reshape(tf.slice(input, [0, 1], [BATCH, SEQ - 1]), [BATCH * (SEQ - 1)]);
    return crossEntropy(pred as tf.Tensor2D, targets as tf.Tensor1D);
  });
  const aux = routing.length > 0 ? loadBalancingLoss(routing) : null;
  const result: CaseResult = {
    name,
    dir,
    architecture: (ckpt.config.architectures as string[] | undefined)?.[0] ?? '',
    logitsKey: `${name}.logits`,
    lmLoss: (await lm.data())[0]!,
    auxLoss: aux ? (await aux.data())[0]! : null,
    maskKeys: [],
  };
  out.push({
    name: result.logitsKey,
    shape: [BATCH * SEQ, vocab],
    data: (await logits.data()) as Float32Array,
  });
  for (const [layer, r] of routing.entries()) {
    const key = `${name}.layer${layer}.mask`;
    out.push({ name: key, shape: [...r.mask.shape], data: (await r.mask.data()) as Float32Array });
    result.maskKeys.push(key);
  }
  disposeParams(params);
  tf.dispose([
    input,
    logits,
    lm,
    ...(aux ? [aux] : []),
    ...routing.flatMap((r) => [r.gates, r.probs, r.mask, r.share]),
  ]);
  return result;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { stdio: 'inherit', env });
    child.on('error', reject);
    child.on('close', (code) => resolvePromise(code ?? 1));
  });
}

async function btxMix(args: string[]): Promise<void> {
  const code = await run(process.execPath, [join(repoRoot, 'bin', 'btx.js'), 'mix', ...args], {
    ...process.env,
    BTX_LOG_LEVEL: process.env.BTX_LOG_LEVEL ?? 'warn',
  });
  if (code !== 0) throw new Error(`btx mix ${args.join(' ')} exited ${code}`);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      out: { type: 'string' },
      python: { type: 'string' },
      'no-python': { type: 'boolean' },
    },
  });
  // The pure-JS backend by default: float32 everywhere, no native library in the way.
  const backend = await initBackend(process.env.BTX_BACKEND ?? 'cpu');
  const keep = values.out !== undefined;
  const work = keep ? resolve(values.out!) : await mkdtemp(join(tmpdir(), 'btx-hf-crosscheck-'));
  if (keep) {
    // Replace an earlier run's output, never anything else.
    const entries = await readdir(work).catch((): string[] => []);
    if (entries.length > 0 && !entries.includes('manifest.json')) {
      throw new Error(`--out ${work} is not empty and holds no manifest.json of an earlier cross-check`);
    }
    await rm(work, { recursive: true, force: true });
  }

  // (1) grouped-query attention, untied head; (1b) plain multi-head attention, tied embeddings,
  // a different rope_theta and epsilon.
  const gqa = llamaConfigFromSpec({
    vocabSize: 259,
    dModel: 64,
    layers: 2,
    heads: 4,
    kvHeads: 2,
    ffnHidden: 96,
    seqLen: 64,
    ropeTheta: 10000,
    rmsNormEps: 1e-5,
  });
  const tied = llamaConfigFromSpec({
    vocabSize: 259,
    dModel: 48,
    layers: 2,
    heads: 3,
    ffnHidden: 80,
    seqLen: 64,
    ropeTheta: 500000,
    rmsNormEps: 1e-6,
    tieEmbeddings: true,
  });

  const experts = ['apples', 'bananas', 'cherries'].map((name) => join(work, 'experts', name));
  const seedDir = join(work, 'experts', 'seed');
  for (const [i, dir] of experts.entries()) await saveExpert(dir, gqa, randomTensors(gqa, 11 + i));
  await saveExpert(seedDir, gqa, randomTensors(gqa, 7));
  await saveExpert(join(work, 'dense-tied'), tied, randomTensors(tied, 5));
  // (3): the seed four times (separate folders, as separate training runs would write them).
  const copies = [0, 1, 2, 3].map((i) => join(work, 'identical', `copy${i}`));
  const seedTensors = randomTensors(gqa, 7);
  for (const dir of copies) await saveExpert(dir, gqa, seedTensors);

  // (2): three domain experts + the seed as generalist (the last expert), top-2 of 4.
  const mixed = join(work, 'mixed');
  await btxMix([
    ...experts.flatMap((e) => ['--expert', e]),
    '--generalist',
    seedDir,
    '--out',
    mixed,
    '--router',
    'topK',
    '--k',
    '2',
    '--seed',
    '3',
  ]);
  const mixedIdentical = join(work, 'mixed-identical');
  await btxMix([...copies.flatMap((e) => ['--expert', e]), '--out', mixedIdentical, '--k', '2']);

  // (4): experts that carry Llama 3's tokenizer (128,256 ids): the mix copies it, AutoTokenizer must load
  // it from the mixed folder and give the ids our tokenizer gives, and MixtralForCausalLM our logits.
  const llama3 = await loadTokenizer(llama3TokenizerDir());
  const small = llamaConfigFromSpec(
    {
      vocabSize: llama3.vocabSize,
      dModel: 16,
      layers: 2,
      heads: 2,
      kvHeads: 1,
      ffnHidden: 32,
      seqLen: 64,
      ropeTheta: 500000,
      tieEmbeddings: true,
    },
    llama3,
  );
  const llamaExperts = ['x', 'y', 'z'].map((name) => join(work, 'llama3-experts', name));
  for (const [i, dir] of llamaExperts.entries())
    await saveExpert(dir, small, randomTensors(small, 31 + i), llama3);
  const mixedLlama3 = join(work, 'mixed-llama3');
  await btxMix([
    ...llamaExperts.flatMap((e) => ['--expert', e]),
    '--out',
    mixedLlama3,
    '--k',
    '2',
    '--seed',
    '5',
  ]);
  const llamaIds = Int32Array.from(await llama3.encode(LLAMA3_TEXT));

  const ids = fixedIds(gqa.vocab_size);
  const tensors: NamedTensor[] = [{ name: 'input_ids', shape: [BATCH, SEQ], data: Float32Array.from(ids) }];
  const cases = [
    await ourLogits('dense', seedDir, ids, tensors),
    await ourLogits('dense-tied', join(work, 'dense-tied'), ids, tensors),
    await ourLogits('mixed', mixed, ids, tensors),
    await ourLogits('mixed-identical', mixedIdentical, ids, tensors),
    {
      ...(await ourLogits('mixed-llama3', mixedLlama3, llamaIds, tensors, [1, llamaIds.length])),
      inputKey: 'llama3_input_ids',
      text: LLAMA3_TEXT,
    },
  ];
  tensors.push({ name: 'llama3_input_ids', shape: [1, llamaIds.length], data: Float32Array.from(llamaIds) });
  await writeSafetensors(join(work, 'tfjs-logits.safetensors'), tensors, 'F32');
  // Folders relative to the manifest, so the workdir can be copied to another machine (the GPU check).
  const relocatable = cases.map((c) => ({ ...c, dir: relative(work, c.dir) }));
  const manifest = {
    backend,
    tfjsVersion: tf.version.tfjs,
    batch: BATCH,
    seqLen: SEQ,
    logitsFile: 'tfjs-logits.safetensors',
    cases: relocatable,
    // Compared inside transformers: the mix of identical experts against the dense model.
    sameFunction: [{ a: 'mixed-identical', b: 'dense' }],
  };
  await writeFile(join(work, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  process.stdout.write(`tfjs (${backend}) logits and checkpoints in ${work}\n`);
  if (values['no-python']) return 0;

  const python = values.python ?? process.env.HF_PYTHON ?? 'python3';
  const code = await run(python, [join(repoRoot, 'scripts', 'hf-crosscheck.py'), work]);
  if (!keep && code === 0) await rm(work, { recursive: true, force: true });
  return code;
}

process.exitCode = await main();
