// `btx mix`: dense expert checkpoints -> one Mixtral checkpoint (src/trainer/mix). Flags, or the
// stage contract's BTX_* environment when the operator runs it as the mix stage; flags win.
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { ENV, TERMINATION_MESSAGE_PATH, type TerminationMessage } from '../api/stageContract.js';
import type { RouterType } from '../trainer/hfConfig.js';
import { mixExperts, type MixOptions, type MixSummary } from '../trainer/mix/mixExperts.js';
import type { RouterInit } from '../trainer/mix/routerInit.js';
import type { FloatDType } from '../trainer/safetensors.js';
import { containerPath, hostPath } from '../util/containerPaths.js';

/** transformers' default max_shard_size ("5GB"). */
const DEFAULT_SHARD_SIZE = 5_000_000_000;

const HELP = `usage: btx mix --expert DIR [--expert DIR]... [--generalist DIR] --out DIR [flags]

Mix dense Llama-architecture checkpoints into one Mixtral (MoE) checkpoint, streaming one tensor at a time:
each layer's feed-forward weights become that layer's experts (w1<-gate_proj, w3<-up_proj, w2<-down_proj),
every other tensor is the float32 mean over all experts, and each layer gets a new router.

flags (environment variable in brackets; flags win):
  --expert DIR          an expert checkpoint folder, or a training output folder (its newest complete step-N);
                        repeat, in expert order                                  [${ENV.experts}, comma-separated]
  --generalist DIR      the seed, added as the LAST expert (the paper's generalist)   [${ENV.generalist}]
  --out DIR             the output checkpoint folder (written to a temp folder, then renamed)  [${ENV.output}]
  --router TYPE         topK | switch | soft | sampleTop1 (default topK)          [${ENV.router}]
  --k N                 experts per token for topK (default 2)                    [${ENV.topK}]
  --dtype D             f32 | f16 | bf16 (default: the inputs' dtype)             [${ENV.dtype}]
  --shard-size BYTES    largest output shard, e.g. 5GB, 500MB, 1048576 (default 5GB)
  --router-init INIT    normal (default: std 0.02, seeded) | zeros (uniform)      [${ENV.routerInit}]
  --aux-loss-coef X     router_aux_loss_coef, the load-balancing loss weight (default 0.01)
                                                                                  [${ENV.loadBalancingCoef}]
  --seed N              random seed for the router init (default 0)               [${ENV.randomSeed}]
  --expert-name NAME    names for the experts in order (a last extra one names the generalist);
                        default: the folder name (the parent's for a step-N folder)
  --no-verify           skip checking input checkpoints' sha256s from trainer_state.json
  -h, --help            this help

As the mix stage (${ENV.stage}=mix) it writes {checkpoint, step: 0, loss: null} to ${TERMINATION_MESSAGE_PATH}.
`;

export class UsageError extends Error {}

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  B: 1,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  KIB: 1024,
  MIB: 1024 ** 2,
  GIB: 1024 ** 3,
};

export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(text.trim());
  const unit = m ? SIZE_UNITS[m[2]!.toUpperCase()] : undefined;
  if (!m || unit === undefined)
    throw new UsageError(`--shard-size ${JSON.stringify(text)} is not a size (e.g. 5GB, 1048576)`);
  const bytes = Math.floor(Number(m[1]) * unit);
  if (bytes <= 0) throw new UsageError(`--shard-size must be positive`);
  return bytes;
}

function oneOf<T extends string>(flag: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) {
    throw new UsageError(`${flag} ${JSON.stringify(value)} must be one of ${allowed.join(', ')}`);
  }
  return value as T;
}

function number(flag: string, value: string, integer: boolean): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n))) {
    throw new UsageError(`${flag} ${JSON.stringify(value)} must be ${integer ? 'an integer' : 'a number'}`);
  }
  return n;
}

const DTYPES: Record<string, FloatDType> = { f32: 'F32', f16: 'F16', bf16: 'BF16' };

