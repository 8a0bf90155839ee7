// What the embedded kubelet must know about this project, composed here (the CLI composes) so that
// src/cluster stays a plain Kubernetes subset: the project's images (any tag, digest or registry of
// btx-trainer/btx-operator, src/api/images.ts) run this checkout's CLI, and every container gets its
// container path -> host path map in the stage contract's BTX_LOCAL_PATHS, which the trainer resolves
// its paths through (src/util/containerPaths.ts). `btx cluster` and `btx local` pass both.
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isProjectImage } from '../api/images.js';
import { ENV } from '../api/stageContract.js';
import type { ControlPlaneOptions } from '../cluster/controlPlane.js';

/** argv that runs this checkout's (or this image's) CLI: what the project's images run. */
export function projectEntrypoint(): string[] {
  const here = dirname(fileURLToPath(import.meta.url));
  // Compiled (dist/cli, or the copy `npm test` compiles): this build's main.js, which is what the
  // launcher runs from dist/. From the sources (src/cli): the launcher two folders up (tsx).
  if (!import.meta.url.endsWith('.ts')) return [process.execPath, resolve(here, 'main.js')];
  return [process.execPath, resolve(here, '..', '..', 'bin', 'btx.js')];
}

/** The control plane options that run the project's pods (with `entrypoint`: a test's build). */
export function btxPodRuntime(
  entrypoint: string[] = projectEntrypoint(),
): Pick<ControlPlaneOptions, 'imageCommands' | 'pathMapVariable'> {
  return {
    imageCommands: (image) => (isProjectImage(image) ? entrypoint : undefined),
    pathMapVariable: ENV.localPaths,
  };
}
