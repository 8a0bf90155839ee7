// The project's own container images. The embedded kubelet maps them to this checkout's CLI
// (an image is only a name there), and the operator uses them as defaults.
export const TRAINER_IMAGE = 'ghcr.io/btx-ai/btx-trainer:0.1.0';
export const OPERATOR_IMAGE = 'ghcr.io/btx-ai/btx-operator:0.1.0';

const PROJECT_REPOSITORIES = new Set(['btx-trainer', 'btx-operator']);

/** The repository path of an image reference: no registry host, no tag, no digest. */
function repositoryPath(image: string): string {
  let ref = image.trim();
  const at = ref.indexOf('@');
  if (at >= 0) ref = ref.slice(0, at);
  const lastSlash = ref.lastIndexOf('/');
  const colon = ref.lastIndexOf(':');
  if (colon > lastSlash) ref = ref.slice(0, colon);
  const parts = ref.split('/');
  // A first component with '.' or ':' (or 'localhost') is a registry host, as Docker decides.
  const first = parts[0] ?? '';
  if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    parts.shift();
  }
  return parts.join('/');
}

/** Any tag or digest of btx-trainer or btx-operator, with or without registry or the btx-ai owner. */
export function isProjectImage(image: string): boolean {
  const path = repositoryPath(image).split('/');
  const name = path[path.length - 1] ?? '';
  if (!PROJECT_REPOSITORIES.has(name)) return false;
  return path.length === 1 || (path.length === 2 && path[0] === 'btx-ai');
}
