// A plain-HTTP proxy in front of the embedded API server that adds the bearer token and records every
// request, so a test can hold what a client really asked for against the RBAC the chart grants it.
import { writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordingProxy {
  url: string;
  /** Every request forwarded, as `METHOD /path?query`. */
  requests: string[];
  close(): Promise<void>;
}

/** Listen on 127.0.0.1 and forward to the API server's plain-HTTP `target` with `token`. */
export async function startRecordingProxy(target: string, token: string): Promise<RecordingProxy> {
  const upstream = new URL(target);
  const proxy: RecordingProxy = { url: '', requests: [], close: async () => {} };
  const server: Server = createServer((req, res) => {
    proxy.requests.push(`${req.method} ${req.url}`);
    const up = request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, authorization: `Bearer ${token}`, host: upstream.host },
      },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        res.flushHeaders(); // a watch sends headers long before its first event
        r.pipe(res);
      },
    );
    up.on('error', (err) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`recording proxy: ${err.message}`);
    });
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return proxy;
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