/** Flags + environment -> mix options (paths as given: container paths). */
export function parseMixArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): MixOptions | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        expert: { type: 'string', multiple: true },
        generalist: { type: 'string' },
        out: { type: 'string' },
        router: { type: 'string' },
        k: { type: 'string' },
        dtype: { type: 'string' },
        'shard-size': { type: 'string' },
        'router-init': { type: 'string' },
        'aux-loss-coef': { type: 'string' },
        seed: { type: 'string' },
        'expert-name': { type: 'string', multiple: true },
        'no-verify': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) return 'help';
  const fromEnv = (name: string) => (env[name] !== undefined && env[name] !== '' ? env[name] : undefined);
  const expertDirs =
    values.expert ??
    fromEnv(ENV.experts)
      ?.split(',')
      .map((s) => s.trim())
      .filter(Boolean) ??
    [];
  if (expertDirs.length === 0) throw new UsageError(`give at least one --expert DIR (or ${ENV.experts})`);
  const out = values.out ?? fromEnv(ENV.output);
  if (!out) throw new UsageError(`give --out DIR (or ${ENV.output})`);
  const generalistDir = values.generalist ?? fromEnv(ENV.generalist);
  const names = values['expert-name'] ?? [];
  const maxNames = expertDirs.length + (generalistDir ? 1 : 0);
  if (names.length > maxNames) {
    throw new UsageError(`${names.length} --expert-name for ${maxNames} experts`);
  }
  const routerText = values.router ?? fromEnv(ENV.router);
  const kText = values.k ?? fromEnv(ENV.topK);
  const dtypeText = values.dtype ?? fromEnv(ENV.dtype);
  const initText = values['router-init'] ?? fromEnv(ENV.routerInit);
  const coefText = values['aux-loss-coef'] ?? fromEnv(ENV.loadBalancingCoef);
  const seedText = values.seed ?? fromEnv(ENV.randomSeed);
  const opts: MixOptions = {
    experts: expertDirs.map((dir, i) => (names[i] ? { dir, name: names[i] } : { dir })),
    out,
    shardSize: values['shard-size'] ? parseSize(values['shard-size']) : DEFAULT_SHARD_SIZE,
    verifyInputs: !values['no-verify'],
  };
  if (generalistDir) {
    const name = names[expertDirs.length];
    opts.generalist = name ? { dir: generalistDir, name } : { dir: generalistDir };
  }
  if (routerText)
    opts.router = oneOf<RouterType>('--router', routerText, ['topK', 'switch', 'soft', 'sampleTop1']);
  if (kText) opts.topK = number('--k', kText, true);
  if (dtypeText) {
    const d = DTYPES[dtypeText.toLowerCase()];
    if (!d) throw new UsageError(`--dtype ${JSON.stringify(dtypeText)} must be one of f32, f16, bf16`);
    opts.dtype = d;
  }
  if (initText) opts.routerInit = oneOf<RouterInit>('--router-init', initText, ['zeros', 'normal']);
  if (coefText) {
    opts.auxLossCoef = number('--aux-loss-coef', coefText, false);
    if (opts.auxLossCoef < 0) throw new UsageError('--aux-loss-coef must not be negative');
  }
  if (seedText) opts.randomSeed = number('--seed', seedText, true);
  return opts;
}

function formatSummary(s: MixSummary): string {
  const mb = (b: number) => (b / 1e6).toFixed(1);
  return [
    `mixed ${s.experts.length} experts into ${containerPath(s.out)}`,
    ...s.experts.map((e, i) => `  expert ${i}: ${e.name}  ${containerPath(e.dir)}`),
    `  router ${s.router} (${s.numExpertsPerToken} per token), dtype ${s.dtype}, ${s.shards} shard(s)`,
    `  tensors: ${s.tensorsStacked} stacked, ${s.tensorsAveraged} averaged, ${s.routersCreated} routers`,
    `  read ${mb(s.bytesRead)} MB, wrote ${mb(s.bytesWritten)} MB in ${s.seconds.toFixed(2)} s (${s.megabytesPerSecond.toFixed(0)} MB/s)`,
    '',
  ].join('\n');
}

export async function run(argv: string[]): Promise<number> {
  let parsed: MixOptions | 'help';
  try {
    parsed = parseMixArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`btx mix: ${err.message}\n\n${HELP}`);
    return 2;
  }
  if (parsed === 'help') {
    process.stdout.write(HELP);
    return 0;
  }
  // Library code takes host paths; messages for other pods keep container paths.
  const opts: MixOptions = {
    ...parsed,
    out: hostPath(parsed.out),
    experts: parsed.experts.map((e) => ({ ...e, dir: hostPath(e.dir) })),
  };
  if (parsed.generalist) opts.generalist = { ...parsed.generalist, dir: hostPath(parsed.generalist.dir) };
  const summary = await mixExperts(opts);
  process.stdout.write(formatSummary(summary));
  if (process.env[ENV.stage] === 'mix') {
    const message: TerminationMessage = { checkpoint: containerPath(summary.out), step: 0, loss: null };
    await writeFile(hostPath(TERMINATION_MESSAGE_PATH), JSON.stringify(message));
  }
  return 0;
}
