// `btx eval`: held-out loss and perplexity of every checkpoint on every domain, all scored on the
// same held-out windows, and for MoE models the share of each domain's tokens routed to each
// expert, per layer and averaged over layers. Optionally the Branch-Train-Merge ensemble of a set of
// expert checkpoints (btm.ts) on the same windows, and every model's mean over the domains.
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { meanResults } from '../api/meanResults.js';
import type { EvalResult, MeanResult, RoutingShare, TerminationMessage } from '../api/stageContract.js';
import { TERMINATION_MESSAGE_MAX_BYTES } from '../api/stageContract.js';
import { hostPath } from '../util/containerPaths.js';
import { log } from '../util/log.js';
import * as tf from './tfjs.js';
import { loadModelCheckpoint } from './checkpointInput.js';
import { heldOutWindows } from './data.js';
import { closeDomain, loadDomain } from './tokenize.js';
import type { Domain } from './data.js';
import type { MixtralConfig } from './hfConfig.js';
import { batchLoss, disposeParams, modelDims, paramsFromTensors } from './model.js';
import { loadCheckpointTokenizer } from './tokenizer.js';
import type { TextTokenizer } from './tokenizer.js';
import { DEFAULT_MAX_SEQ_LEN } from './trainStage.js';
import { btmMeanLoss, tokenLosses } from './btm.js';

/** The model name BTM's results carry. */
export const BTM_MODEL = 'btm';

export interface EvalSettings {
  /** Container paths. */
  checkpoints: { name: string; dir: string }[];
  data: { name: string; path: string }[];
  batches: number;
  batchSize: number;
  seqLen?: number;
  /**
   * Token shards `<tokens>/<domain>/` (container path) for the first model's tokenizer; models with
   * another tokenizer get `<tokens>/by-tokenizer/<sha256 prefix>/<domain>/`.
   */
  tokens: string;
  /** Also score the Branch-Train-Merge ensemble of these (dense, same-tokenizer) experts as `btm`. */
  btm?: { experts: { name: string; dir: string }[]; prior?: number[] };
  /** The tokenize stage made `<tokens>/<domain>/` for the first model's tokenizer: never tokenize those. */
  tokenized?: boolean;
}

export interface LayerRouting {
  model: string;
  domain: string;
  /** Layer index, or -1 for the mean over layers. */
  layer: number;
  experts: string[];
  shares: number[];
}

export interface EvalReport {
  seqLen: number;
  tokensPerDomain: number;
  results: EvalResult[];
  /** Each model's results averaged over the domains, each domain weighted equally. */
  means: MeanResult[];
  routing: LayerRouting[];
}

/** Score one model on one domain's held-out windows. */
async function scoreDomain(
  params: ReturnType<typeof paramsFromTensors>,
  dims: ReturnType<typeof modelDims>,
  windows: Int32Array,
  s: { batches: number; batchSize: number; seqLen: number },
): Promise<{ loss: number; shares: number[][] }> {
  let lossSum = 0;
  const shareSums: number[][] = [];
  for (let b = 0; b < s.batches; b++) {
    const rows = windows.subarray(b * s.batchSize * (s.seqLen + 1), (b + 1) * s.batchSize * (s.seqLen + 1));
    const { loss, shares } = tf.tidy(() => {
      const ids = tf.tensor2d(rows, [s.batchSize, s.seqLen + 1], 'int32');
      const parts = batchLoss(params, dims, ids, { training: false });
      return { loss: parts.lm, shares: parts.routing.map((r) => r.share) };
    });
    lossSum += (await loss.data())[0]!;
    for (const [layer, t] of shares.entries()) {
      const v = await t.data();
      shareSums[layer] ??= new Array<number>(v.length).fill(0);
      v.forEach((x, e) => (shareSums[layer]![e] += x / s.batches));
    }
    tf.dispose([loss, ...shares]);
  }
  return { loss: lossSum / s.batches, shares: shareSums };
}

