// `npm test`'s reporter (node:test --test-reporter): one line per test file that passed (its tests and
// time), and for a file with a failing test everything: each test's line, the failure with its cause,
// and what the file printed (test/support/quietLogs.ts holds back the logs of passing tests, so that is
// the failing test's logs). Skipped and todo tests are always listed, never silent. The spec reporter
// printed a line per test: ~475 lines for a green run in Nov 2026 and growing with every test; this
// prints one per file (~100). BTX_TEST_REPORT=spec in scripts/run-tests.mjs brings the spec one back.
import { relative } from 'node:path';
import { inspect } from 'node:util';

/** What test/support/cpuTime.ts prints at a test process's exit: its CPU seconds, children included. */
const CPU_LINE = /^btx-test-cpu-seconds:([0-9.]+) ([0-9.]+)\n?/m;

const ms = (n) => (n >= 1000 ? `${(n / 1000).toFixed(1)} s` : `${Math.round(n)} ms`);

/** The error a failed test reports: node:test wraps what the test threw (ERR_TEST_FAILURE). */
function failure(details) {
  const err = details?.error;
  const shown = err?.code === 'ERR_TEST_FAILURE' && err.cause !== undefined ? err.cause : err;
  const text =
    shown instanceof Error || typeof shown === 'object' ? inspect(shown, { depth: 4 }) : String(shown);
  return text.replace(/^/gm, '    ');
}

export default async function* report(source) {
  /** Per file: counts, and what to print if it fails. */
  const files = new Map();
  const fileOf = (path) => {
    let f = files.get(path);
    if (!f) {
      f = {
        pass: 0,
        fail: 0,
        skip: 0,
        lines: [],
        output: [],
        always: [],
        cpuSeconds: undefined,
        childCpuSeconds: undefined,
      };
      files.set(path, f);
    }
    return f;
  };
  const name = (path) => (path ? relative(process.cwd(), path) : '(no file)');

  /** The file's block, once it is done. */
  const finish = (file) => {
    const f = fileOf(file);
    files.delete(file);
    const durationMs = f.durationMs;
    const counts = `${f.pass} passed${f.skip ? `, ${f.skip} skipped` : ''}${f.fail ? `, ${f.fail} failed` : ''}`;
    // Wall time, and CPU time (test/support/cpuTime.ts): on a shared machine only the second is steady.
    // The children's share (btx processes, stage pods, kubectl) says where a heavy file spends it.
    const children = f.childCpuSeconds ? `, ${f.childCpuSeconds.toFixed(1)} s of it in child processes` : '';
    const cpu = f.cpuSeconds === undefined ? '' : `, cpu ${f.cpuSeconds.toFixed(1)} s${children}`;
    const time = durationMs === undefined ? '' : ` (${ms(durationMs)}${cpu})`;
    const always = f.always.map((l) => `${l}\n`).join('');
    const output = f.output.join('');
    if (!f.fail) {
      // A green file's output is what is not a log line (quietLogs holds those back): keep it visible.
      return `✔ ${name(file)}: ${counts}${time}\n${always}${output}`;
    }
    const printed = output
      ? `  --- what ${name(file)} printed ---\n${output}${output.endsWith('\n') ? '' : '\n'}`
      : '';
    return `✖ ${name(file)}: ${counts}${time}\n${f.lines.join('\n')}\n${always}${printed}`;
  };

  // test:start/pass/fail come in declaration order, file after file (test:complete does not), so a
  // file is done when the ordered events move on to the next one, or when the run ends.
  let current;
  const printed = new Set();
  let totalCpuSeconds = 0;
  for await (const { type, data } of source) {
    const file = data?.file;
    const isFileItself = file !== undefined && data?.name === file;
    const ordered = type === 'test:start' || type === 'test:pass' || type === 'test:fail';
    if (ordered && file !== undefined && file !== current) {
      if (current !== undefined) {
        yield finish(current);
        printed.add(current);
      }
      current = file;
    }
    switch (type) {
      case 'test:stdout':
      case 'test:stderr': {
        const cpu = type === 'test:stdout' && file ? CPU_LINE.exec(data.message) : null;
        if (cpu) {
          totalCpuSeconds += Number(cpu[1]);
          if (!printed.has(file)) {
            fileOf(file).cpuSeconds = Number(cpu[1]);
            fileOf(file).childCpuSeconds = Number(cpu[2]);
          }
          data.message = data.message.replace(CPU_LINE, '');
          if (data.message === '') break;
        }
        if (file && printed.has(file))
          yield `  --- ${name(file)} printed after its tests ---\n${data.message}`;
        else if (file) fileOf(file).output.push(data.message);
        else yield data.message;
        break;
      }
      case 'test:pass': {
        if (isFileItself || data.details?.type === 'suite') break;
        const f = fileOf(file);
        if (data.skip !== undefined || data.todo !== undefined) {
          f.skip++;
          const why = data.skip !== undefined ? `SKIP ${data.skip}` : `TODO ${data.todo}`;
          f.always.push(`  - ${data.name} # ${why}`.trimEnd());
        } else {
          f.pass++;
          f.lines.push(`  ✔ ${data.name} (${ms(data.details?.duration_ms ?? 0)})`);
        }
        break;
      }
      case 'test:fail': {
        const f = fileOf(file);
        f.fail++;
        const what = isFileItself ? 'the file itself (a hook, an import, an uncaught error)' : data.name;
        f.lines.push(`  ✖ ${what} (${ms(data.details?.duration_ms ?? 0)})\n${failure(data.details)}`);
        break;
      }
      case 'test:complete':
        if (isFileItself) fileOf(file).durationMs = data.details?.duration_ms;
        break;
      case 'test:diagnostic':
        if (data.nesting === 0 && !file) {
          if (current !== undefined && files.has(current)) yield finish(current);
          yield `ℹ ${data.message}\n`;
        }
        break;
      default:
        break;
    }
  }
  for (const file of [...files.keys()]) yield finish(file);
  yield `ℹ cpu seconds of the test files ${totalCpuSeconds.toFixed(1)}\n`;
}
