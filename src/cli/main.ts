// The `btx` command's entry point (bin/btx.js loads it): runs one subcommand (commands.ts) and
// turns what it returns or throws into the exit status.
import { EXIT_INPUT_REFUSED } from '../api/stageContract.js';
import { InputError } from '../trainer/inputError.js';
import { log, errorFields } from '../util/log.js';
import { runBtx } from './commands.js';

runBtx(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    // A clear reason, never a stack trace, for the user; the log line keeps the details.
    log.error('command failed', errorFields(err));
    process.stderr.write(`btx: ${err instanceof Error ? err.message : String(err)}\n`);
    // Refused input exits EXIT_INPUT_REFUSED: the stage's Job then fails without retrying.
    process.exitCode = err instanceof InputError ? EXIT_INPUT_REFUSED : 1;
  },
);
