#!/usr/bin/env node
// `npm test`: type-check, lint, then every test/**/*.test.ts under node:test (via tsx).
// Node 20's --test does not expand globs, so the file list is built here. test/support/quietLogs.ts
// holds back each test's stderr (log lines) unless it fails, and scripts/test-reporter.mjs prints one
// line per passing file: the output of a green run is the report (BTX_TEST_REPORT=spec: one per test).
import { spawnSync } from 'node:child_process';
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

function run(cmd, args) {
  const result = spawnSync(cmd, args, { stdio: 'inherit' });
  if (result.status !== 0) process.exit(result.status ?? 1);
}

const filters = process.argv.slice(2);
if (filters.length === 0) {
  run('npx', ['tsc', '-p', 'tsconfig.json', '--noEmit']);
  run('npx', ['eslint', '.']);
}
const files = findTests('test').filter((f) => filters.length === 0 || filters.some((p) => f.includes(p)));
run(process.execPath, [
  '--import',
  'tsx',
  '--import',
  './test/support/quietLogs.ts',
  '--test',
  // One line per passing file, everything about a failing one (scripts/test-reporter.mjs).
  `--test-reporter=${process.env.BTX_TEST_REPORT === 'spec' ? 'spec' : './scripts/test-reporter.mjs'}`,
  `--test-concurrency=${process.env.BTX_TEST_CONCURRENCY ?? 2}`,
  ...files,
]);
