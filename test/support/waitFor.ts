// The one polling helper of the tests: ask `probe` every 100 ms until it answers, or fail after
// timeoutMs saying what was awaited and the probe's last error. Everything here reaches a result
// through caches, controllers or processes, so a test states what it waits for, never how long.
import { setTimeout as sleep } from 'node:timers/promises';

/** What a probe returns while the wait goes on. */
export type NotYet = undefined | null | false;

/**
 * Resolves with the first answer of `probe` that is not undefined, null or false; a probe that
 * throws is asked again (an API server restarting, a 404 before a create lands). `what` may be a
 * function, to describe the last state seen when the wait times out.
 */
export async function waitFor<T>(
  what: string | (() => string),
  probe: () => T | NotYet | Promise<T | NotYet>,
  timeoutMs: number,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const answer = await probe();
      if (answer !== undefined && answer !== null && answer !== false) return answer;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const reason =
        lastError === undefined
          ? ''
          : `: ${lastError instanceof Error ? lastError.message : String(lastError)}`;
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}${reason}`,
        {
          cause: lastError,
        },
      );
    }
    await sleep(intervalMs);
  }
}

/**
 * Reads an object (a pod, a Job) until `ok` holds for it, and resolves with it; on timeout the error
 * says what was awaited and the status last read. `read` may answer undefined (the object is gone),
 * which `ok` sees like any other state.
 */
export async function waitForState<T>(
  what: string,
  read: () => Promise<T>,
  ok: (o: T) => boolean,
  timeoutMs: number,
): Promise<T> {
  let last: T | undefined;
  const seen = await waitFor(
    () => `${what}; last status: ${JSON.stringify((last as { status?: unknown } | undefined)?.status)}`,
    async () => {
      last = await read();
      // Wrapped: an object that is undefined would be "not yet" to waitFor.
      return ok(last) && { state: last };
    },
    timeoutMs,
  );
  return seen.state;
}
