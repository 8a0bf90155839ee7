// Watch streams: newline-delimited JSON events over a chunked response. Initial state as synthetic
// ADDED events (no resourceVersion or "0"), replay from history (a known resourceVersion), 410 Gone
// as an ERROR event (a compacted one), bookmarks, timeouts, and selectors under which objects
// entering or leaving are seen as ADDED or DELETED. A watcher that does not read is dropped, so it
// never holds up the writers or the other watchers.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { KObject } from '../apimachinery/meta.js';
import type { ResourceInfo } from '../registry/resources.js';
import type { FieldMatcher, LabelMatcher } from '../apimachinery/selectors.js';
import type { EventType, Store, StoreEvent, WatchSink } from '../storage/store.js';
import { toView } from '../registry/conversion.js';

/** Default bytes a watcher may leave unread before it is dropped. */
export const DEFAULT_WATCH_BUFFER_BYTES = 16 * 1024 * 1024;
const BOOKMARK_INTERVAL_MS = 10_000;

export interface WatchRequest {
  info: ResourceInfo;
  key: string;
  version: string;
  namespace: string | undefined;
  labels: LabelMatcher;
  fields: FieldMatcher | undefined;
  resourceVersion: string;
  allowBookmarks: boolean;
  sendInitialEvents: boolean | undefined;
  timeoutSeconds: number | undefined;
  /** Unread bytes after which the watcher is dropped. */
  maxBuffered: number;
  /** Present when the client asked for Table rows (kubectl get -w). */
  table?: (objects: KObject[]) => unknown;
}

function line(type: string, object: unknown): string {
  return `{"type":${JSON.stringify(type)},"object":${JSON.stringify(object)}}\n`;
}

export class Watcher implements WatchSink {
  private closed = false;
  private timers: NodeJS.Timeout[] = [];

  constructor(
    private readonly store: Store,
    private readonly req: WatchRequest,
    private readonly res: ServerResponse,
    private readonly onClose: (w: Watcher) => void,
  ) {}

  start(httpReq: IncomingMessage): void {
    const { req, res, store } = this;
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' });
    res.flushHeaders();
    httpReq.on('close', () => this.close());
    res.on('error', () => this.close());
    const rv = req.resourceVersion;
    let replay: StoreEvent[] = [];
    const initial = rv === '' || rv === '0' || req.sendInitialEvents === true;
    if (!initial) {
      const n = Number(rv);
      const events = Number.isFinite(n) ? store.eventsSince(req.key, n) : 'expired';
      if (events === 'expired') {
        this.write(
          line('ERROR', {
            kind: 'Status',
            apiVersion: 'v1',
            metadata: {},
            status: 'Failure',
            message: `too old resource version: ${rv} (${store.currentRv()})`,
            reason: 'Expired',
            code: 410,
          }),
        );
        this.close();
        return;
      }
      replay = events;
    }
    // Subscribing and replaying in one tick: no write can slip in between.
    store.subscribe(req.key, this);
    if (initial) {
      for (const obj of store.list(req.key, req.info.namespaced ? req.namespace : undefined)) {
        if (this.matches(obj)) this.send('ADDED', obj);
      }
      if (req.allowBookmarks) this.bookmark(req.sendInitialEvents === true);
    } else {
      for (const ev of replay) this.deliver(ev);
    }
    if (req.allowBookmarks) {
      const t = setInterval(() => this.bookmark(false), BOOKMARK_INTERVAL_MS);
      t.unref();
      this.timers.push(t);
    }
    // Without timeoutSeconds the real server still ends a watch after 30-60 minutes.
    const timeout = req.timeoutSeconds ?? 1800 * (1 + Math.random());
    const t = setTimeout(() => this.close(), timeout * 1000);
    t.unref();
    this.timers.push(t);
  }

  private matches(obj: KObject): boolean {
    const { namespace, labels, fields, info } = this.req;
    if (info.namespaced && namespace !== undefined && obj.metadata.namespace !== namespace) return false;
    if (!labels(obj.metadata.labels)) return false;
    return !fields || fields(obj);
  }

  deliver(ev: StoreEvent): void {
    if (this.closed) return;
    const now = this.matches(ev.object);
    const before = ev.prev ? this.matches(ev.prev) : false;
    let type: EventType;
    let object = ev.object;
    if (ev.type === 'MODIFIED') {
      if (now && before) type = 'MODIFIED';
      else if (now) type = 'ADDED';
      else if (before) {
        // Leaving the selector: the old content, at the new resourceVersion.
        type = 'DELETED';
        object = {
          ...ev.prev!,
          metadata: { ...ev.prev!.metadata, resourceVersion: ev.object.metadata.resourceVersion },
        };
      } else return;
    } else {
      if (!now) return;
      type = ev.type;
    }
    if (type === ev.type && !this.req.table) {
      // The common case: one serialization per event and view, shared by all watchers.
      const lines = (ev.lines ??= new Map());
      let l = lines.get(this.req.version);
      if (l === undefined)
        lines.set(this.req.version, (l = line(type, toView(this.req.info, this.req.version, object))));
      this.write(l);
    } else this.send(type, object);
  }

  private send(type: string, obj: KObject): void {
    const view = toView(this.req.info, this.req.version, obj);
    this.write(line(type, this.req.table ? this.req.table([view]) : view));
  }

  private bookmark(initialEventsEnd: boolean): void {
    const metadata: Record<string, unknown> = { resourceVersion: String(this.store.currentRv()) };
    if (initialEventsEnd) metadata.annotations = { 'k8s.io/initial-events-end': 'true' };
    const apiVersion = this.req.info.group ? `${this.req.info.group}/${this.req.version}` : this.req.version;
    this.write(line('BOOKMARK', { kind: this.req.info.kind, apiVersion, metadata }));
  }

  private corked = false;

  private write(chunk: string): void {
    if (this.closed) return;
    // Events written in one tick leave in one syscall.
    if (!this.corked) {
      this.corked = true;
      this.res.cork();
      process.nextTick(() => {
        this.corked = false;
        this.res.uncork();
      });
    }
    this.res.write(chunk);
    if (this.res.writableLength > this.req.maxBuffered) {
      // A slow reader: drop it rather than buffer without bound. It will re-watch.
      this.res.destroy();
      this.close();
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.store.unsubscribe(this.req.key, this);
    if (!this.res.destroyed) this.res.end();
    this.onClose(this);
  }
}
