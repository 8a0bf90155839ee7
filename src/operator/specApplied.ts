// Condition SpecApplied: False while the spec asks for a change the run cannot make (an immutable
// field, a change of domains the run's phase does not allow), with the message naming the field
// and one Warning Event per change; True again once the spec matches what the run goes on with.
import type { ImmutableChange } from '../api/immutable.js';
import type { Planner } from './planner.js';

export function reportSpecApplied(
  p: Planner,
  change: ImmutableChange | undefined,
  reason: string = 'ImmutableFieldChanged',
): void {
  const was = (p.status.conditions ?? []).find((c) => c.type === 'SpecApplied');
  const drifting = was?.status === 'False';
  if (change) {
    if (!drifting || was?.message !== change.message) p.event('Warning', reason, change.message);
    p.condition({ type: 'SpecApplied', status: 'False', reason, message: change.message });
  } else if (drifting) {
    p.condition({
      type: 'SpecApplied',
      status: 'True',
      reason: 'SpecMatches',
      message: 'the spec matches what the run goes on with (status.startedWith)',
    });
  }
}
