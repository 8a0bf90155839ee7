// /metrics (prom-client), /healthz (alive, watches not wedged), /readyz (caches synced; a standby
// replica is ready too: it is warm and can take over).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface Probes {
  registry: Registry;
  healthy(): boolean;
  ready(): boolean;
}

export async function startHttpServer(
  port: number,
  host: string,
  probes: Probes,
): Promise<{ address: string; url: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const plain = (code: number, body: string) => {
      res.writeHead(code, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(body);
    };
    if (path === '/metrics') {
      probes.registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': probes.registry.contentType });
          res.end(text);
        },
        () => plain(500, 'metrics failed\n'),
      );
    } else if (path === '/healthz' || path === '/livez') {
      if (probes.healthy()) plain(200, 'ok\n');
      else plain(500, 'watches failing\n');
    } else if (path === '/readyz') {
      if (probes.ready()) plain(200, 'ok\n');
      else plain(503, 'caches not synced\n');
    } else plain(404, 'not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const { address, port: bound } = server.address() as AddressInfo;
  const bracket = (h: string) => (h.includes(':') ? `[${h}]` : h);
  // `address` is where it listens (0.0.0.0: every interface, what the log must say); `url` is where
  // a client on this machine reaches it (the wildcard address is not one to connect to).
  const local = address === '0.0.0.0' ? '127.0.0.1' : address === '::' ? '::1' : address;
  return {
    address: `${bracket(address)}:${bound}`,
    url: `http://${bracket(local)}:${bound}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
