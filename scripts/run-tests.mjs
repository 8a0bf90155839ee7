#!/usr/bin/env node
// `npm test`: type-check and lint (side by side), then every test/**/*.test.ts under node:test (via tsx).
// Node 20's --test does not expand globs, so the file list is built here. test/support/quietLogs.ts
// holds back each test's stderr (log lines) unless it fails, and scripts/test-reporter.mjs prints one
// line per passing file: the output of a green run is the report (BTX_TEST_REPORT=spec: one per test).
// test/support/cpuTime.ts adds each file's CPU seconds to its line (wall time is noisy on a shared
// machine). Filters (`npm test -- test/cli`) run only the matching files, without tsc and eslint.
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function findTests(dir) {
  const out = [];
  for (const entry of readdirSync(dir).sort()) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...findTests(path));
    else if (entry.endsWith('.test.ts')) out.push(path);
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
const files = findTests('test').filter((f) => filters.length === 0 || filters.some((p) => f.includes(p)));
const result = spawnSync(
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
    `--test-concurrency=${process.env.BTX_TEST_CONCURRENCY ?? 2}`,
    ...files,
  ],
  { stdio: 'inherit' },
);
process.exit(result.status ?? 1);
