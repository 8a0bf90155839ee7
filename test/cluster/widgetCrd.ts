// The widget CRD the API server's tests install (a custom resource with CEL rules, defaults,
// subresources and printer columns); the server itself comes from test/support/controlPlane.ts.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';

const here = dirname(fileURLToPath(import.meta.url));
export const widgetCrdPath = join(here, 'apiserver-fixtures', 'widget-crd.yaml');

export function widgetCrd(): Record<string, unknown> {
  return parseYaml(readFileSync(widgetCrdPath, 'utf8')) as Record<string, unknown>;
}
