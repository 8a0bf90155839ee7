import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { generatedFiles, renderChartCrd, CRD_FILE } from '../../scripts/generate.js';
import { btxRunCRD } from '../../src/api/crd.js';
import { repoRoot } from '../support/tools.js';

test('crds/, the chart CRD template and docs/api.md are exactly what `npm run gen` writes', () => {
  for (const [path, expected] of Object.entries(generatedFiles(repoRoot))) {
    const actual = readFileSync(join(repoRoot, path), 'utf8');
    assert.ok(actual === expected, `${path} is stale: run \`npm run gen\``);
  }
});

test('crds/ parses back to the CRD object, with no YAML anchors', () => {
  const text = readFileSync(join(repoRoot, CRD_FILE), 'utf8');
  assert.doesNotMatch(text, /[&*]a\d+\b/);
  assert.deepEqual(parse(text), btxRunCRD());
});

test('the CRD names, status subresource and printer columns are the documented ones', () => {
  const crd = btxRunCRD();
  assert.equal(crd.metadata.name, 'btxruns.btx.ai');
  assert.deepEqual(crd.spec.names.shortNames, ['btx']);
  assert.deepEqual(crd.spec.names.categories, ['btx']);
  const version = crd.spec.versions[0];
  assert.equal(version?.name, 'v1alpha1');
  assert.deepEqual(version?.subresources, { status: {} });
  assert.deepEqual(
    version?.additionalPrinterColumns.map((c) => [c.name, c.jsonPath]),
    [
      ['Phase', '.status.phase'],
      ['Experts', '.status.expertsReady'],
      ['Restarts', '.status.restarts'],
      ['Age', '.metadata.creationTimestamp'],
    ],
  );
  assert.ok(!JSON.stringify(crd).includes('conditions[-1:]'));
});

test('the chart template uses the chart label helper when it exists, inline labels otherwise', () => {
  const withHelper = renderChartCrd('{{- define "btx-operator.labels" -}}x{{- end }}');
  assert.match(withHelper, /include "btx-operator.labels" \. \| nindent 4/);
  const without = renderChartCrd(undefined);
  assert.match(without, /app\.kubernetes\.io\/managed-by: \{\{ \.Release\.Service \}\}/);
  for (const text of [withHelper, without]) {
    assert.match(text, /^\{\{- if \.Values\.crds\.install \}\}\n/);
    assert.match(
      text,
      /\{\{- if \.Values\.crds\.keep \}\}\n {2}annotations:\n {4}helm\.sh\/resource-policy: keep\n/,
    );
    assert.match(text, /\{\{- end \}\}\n$/);
  }
});
