// Multi-document YAML manifests, as `kubectl apply -f` reads them: empty documents are skipped,
// every other document must be an object with apiVersion and kind.
import { parseAllDocuments } from 'yaml';

export interface ManifestObject {
  apiVersion: string;
  kind: string;
  metadata?: { name?: string; namespace?: string; [key: string]: unknown };
  [key: string]: unknown;
}

export function parseManifests(text: string): ManifestObject[] {
  const objects: ManifestObject[] = [];
  parseAllDocuments(text).forEach((doc, i) => {
    if (doc.errors.length > 0) throw new Error(`document ${i + 1}: ${doc.errors[0]?.message}`);
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) return;
    const obj = value as Partial<ManifestObject>;
    if (
      typeof obj !== 'object' ||
      Array.isArray(obj) ||
      typeof obj.apiVersion !== 'string' ||
      typeof obj.kind !== 'string'
    ) {
      throw new Error(`document ${i + 1}: not a Kubernetes object (apiVersion and kind are required)`);
    }
    objects.push(obj as ManifestObject);
  });
  return objects;
}
