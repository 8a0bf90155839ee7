// The layer rules of eslint.config.js (docs/architecture.md) catch an import across layers, at any
// depth of a folder, static, re-exported or dynamic (`import()`), and let the allowed ones through.
// Linted as text under a file name that does not exist, so no real file has to break for the rule to
// be seen failing.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ESLint } from 'eslint';
import { repoRoot } from '../support/tools.js';

const eslint = new ESLint({ cwd: repoRoot });

/** The ways a file can take in another: each must meet the layer rules. */
const FORMS: Record<string, (from: string) => string> = {
  static: (from) => `import { x } from '${from}';\nexport const y = x;\n`,
  'export from': (from) => `export { x } from '${from}';\n`,
  'dynamic import()': (from) => `export const load = () => import('${from}');\n`,
  'dynamic import() of a template': (from) => `export const load = () => import(\`${from}\`);\n`,
};

/** The layer-rule messages ESLint reports for `from` taken in by `file` in each form. */
async function layerErrors(file: string, from: string): Promise<Record<string, string[]>> {
  const errors: Record<string, string[]> = {};
  for (const [form, source] of Object.entries(FORMS)) {
    const [result] = await eslint.lintText(source(from), { filePath: file });
    errors[form] = result!.messages
      .filter((m) => m.ruleId === 'no-restricted-imports' || m.ruleId === 'no-restricted-syntax')
      .map((m) => m.message);
  }
  return errors;
}

const FORBIDDEN: [file: string, from: string][] = [
  ['src/operator/newFile.ts', '../trainer/model.js'],
  ['src/operator/newFile.ts', '../cluster/controlPlane.js'],
  ['src/operator/newFile.ts', '../cli/flags.js'],
  ['src/trainer/newFile.ts', '../operator/plan.js'],
  ['src/trainer/mix/newFile.ts', '../../operator/plan.js'],
  ['src/trainer/mix/newFile.ts', '../../cluster/controlPlane.js'],
  ['src/cluster/newFile.ts', '../operator/plan.js'],
  ['src/cluster/kubelet/newFile.ts', '../../trainer/model.js'],
  ['src/cluster/apiserver/storage/newFile.ts', '../../../api/stageContract.js'],
  ['src/cluster/kubelet/newFile.ts', '../../api/images.js'],
  ['src/api/newFile.ts', '../util/log.js'],
  ['src/api/newFile.ts', '../operator/plan.js'],
  ['src/util/newFile.ts', '../cluster/events.js'],
  // The kubelet's former api imports (issue 12 item 6) are now refused like any other.
  ['src/cluster/kubelet/podWorker.ts', '../../operator/plan.js'],
  ['src/cluster/kubelet/podWorker.ts', '../../api/images.js'],
  ['src/cluster/kubelet/volumes.ts', '../../api/stageContract.js'],
];

const ALLOWED: [file: string, from: string][] = [
  ['src/operator/newFile.ts', '../api/types.js'],
  ['src/operator/newFile.ts', '../util/log.js'],
  ['src/operator/newFile.ts', './plan.js'],
  ['src/trainer/mix/newFile.ts', '../model.js'],
  ['src/trainer/mix/newFile.ts', '../../api/stageContract.js'],
  ['src/cluster/kubelet/newFile.ts', '../../util/workQueue.js'],
  ['src/cluster/kubelet/newFile.ts', '../jobs/jobPlan.js'],
  ['src/cli/newFile.ts', '../operator/operator.js'],
  ['src/cli/newFile.ts', '../cluster/controlPlane.js'],
  ['src/api/newFile.ts', './types.js'],
  ['src/api/newFile.ts', 'yaml'],
];

test('an import across layers (static, export from, dynamic) fails the lint, naming the layer rule', async () => {
  for (const [file, from] of FORBIDDEN) {
    for (const [form, errors] of Object.entries(await layerErrors(file, from))) {
      assert.equal(errors.length, 1, `${file} importing ${from} (${form})`);
      assert.match(errors[0]!, /layer rule: /);
    }
  }
});

test('imports within a layer, downward into api/util, and anything from cli pass, in every form', async () => {
  for (const [file, from] of ALLOWED) {
    for (const [form, errors] of Object.entries(await layerErrors(file, from)))
      assert.deepEqual(errors, [], `${file} importing ${from} (${form})`);
  }
});
