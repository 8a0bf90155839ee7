// Conditions that never flip meaning: one entry per type, lastTransitionTime moves only when the
// status (True/False/Unknown) changes, reason is CamelCase, message is for humans.
import type { Condition, ConditionType } from '../api/types.js';

export interface ConditionInput {
  type: ConditionType;
  status: Condition['status'];
  reason: string;
  message: string;
}

/** A new list with `input` set; keeps the old lastTransitionTime when the status did not change. */
export function setCondition(
  conditions: readonly Condition[],
  input: ConditionInput,
  now: string,
  observedGeneration?: number,
): Condition[] {
  const old = conditions.find((c) => c.type === input.type);
  const next: Condition = {
    type: input.type,
    status: input.status,
    reason: input.reason,
    message: input.message,
    lastTransitionTime: old && old.status === input.status ? old.lastTransitionTime : now,
  };
  if (observedGeneration !== undefined) next.observedGeneration = observedGeneration;
  if (old) return conditions.map((c) => (c.type === input.type ? next : c));
  return [...conditions, next];
}

export function getCondition(
  conditions: readonly Condition[] | undefined,
  type: ConditionType,
): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

export function isTrue(conditions: readonly Condition[] | undefined, type: ConditionType): boolean {
  return getCondition(conditions, type)?.status === 'True';
}
