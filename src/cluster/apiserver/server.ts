// The embedded Kubernetes API server: HTTP on loopback with a bearer token, serving discovery,
// OpenAPI, built-in resources and custom resources from CRDs. See docs/cluster.md ("API server").
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { timingSafeEqual } from 'node:crypto';
import { errorFields, log } from '../../util/log.js';
import { Api } from './registry/genericRegistry.js';
import { apiGroup, apiGroupList, apiResourceList, apiVersions, versionInfo } from './discovery/discovery.js';
import { ApiError, notAcceptable, unauthorized } from './apimachinery/errors.js';
import { parseAccept, sendBytes, sendError, sendJson, sendText } from './http/codec.js';
import { openApiV2, openApiV3Document, openApiV3Root } from './discovery/openapi.js';
import { encodeOpenApiV2, wantsOpenApiV2Protobuf } from './discovery/openapiV2Protobuf.js';
import { loadSnapshot, Snapshotter } from './storage/snapshot.js';
import { handleResource, parseResourcePath, type RouteContext } from './http/routes.js';
import { forgetServingCert, loadOrCreateServingCert, rememberServingCert } from './http/tls.js';
import { DEFAULT_WATCH_BUFFER_BYTES, type Watcher } from './watch/watcher.js';

export interface ApiServerOptions {
  host?: string /* default 127.0.0.1 */;
  port?: number /* 0 = random */;
  token: string;
  dataDir: string;
  /** Change events kept for watch replay (default 10,000); older resourceVersions get 410 Gone. */
  watchHistory?: number;
  /** Unread bytes after which a watch stream is dropped (default 16 MiB). */
  watchBufferBytes?: number;
  /** Snapshot objects to dataDir/apiserver.json and load them at start (default true). */
  persist?: boolean;
}

export interface ApiServer {
  url: string;
  port: number;
  token: string;
  stop(): Promise<void>;
  /** The same port over TLS (kubectl sends tokens only over TLS); `kubeconfigYaml` uses it. */
  httpsUrl: string;
  /** PEM of the self-signed serving certificate, the CA for `httpsUrl`. */
  caCert: string;
}

/** In-process access for tests and benchmarks: the storage and a way to drop every watch. */
export interface ApiServerInternals {
  api: Api;
  /** Ends every open watch stream as if the server had timed them out; returns how many. */
  closeWatches(): number;
}

const internals = new WeakMap<ApiServer, ApiServerInternals>();

export function serverInternals(server: ApiServer): ApiServerInternals {
  const i = internals.get(server);
  if (!i) throw new Error('not an API server started in this process');
  return i;
}

const PUBLIC_PATHS = new Set(['/healthz', '/livez', '/readyz', '/version']);

