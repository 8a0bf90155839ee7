// An input the stage can never use: data that is not there or cannot be read, a tokenizer that does
// not fit the model. `btx` exits with EXIT_INPUT_REFUSED (src/api/stageContract.ts) for it, so the
// stage's Job fails at once instead of retrying what cannot change (a missing data path spent the
// tokenize Job's three pods, about 40 s, before the run failed).
export class InputError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'InputError';
  }
}