export async function runEval(s: EvalSettings): Promise<EvalReport> {
  if (s.checkpoints.length === 0) throw new Error('eval needs at least one --checkpoint NAME=DIR');
  if (s.data.length === 0) throw new Error('eval needs at least one --data DOMAIN=PATH');
  const load = async (c: { name: string; dir: string }) => {
    const ckpt = await loadModelCheckpoint(hostPath(c.dir));
    const tokenizer = await loadCheckpointTokenizer(ckpt.dir, modelDims(ckpt.config).vocab);
    return { name: c.name, ckpt, tokenizer };
  };
  const loaded = [];
  for (const c of s.checkpoints) loaded.push(await load(c));
  const btmMembers = [];
  for (const c of s.btm?.experts ?? []) btmMembers.push(await load(c));
  // One window length for every model, so every model sees the same tokens.
  const seqLen =
    s.seqLen ??
    Math.min(
      DEFAULT_MAX_SEQ_LEN,
      ...[...loaded, ...btmMembers].map((l) => Number(l.ckpt.config.max_position_embeddings)),
    );
  // Each tokenizer sees the same text; models sharing a tokenizer share the token windows.
  const byTokenizer = new Map<string, { domains: Domain[]; windows: Int32Array[] }>();
  const dataFor = async (tokenizer: TextTokenizer) => {
    let entry = byTokenizer.get(tokenizer.sha256);
    if (!entry) {
      const first = byTokenizer.size === 0;
      const root = first ? s.tokens : `${s.tokens}/by-tokenizer/${tokenizer.sha256.slice(0, 16)}`;
      const domains: Domain[] = [];
      for (const d of s.data)
        domains.push(
          await loadDomain(d.name, d.path, hostPath(d.path), hostPath(root), tokenizer, first && s.tokenized),
        );
      entry = { domains, windows: domains.map((d) => heldOutWindows(d, seqLen, s.batches * s.batchSize)) };
      byTokenizer.set(tokenizer.sha256, entry);
    }
    return entry;
  };
  const report: EvalReport = {
    seqLen,
    tokensPerDomain: s.batches * s.batchSize * seqLen,
    results: [],
    means: [],
    routing: [],
  };
  for (const { name, ckpt, tokenizer } of loaded) {
    const dims = modelDims(ckpt.config);
    const { domains, windows } = await dataFor(tokenizer);
    const params = paramsFromTensors(dims, ckpt.tensors);
    const expertNames = Array.from(
      { length: dims.experts },
      (_, e) => (ckpt.config as MixtralConfig).btx_experts?.[e] ?? `expert${e}`,
    );
    try {
      for (const [i, domain] of domains.entries()) {
        const { loss, shares } = await scoreDomain(params, dims, windows[i]!, { ...s, seqLen });
        const result = {
          model: name,
          domain: domain.name,
          loss,
          perplexity: Math.exp(loss),
          bitsPerByte: bitsPerByte(loss, domain),
        };
        report.results.push(result);
        log.info('eval result', result);
        if (shares.length > 0) {
          shares.forEach((layerShares, layer) =>
            report.routing.push({
              model: name,
              domain: domain.name,
              layer,
              experts: expertNames,
              shares: layerShares,
            }),
          );
          const mean = expertNames.map((_, e) => shares.reduce((a, l) => a + l[e]!, 0) / shares.length);
          report.routing.push({
            model: name,
            domain: domain.name,
            layer: -1,
            experts: expertNames,
            shares: mean,
          });
        }
      }
    } finally {
      disposeParams(params);
    }
  }
  if (btmMembers.length > 0) {
    report.results.push(...(await scoreBtm(btmMembers, s.btm?.prior, dataFor, { ...s, seqLen })));
  }
  report.means = meanResults(report.results);
  for (const { domains } of byTokenizer.values()) domains.forEach(closeDomain);
  return report;
}

type LoadedModel = {
  name: string;
  ckpt: Awaited<ReturnType<typeof loadModelCheckpoint>>;
  tokenizer: TextTokenizer;
};

/**
 * The BTM ensemble on every domain: each member scores every held-out token (one member in memory at
 * a time), then btmEnsemble weighs them per window by the posterior given the window so far.
 */
