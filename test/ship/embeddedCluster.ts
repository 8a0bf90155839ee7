// The embedded API server for the ship tests, in this process, with kubectl pointed at it.
// kubectl runs asynchronously: the server shares this process's event loop.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kubeconfigYaml } from '../../src/cluster/apiserver/kubeconfig.js';
import { startApiServer, type ApiServer } from '../../src/cluster/apiserver/server.js';
import { kubectlPath } from '../support/tools.js';

export interface Cluster {
  server: ApiServer;
  /** A temporary folder, removed by stop(). */
  dir: string;
  kubeconfig: string;
  /** kubectl with an admin kubeconfig; rejects with its stderr when it fails. */
  kubectl(args: string[], input?: string): Promise<string>;
  createNamespaces(names: string[]): Promise<void>;
  stop(): Promise<void>;
}

export async function startCluster(): Promise<Cluster> {
  const dir = mkdtempSync(join(tmpdir(), 'btx-ship-'));
  const server = await startApiServer({ token: 'ship-test-token', dataDir: dir, persist: false });
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, kubeconfigYaml(server.httpsUrl, server.token, 'ship', server.caCert));
  const kubectl = async (args: string[], input?: string): Promise<string> => {
    const child = execFile(kubectlPath(), ['--kubeconfig', kubeconfig, ...args], { timeout: 60_000 });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.stdin!.end(input ?? '');
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    if (code !== 0) throw new Error(`kubectl ${args.join(' ')} exited ${code}:\n${err}${out}`);
    return out;
  };
  return {
    server,
    dir,
    kubeconfig,
    kubectl,
    createNamespaces: async (names) => {
      const docs = names
        .map((n) => `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${n}\n`)
        .join('---\n');
      await kubectl(['apply', '-f', '-'], docs);
    },
    stop: async () => {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A kubeconfig without credentials for a plain-HTTP URL (the recording proxy adds the token). client-node
 * refuses http:// unless skipTLSVerify is set; there is no TLS to verify.
 */
export function writePlainKubeconfig(path: string, url: string): void {
  writeFileSync(
    path,
    `apiVersion: v1\nkind: Config\nclusters: [{name: s, cluster: {server: "${url}", insecure-skip-tls-verify: true}}]\n` +
      `users: [{name: s, user: {}}]\ncontexts: [{name: s, context: {cluster: s, user: s}}]\ncurrent-context: s\n`,
  );
}
