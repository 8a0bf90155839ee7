// Learning rate: linear warmup to the peak, then cosine decay to minRatio * peak at the last step.
export interface LrSchedule {
  peak: number;
  warmupSteps: number;
  totalSteps: number;
  /** Final LR as a fraction of the peak. */
  minRatio: number;
}

/** LR for the update that produces step `step + 1` (step counts finished updates). */
export function learningRate(s: LrSchedule, step: number): number {
  if (step < s.warmupSteps) return (s.peak * (step + 1)) / s.warmupSteps;
  const span = Math.max(1, s.totalSteps - s.warmupSteps);
  const progress = Math.min(1, (step - s.warmupSteps) / span);
  const min = s.peak * s.minRatio;
  return min + 0.5 * (s.peak - min) * (1 + Math.cos(Math.PI * progress));
}
