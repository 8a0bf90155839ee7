// The training loop shared by the seed, expert and finetune stages: batches from a seeded
// stream, loss + gradients, AdamW, periodic checkpoints and progress. One host sync per step
// (the loss and gradient norm for the log line); nothing per token.
import * as tf from './tfjs.js';
import type { AdamW } from './adamw.js';
import type { BatchSource } from './data.js';
import { trainingBatch } from './data.js';
import { batchLoss } from './model.js';
import type { ModelDims, Params } from './model.js';
import type { RoutingOptions } from './moe.js';
import { hashInts } from './prng.js';
import { learningRate } from './schedule.js';
import type { LrSchedule } from './schedule.js';

export interface StepReport {
  step: number;
  totalSteps: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokensPerSecond: number;
  /** MoE: per layer, share of this batch's token slots per expert. */
  routing?: number[][];
  /** MoE: load-balancing loss (before alpha). */
  auxLoss?: number;
}

export interface TrainLoopOptions {
  params: Params;
  dims: ModelDims;
  optimizer: AdamW;
  source: BatchSource;
  seed: number;
  batchSize: number;
  seqLen: number;
  schedule: LrSchedule;
  /** Finished updates so far (0 fresh, the checkpoint's step on resume). */
  startStep: number;
  /** Stop after this many finished updates (default schedule.totalSteps); for tests of kill+resume. */
  stopAtStep?: number;
  checkpointEvery: number;
  routing?: RoutingOptions;
  auxLossCoef?: number;
  /** Read routing shares every this many steps (MoE only; costs a small sync). */
  routingEvery?: number;
  onStep?: (r: StepReport) => void | Promise<void>;
  /** Called after `step` updates when a checkpoint is due (and at the end). */
  onCheckpoint?: (step: number, loss: number | null) => Promise<void>;
}

export interface TrainResult {
  step: number;
  loss: number | null;
  /** Whether the final step's checkpoint was written by the loop. */
  checkpointed: boolean;
}

export async function trainLoop(o: TrainLoopOptions): Promise<TrainResult> {
  const total = o.schedule.totalSteps;
  const stopAt = Math.min(o.stopAtStep ?? total, total);
  const vars = o.optimizer.variables();
  let loss: number | null = null;
  let checkpointed = false;
  for (let step = o.startStep; step < stopAt; step++) {
    const started = performance.now();
    const windows = trainingBatch(o.source, o.seed, step, o.batchSize, o.seqLen);
    const lr = learningRate(o.schedule, step);
    const wantRouting =
      o.dims.experts > 0 &&
      (o.routingEvery ?? 10) > 0 &&
      ((step + 1) % (o.routingEvery ?? 10) === 0 || step + 1 === stopAt);
    // Tensors kept out of the gradient scope for the log line.
    const kept: { shares: tf.Tensor[]; aux?: tf.Scalar } = { shares: [] };
    const { value, grads } = tf.variableGrads(() => {
      const ids = tf.tensor2d(windows, [o.batchSize, o.seqLen + 1], 'int32');
      const parts = batchLoss(o.params, o.dims, ids, {
        training: true,
        routing: o.routing,
        noiseSeed: hashInts(o.seed, step, 0x5eed),
        auxLossCoef: o.auxLossCoef,
      });
      if (wantRouting) for (const r of parts.routing) kept.shares.push(tf.keep(r.share));
      if (parts.aux) kept.aux = tf.keep(parts.aux);
      return parts.total;
    }, vars);
    const norm = o.optimizer.apply(grads, lr);
    const [lossValue, normValue] = await Promise.all([value.data(), norm.data()]);
    const routing = wantRouting
      ? await Promise.all(kept.shares.map(async (t) => [...(await t.data())]))
      : undefined;
    const auxValue = kept.aux ? (await kept.aux.data())[0] : undefined;
    tf.dispose([value, norm, ...Object.values(grads), ...kept.shares]);
    kept.aux?.dispose();
    loss = lossValue[0]!;
    if (!Number.isFinite(loss))
      throw new Error(`loss is ${loss} at step ${step + 1}; lower the learning rate`);
    const seconds = (performance.now() - started) / 1000;
    await o.onStep?.({
      step: step + 1,
      totalSteps: total,
      loss,
      lr,
      gradNorm: normValue[0]!,
      tokensPerSecond: (o.batchSize * o.seqLen) / seconds,
      ...(routing ? { routing } : {}),
      ...(auxValue !== undefined ? { auxLoss: auxValue } : {}),
    });
    const done = step + 1;
    checkpointed = false;
    if (o.onCheckpoint && o.checkpointEvery > 0 && done % o.checkpointEvery === 0) {
      await o.onCheckpoint(done, loss);
      checkpointed = true;
    }
    // The step's awaits resolve as microtasks on CPU backends, so without this turn of the event
    // loop the progress patch (and SIGTERM handling) would only run at checkpoints.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return { step: Math.max(stopAt, o.startStep), loss, checkpointed };
}
