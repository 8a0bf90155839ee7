// The mix's bounded pipeline: job j is prepared (its input slices read, then combined on the worker
// threads) while up to depth-1 earlier jobs are still being prepared or written, and jobs are
// committed (written) strictly in order, one at a time. Each job owns a slot (j % depth) of reused
// buffers until its commit returns, so at most `depth` jobs' buffers are ever in use. Profile of the
// one-ahead loop it replaces (4 BF16 experts, 2 cores): the worker threads sat idle more than half
// the time, because the combine of slice j waited for the write of slice j-1 and the other way round.

export interface PipelineStages<T> {
  /** Read and compute job j into slot `slot`'s buffers; runs concurrently with other jobs. */
  prepare(job: number, slot: number): Promise<T>;
  /** Write job j's result; called in job order, after job j-1's commit has returned. */
  commit(job: number, slot: number, prepared: T): Promise<void>;
}

/**
 * Runs jobs 0..count-1 through prepare then commit with at most `depth` jobs in flight. On the first
 * failure it stops starting jobs, waits until every job in flight has settled (no read or write is
 * left touching a buffer or a file), and rethrows that failure.
 */
export async function runPipeline<T>(count: number, depth: number, stages: PipelineStages<T>): Promise<void> {
  if (!Number.isInteger(depth) || depth < 1)
    throw new Error(`pipeline depth must be an integer >= 1, got ${depth}`);
  /** Job j's whole life (prepare, then commit), in its slot j % depth. */
  const inFlight: Promise<void>[] = [];
  let committed: Promise<void> = Promise.resolve();
  try {
    for (let j = 0; j < count; j++) {
      const slot = j % depth;
      // The slot is free once the job that last had it has been committed.
      if (j >= depth) await inFlight[slot];
      const prepared = Promise.resolve().then(() => stages.prepare(j, slot));
      const previous = committed;
      const life = (async () => {
        // Prepare first, whatever happens to the job before: so a settled life means the reads
        // into this slot are over too.
        const value = await prepared;
        await previous;
        await stages.commit(j, slot, value);
      })();
      // Awaited later (when its slot comes round, or at the end); never an unhandled rejection.
      life.catch(() => undefined);
      inFlight[slot] = life;
      committed = life;
    }
    await committed;
  } catch (err) {
    await Promise.allSettled(inFlight);
    throw err;
  }
}
