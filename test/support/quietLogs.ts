// Loaded into every test process by scripts/run-tests.mjs (--import): what a test writes to stderr
// (the JSON log lines of the operator, control plane and trainer it runs in-process) is held back and
// printed only when that test fails, so the output of a green `npm test` is the test report (before:
// thousands of log lines between results). Output since the last passed test, the file's before()
// hooks included, goes with a failure; a file that ends failing (a hook, say) prints what is left.
// BTX_TEST_LOGS=all prints everything as it comes, as before.
// stdout is left alone: node:test's child processes report results over it.
import { afterEach } from 'node:test';

if (process.env.BTX_TEST_LOGS !== 'all') {
  const write = process.stderr.write.bind(process.stderr);
  let held: (string | Uint8Array)[] = [];
  let failed = false;

  process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    held.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk));
    const done = rest.find((r): r is () => void => typeof r === 'function');
    done?.();
    return true;
  }) as typeof process.stderr.write;

  const flush = (title: string) => {
    if (held.length === 0) return;
    write(`--- ${title} ---\n`);
    for (const chunk of held) write(chunk);
    held = [];
  };

  afterEach((t) => {
    if ((t as { passed?: boolean }).passed !== false) held = [];
    else {
      failed = true;
      flush(`stderr of the failed test '${t.name}'`);
    }
  });
  process.on('exit', (code) => {
    if (failed || code !== 0 || (process.exitCode !== undefined && process.exitCode !== 0)) {
      flush('stderr after the last passed test');
    }
  });
}