function authorized(req: IncomingMessage, expected: Buffer): boolean {
  const header = req.headers.authorization ?? '';
  if (!header.startsWith('Bearer ')) return false;
  const given = Buffer.from(header.slice('Bearer '.length).trim());
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** Caches a document until the set of served resources changes. */
function cachedByRegistry<T>(api: Api, build: () => T): () => T {
  let version = -1;
  let value: T;
  return () => {
    if (version !== api.registry.version) {
      value = build();
      version = api.registry.version;
    }
    return value;
  };
}

export async function startApiServer(opts: ApiServerOptions): Promise<ApiServer> {
  const api = new Api(opts.watchHistory);
  const persist = opts.persist ?? true;
  if (persist) loadSnapshot(api.store, opts.dataDir);
  api.bootstrap();
  const snapshotter = persist ? new Snapshotter(api.store, opts.dataDir) : undefined;
  const watchers = new Set<Watcher>();
  const ctx: RouteContext = {
    api,
    dataDir: opts.dataDir,
    watchers,
    watchBufferBytes: opts.watchBufferBytes ?? DEFAULT_WATCH_BUFFER_BYTES,
  };
  const token = Buffer.from(opts.token);
  const host = opts.host ?? '127.0.0.1';
  let address = '';
  const v3Root = cachedByRegistry(api, () => openApiV3Root(api.registry));
  const v2 = cachedByRegistry(api, () => openApiV2(api.registry));
  const v2Protobuf = cachedByRegistry(api, () => encodeOpenApiV2(v2()));
  const v3Docs = new Map<string, unknown>();
  let v3DocsVersion = -1;

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    if (PUBLIC_PATHS.has(path) && req.method === 'GET') {
      if (path === '/version') return sendJson(res, 200, versionInfo());
      return sendText(res, 200, 'ok');
    }
    if (!authorized(req, token)) throw unauthorized();
    const parts = path
      .split('/')
      .filter((p) => p !== '')
      .map(decodeURIComponent);
    if (parts[0] === 'api') {
      if (parts.length === 1) return sendJson(res, 200, apiVersions(address));
      if (parts.length === 2) {
        const list = apiResourceList(api.registry, '', parts[1]!);
        if (list) return sendJson(res, 200, list);
      } else {
        const rp = parseResourcePath('', parts[1]!, parts.slice(2));
        if (rp) return handleResource(ctx, rp, url, req, res);
      }
    } else if (parts[0] === 'apis') {
      if (parts.length === 1) return sendJson(res, 200, apiGroupList(api.registry));
      if (parts.length === 2) {
        const group = apiGroup(api.registry, parts[1]!);
        if (group) return sendJson(res, 200, group);
      } else if (parts.length === 3) {
        const list = apiResourceList(api.registry, parts[1]!, parts[2]!);
        if (list) return sendJson(res, 200, list);
      } else {
        const rp = parseResourcePath(parts[1]!, parts[2]!, parts.slice(3));
        if (rp) return handleResource(ctx, rp, url, req, res);
      }
    } else if (parts[0] === 'openapi') {
      if (parts[1] === 'v2' && parts.length === 2) {
        // kubectl asks for the protobuf form when it validates a kind the v3 documents lack.
        if (wantsOpenApiV2Protobuf(req.headers.accept))
          return sendBytes(res, 200, 'application/octet-stream', v2Protobuf());
        if (parseAccept(req.headers.accept) === 'unacceptable') throw notAcceptable();
        return sendJson(res, 200, v2());
      }
      if (parts[1] === 'v3') {
        if (parts.length === 2) return sendJson(res, 200, v3Root());
        if (v3DocsVersion !== api.registry.version) {
          v3Docs.clear();
          v3DocsVersion = api.registry.version;
        }
        const gv = parts.slice(2).join('/');
        let doc = v3Docs.get(gv);
        if (doc === undefined) {
          const [group, version] =
            parts[2] === 'api' ? ['', parts[3] ?? ''] : [parts[3] ?? '', parts[4] ?? ''];
          doc = openApiV3Document(api.registry, group, version);
          if (doc) v3Docs.set(gv, doc);
        }
        if (doc) return sendJson(res, 200, doc);
      }
    }
    throw new ApiError(404, 'NotFound', 'the server could not find the requested resource', {});
  }

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    route(req, res).catch((err: unknown) => {
      if (err instanceof ApiError) return sendError(res, err);
      log.error('apiserver request failed', { method: req.method, url: req.url, ...errorFields(err) });
      sendError(
        res,
        new ApiError(
          500,
          'InternalError',
          `Internal error occurred: ${(err as Error)?.message ?? String(err)}`,
        ),
      );
    });
  };
  // One port, both protocols: the first byte of a TLS connection is a handshake record (0x16).
  const tlsCert = loadOrCreateServingCert(opts.dataDir);
  const plain = createServer(handler);
  const secure = createTlsServer({ cert: tlsCert.cert, key: tlsCert.key }, handler);
  for (const s of [plain, secure]) s.keepAliveTimeout = 60_000;
  const sockets = new Set<Socket>();
  const listener = createNetServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.once('data', (first) => {
      socket.pause();
      socket.unshift(first);
      (first[0] === 0x16 ? secure : plain).emit('connection', socket);
      process.nextTick(() => socket.resume());
    });
  });
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(opts.port ?? 0, host, () => resolve());
  });
  const port = (listener.address() as AddressInfo).port;
  address = `${host}:${port}`;
  const hostPart = host.includes(':') ? `[${host}]` : host;
  const url = `http://${hostPart}:${port}`;
  rememberServingCert(url, tlsCert.cert);
  log.info('apiserver listening', { url });
  const server: ApiServer = {
    url,
    port,
    token: opts.token,
    httpsUrl: `https://${hostPart}:${port}`,
    caCert: tlsCert.cert,
    async stop() {
      for (const w of [...watchers]) w.close();
      snapshotter?.stop();
      forgetServingCert(url);
      await new Promise<void>((resolve) => {
        listener.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
    },
  };
  internals.set(server, {
    api,
    closeWatches() {
      const open = [...watchers];
      for (const w of open) w.close();
      return open.length;
    },
  });
  return server;
}
