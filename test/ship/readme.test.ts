// The README and docs/operations.md point at things that exist, and the README keeps its promises:
// the two local commands first, then helm install, an example, Grafana, the stage contract, docs/.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../support/tools.js';

function relativeLinks(file: string): string[] {
  const text = readFileSync(join(repoRoot, file), 'utf8');
  return [...text.matchAll(/\]\(([^)#\s]+)(#[^)]*)?\)/g)]
    .map((m) => m[1]!)
    .filter((href) => !/^[a-z]+:/.test(href));
}

test('every relative link in README.md and docs/operations.md resolves to a file in the repository', () => {
  for (const file of ['README.md', 'docs/operations.md']) {
    const links = relativeLinks(file);
    assert.ok(links.length > 0, `${file} has links`);
    for (const href of links) {
      assert.ok(existsSync(join(repoRoot, dirname(file), href)), `${file}: ${href} exists`);
    }
  }
});

test('the README starts with the two local commands, then shows helm install, an example, Grafana and the stage contract', () => {
  const text = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  const firstBlock = /```sh\n([\s\S]*?)```/.exec(text)?.[1] ?? '';
  assert.match(firstBlock, /^npm ci && npm start\b/m);
  assert.match(firstBlock, /^npm test\b/m);
  const order = [
    'npm ci && npm start',
    'helm install btx-operator charts/btx-operator',
    'apply -f examples/btxrun-gpu.yaml',
    'get btx -w',
    'grafana_dashboard',
    'docs/stage-contract.md',
    'docs/operations.md',
  ].map((s) => [s, text.indexOf(s)] as const);
  for (const [s, at] of order) assert.ok(at >= 0, `README mentions ${s}`);
  for (let i = 1; i < order.length; i++)
    assert.ok(order[i - 1]![1] < order[i]![1], `${order[i - 1]![0]} before ${order[i]![0]}`);
  const intro = text.slice(text.indexOf('\n\n') + 2, text.indexOf('## '));
  assert.equal(
    intro.replace(/\be\.g\.|et al\./g, '').match(/[.!?](\s|$)/g)?.length,
    3,
    'what BTX is, in three sentences',
  );
});
