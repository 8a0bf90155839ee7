// Where a run's token shards live on the volume: /btx/tokens/<key>/<domain>/ (docs/stage-contract.md).
// The key is a hash of what decides the shards' content (the seed the tokenizer comes from, and every
// domain's name and data path), so a second run on the same data and seed finds the shards the first
// one made and reuses them, while runs that differ never share (and never rebuild each other's) folders.
// Whether shards are current is still the trainer's decision, from their manifest. A run keeps the
// folder it started with (status.tokenize.tokens): a later round that adds a domain tokenizes it into
// the same folder, where the other domains' shards already are.
import { createHash } from 'node:crypto';
import { VOLUME_MOUNT_PATH } from '../api/stageContract.js';
import type { BTXRun, BTXRunSpec } from '../api/types.js';

export function tokensFolder(spec: BTXRunSpec): string {
  const identity = JSON.stringify({
    tokenizer: spec.seed.checkpoint ?? 'byte tokenizer (seed trained from scratch)',
    seedData: spec.seed.train?.data ?? null,
    domains: spec.domains.map((d) => [d.name, d.data]).sort(),
  });
  return `${VOLUME_MOUNT_PATH}/tokens/${createHash('sha256').update(identity).digest('hex').slice(0, 16)}`;
}

/** The run's shards folder: the one its tokenize stage recorded, else the one its spec names. */
export function runTokensFolder(run: BTXRun, spec: BTXRunSpec): string {
  return run.status?.tokenize?.tokens ?? tokensFolder(spec);
}
