// Shared by the API server's tests: an in-process server in a temp dir, an authenticated fetch,
// the widget CRD fixture, and a real kubectl pointed at the server.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { kubeconfigYaml } from '../../src/cluster/apiserver/kubeconfig.js';
import { startApiServer, type ApiServer, type ApiServerOptions } from '../../src/cluster/apiserver/server.js';
import { kubectlPath } from '../support/tools.js';

const here = dirname(fileURLToPath(import.meta.url));
export const widgetCrdPath = join(here, 'apiserver-fixtures', 'widget-crd.yaml');
export const TOKEN = 'test-token-0123456789';

export function widgetCrd(): Record<string, unknown> {
  return parseYaml(readFileSync(widgetCrdPath, 'utf8')) as Record<string, unknown>;
}

export interface TestServer {
  server: ApiServer;
  dir: string;
  kubeconfigPath: string;
  /** fetch with the bearer token; JSON bodies are serialized. */
  req(
    method: string,
    path: string,
    body?: unknown,
    contentType?: string,
    headers?: Record<string, string>,
  ): Promise<Response>;
  json<T = Record<string, unknown>>(
    method: string,
    path: string,
    body?: unknown,
    contentType?: string,
  ): Promise<{ status: number; body: T }>;
  kubectl(...args: string[]): Promise<{ ok: boolean; out: string; err: string }>;
  kubectlSpawn(...args: string[]): ChildProcess;
  stop(): Promise<void>;
}

export async function startTestServer(
  opts: Partial<ApiServerOptions> = {},
  dir = mkdtempSync(join(tmpdir(), 'btx-apiserver-')),
): Promise<TestServer> {
  const server = await startApiServer({ token: TOKEN, dataDir: join(dir, 'data'), persist: false, ...opts });
  const kubeconfigPath = join(dir, 'kubeconfig');
  writeFileSync(kubeconfigPath, kubeconfigYaml(server.url, server.token));
  const env = { ...process.env, HOME: dir, KUBECONFIG: kubeconfigPath };
  const run = promisify(execFile);
  const req = (
    method: string,
    path: string,
    body?: unknown,
    contentType = 'application/json',
    headers: Record<string, string> = {},
  ) =>
    fetch(`${server.url}${path}`, {
      method,
      headers: {
        Authorization: `Bearer ${TOKEN}`,
        ...(body !== undefined ? { 'Content-Type': contentType } : {}),
        ...headers,
      },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
  return {
    server,
    dir,
    kubeconfigPath,
    req,
    async json<T>(method: string, path: string, body?: unknown, contentType?: string) {
      const res = await req(method, path, body, contentType);
      const text = await res.text();
      return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
    },
    async kubectl(...args: string[]) {
      try {
        const { stdout, stderr } = await run(kubectlPath(), args, { env, timeout: 30_000 });
        return { ok: true, out: stdout, err: stderr };
      } catch (e) {
        const x = e as { stdout?: string; stderr?: string };
        return { ok: false, out: x.stdout ?? '', err: x.stderr ?? '' };
      }
    },
    kubectlSpawn(...args: string[]) {
      return spawn(kubectlPath(), args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    },
    async stop() {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Polls until `check` returns a truthy value, or fails after `timeoutMs`. */
export async function eventually<T>(
  check: () => T | Promise<T>,
  what: string,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
