// Each model's held-out results averaged over the domains: the "average" column of the BTX paper's
// comparison. Every domain counts the same (a mean of per-domain means, not of tokens), so a large
// domain does not hide a small one. Shared by the eval stage (results.json), the operator
// (status.meanResults, metrics) and `btx local`'s table, so all say the same number.
import type { EvalResult, MeanResult } from './stageContract.js';

/** One entry per model, in the order models first appear; perplexity is exp of the mean loss. */
export function meanResults(results: readonly EvalResult[]): MeanResult[] {
  const byModel = new Map<string, EvalResult[]>();
  for (const r of results) {
    const list = byModel.get(r.model) ?? [];
    list.push(r);
    byModel.set(r.model, list);
  }
  return [...byModel].map(([model, list]) => {
    const loss = list.reduce((a, r) => a + r.loss, 0) / list.length;
    const bpb = list.every((r) => r.bitsPerByte !== undefined)
      ? list.reduce((a, r) => a + (r.bitsPerByte ?? 0), 0) / list.length
      : undefined;
    return {
      model,
      loss,
      perplexity: Math.exp(loss),
      ...(bpb !== undefined ? { bitsPerByte: bpb } : {}),
      domains: list.length,
    };
  });
}
