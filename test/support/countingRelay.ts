// A TCP relay in front of a local port that counts the connections it accepts: what a server sees of
// a client's connection reuse (kept connections vs one per call).
import { connect, createServer, type AddressInfo, type Server } from 'node:net';

export interface CountingRelay {
  server: Server;
  port: number;
  connections: () => number;
}

/** A TCP relay to 127.0.0.1:`port` that counts the connections it accepts. */
export async function countingRelay(port: number): Promise<CountingRelay> {
  let connections = 0;
  const server = createServer((client) => {
    connections++;
    const upstream = connect(port, '127.0.0.1');
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, connections: () => connections };
}
