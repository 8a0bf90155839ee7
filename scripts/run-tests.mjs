#!/usr/bin/env node
// `npm test`: type-check and lint (side by side), then every test/**/*.test.ts under node:test (via tsx).
// Node 20's --test does not expand globs, so the file list is built here. test/support/quietLogs.ts
// holds back each test's stderr (log lines) unless it fails, and scripts/test-reporter.mjs prints one
// line per passing file: the output of a green run is the report (BTX_TEST_REPORT=spec: one per test).
// test/support/cpuTime.ts adds each file's CPU seconds to its line (wall time is noisy on a shared
// machine). Filters (`npm test -- test/cli`) run only the matching files, without tsc and eslint.
//
// The btx processes the tests start (stage pods, `btx local`, `btx cluster`, `btx tokenize`...) run a
// copy of src/ compiled to JS here at the start of every run (esbuild, ~0.3 s for ~150 files) instead
// of the sources through tsx: measured on the 2-core machine, `btx tokenize` took 0.35 s of CPU
// compiled against 0.85 s through tsx (its loader thread answers every import), `btx train seed` 1.1
// against 2.0, and the suite starts well over a hundred of them. The copy is `.test-cli-<pid>/` at
// the repo root (src/'s layout, so a compiled file finds the root two folders up, as one in dist/
// does), named to the test processes by BTX_TEST_CLI (test/support/btx.ts), and removed at the end.
// Without it (a test file run on its own) the tests run bin/btx.js, the sources through tsx.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';

/** The files under `dir` whose names end with `suffix`, sorted, folders depth first. */
function findFiles(dir, suffix) {
  const out = [];
  for (const entry of readdirSync(dir).sort()) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...findFiles(path, suffix));
    else if (entry.endsWith(suffix)) out.push(path);
  }
  return out;
}

/** Runs a check with its output held back; resolves to its exit status and what it printed. */
function check(cmd, args) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('error', (err) => resolve({ status: 1, output: `${cmd}: ${err.message}\n` }));
    child.on('close', (status) => resolve({ status: status ?? 1, output }));
  });
}

/** src/**\/*.ts compiled file by file (no bundling: imports stay as they are) into `dir`. */
async function compileCli(dir) {
  // esbuild comes with tsx (src/trainer/mix/kernelPool.ts reaches it the same way).
  const esbuild = createRequire(createRequire(import.meta.url).resolve('tsx'))('esbuild');
  await esbuild.build({
    entryPoints: findFiles('src', '.ts'),
    outdir: dir,
    outbase: 'src',
    format: 'esm',
    platform: 'node',
    target: 'node20',
    logLevel: 'error',
  });
}

/** Copies a run that ended without its cleanup (killed) left behind: their process is gone. */
function removeLeftoverCopies() {
  for (const entry of readdirSync('.')) {
    const pid = /^\.test-cli-(\d+)$/.exec(entry)?.[1];
    if (pid === undefined) continue;
    try {
      process.kill(Number(pid), 0);
    } catch {
      rmSync(entry, { recursive: true, force: true });
    }
  }
}

const filters = process.argv.slice(2);
if (filters.length === 0) {
  // tsc and eslint are one thread each: side by side they take the longer one's time, not the sum
  // (measured on 2 cores: ~23 s and ~18 s of CPU). Their caches live in the ignored .cache/ folder:
  // a fresh clone (CI) pays the full price once, a rerun checks only what changed (both caches key
  // on file contents, and eslint's on its config too).
  const checks = await Promise.all([
    check('npx', [
      'tsc',
      '-p',
      'tsconfig.json',
      '--noEmit',
      '--incremental',
      '--tsBuildInfoFile',
      '.cache/tsc/tsconfig.tsbuildinfo',
    ]),
    check('npx', [
      'eslint',
      '--cache',
      '--cache-strategy',
      'content',
      '--cache-location',
      '.cache/eslint/',
      '.',
    ]),
  ]);
  for (const { output } of checks) process.stdout.write(output);
  const failed = checks.find((c) => c.status !== 0);
  if (failed) process.exit(failed.status);
}
const files = findFiles('test', '.test.ts').filter(
  (f) => filters.length === 0 || filters.some((p) => f.includes(p)),
);
removeLeftoverCopies();
const cliDir = resolve(`.test-cli-${process.pid}`);
process.on('exit', () => rmSync(cliDir, { recursive: true, force: true }));
await compileCli(cliDir);
const mainJs = join(cliDir, 'cli', 'main.js');
if (!existsSync(mainJs)) throw new Error(`compiling src/ made no ${mainJs}`);
const tests = spawn(
  process.execPath,
  [
    '--import',
    'tsx',
    '--import',
    './test/support/quietLogs.ts',
    // The CPU line is for scripts/test-reporter.mjs; the spec reporter would print it raw.
    ...(process.env.BTX_TEST_REPORT === 'spec' ? [] : ['--import', './test/support/cpuTime.ts']),
    '--test',
    // One line per passing file, everything about a failing one (scripts/test-reporter.mjs).
    `--test-reporter=${process.env.BTX_TEST_REPORT === 'spec' ? 'spec' : './scripts/test-reporter.mjs'}`,
    // Three files at a time on two cores: many files wait on processes, timers or backoffs, and a third
    // fills those gaps (fresh clone, quiet: 259.6 s of tests at 2, 239.5 s at 3, same 589 tests).
    `--test-concurrency=${process.env.BTX_TEST_CONCURRENCY ?? 3}`,
    ...files,
  ],
  { stdio: 'inherit', env: { ...process.env, BTX_TEST_CLI: mainJs } },
);
// Ctrl-C reaches the tests too (one process group); a SIGTERM for this process alone is passed on.
// Either way this process waits for them, then removes the compiled copy (the 'exit' hook).
process.on('SIGINT', () => {});
process.on('SIGTERM', () => tests.kill('SIGTERM'));
tests.on('close', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