async function scoreBtm(
  members: LoadedModel[],
  prior: number[] | undefined,
  dataFor: (tokenizer: TextTokenizer) => Promise<{ domains: Domain[]; windows: Int32Array[] }>,
  s: { batches: number; batchSize: number; seqLen: number },
): Promise<EvalResult[]> {
  const sha = members[0]!.tokenizer.sha256;
  const other = members.find((m) => m.tokenizer.sha256 !== sha);
  if (other) throw new Error(`btm: expert ${other.name} has another tokenizer than ${members[0]!.name}`);
  if (prior && prior.length !== members.length)
    throw new Error(`btm: ${prior.length} prior weights for ${members.length} experts`);
  const { domains, windows } = await dataFor(members[0]!.tokenizer);
  // perDomain[i][j][w]: member j's per-token losses on window w of domain i.
  const perDomain: Float32Array[][][] = domains.map(() => []);
  for (const m of members) {
    const dims = modelDims(m.ckpt.config);
    if (dims.experts > 0) throw new Error(`btm: expert ${m.name} is an MoE; BTM ensembles dense experts`);
    const params = paramsFromTensors(dims, m.ckpt.tensors);
    try {
      for (const [i, all] of windows.entries()) {
        const rows: Float32Array[] = [];
        const width = s.batchSize * (s.seqLen + 1);
        for (let b = 0; b < s.batches; b++)
          rows.push(
            ...(await tokenLosses(params, dims, all.subarray(b * width, (b + 1) * width), s.batchSize)),
          );
        perDomain[i]!.push(rows);
      }
    } finally {
      disposeParams(params);
    }
  }
  return domains.map((domain, i) => {
    const byWindow = perDomain[i]![0]!.map((_, w) => perDomain[i]!.map((member) => member[w]!));
    const loss = btmMeanLoss(byWindow, prior);
    const result = {
      model: BTM_MODEL,
      domain: domain.name,
      loss,
      perplexity: Math.exp(loss),
      bitsPerByte: bitsPerByte(loss, domain),
    };
    log.info('eval result', result);
    return result;
  });
}

/**
 * Bits per byte: the mean loss (nats per predicted token) in bits, times the held-out stream's
 * tokens per UTF-8 byte of document text (separator tokens count as tokens, not bytes). It compares
 * models with different tokenizers, which loss per token cannot.
 */
export function bitsPerByte(loss: number, domain: Domain): number {
  const { heldOutTokens, heldOutBytes } = domain.manifest;
  return (loss / Math.LN2) * (heldOutTokens / Math.max(1, heldOutBytes));
}

/** Where results.json goes: `out` itself if it names a .json file, else `out/results.json`. */
export function resultsPath(out: string): string {
  return out.endsWith('.json') ? out : join(out, 'results.json');
}

export async function writeResults(out: string, report: EvalReport): Promise<string> {
  const file = resultsPath(out);
  const host = hostPath(file);
  await mkdir(dirname(host), { recursive: true });
  await writeFile(host, `${JSON.stringify(report, null, 2)}\n`);
  return file;
}

const round = (x: number) => Math.round(x * 1e4) / 1e4;

/**
 * The eval stage's termination message: results and the layer-averaged routing of the first MoE
 * model, rounded, and trimmed (routing first, then results) to stay under Kubernetes' 4096 bytes.
 */
export function evalTerminationMessage(report: EvalReport, resultsFile: string): TerminationMessage {
  const moeModel = report.routing.find((r) => r.layer === -1)?.model;
  const routing: RoutingShare[] = report.routing
    .filter((r) => r.layer === -1 && r.model === moeModel)
    .flatMap((r) => r.experts.map((expert, e) => ({ domain: r.domain, expert, share: round(r.shares[e]!) })));
  const results = report.results.map((r) => ({
    ...r,
    loss: round(r.loss),
    perplexity: round(r.perplexity),
    ...(r.bitsPerByte !== undefined ? { bitsPerByte: round(r.bitsPerByte) } : {}),
  }));
  const bytes = (x: unknown) => Buffer.byteLength(JSON.stringify(x));
  const message: TerminationMessage = { checkpoint: resultsFile, results, routing: [] };
  while (bytes(message) >= TERMINATION_MESSAGE_MAX_BYTES && results.length > 0) results.pop();
  // Add routing entries while they fit (each costs its JSON plus a comma).
  let size = bytes(message);
  for (const r of routing) {
    const add = bytes(r) + 1;
    if (size + add >= TERMINATION_MESSAGE_MAX_BYTES) break;
    message.routing!.push(r);
    size += add;
  }
  return message;
}
