// Optional persistence: a debounced JSON snapshot of every object in dataDir/apiserver.json, loaded
// at start so `btx cluster` keeps its state across restarts. Watch history is not kept: a client's
// old resourceVersion is answered with 410 Gone after a restart, and it relists.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { log, errorFields } from '../../util/log.js';
import type { KObject } from './meta.js';
import type { Store } from './store.js';

const DEBOUNCE_MS = 500;

interface Snapshot {
  resourceVersion: number;
  objects: { key: string; object: KObject }[];
}

export function snapshotPath(dataDir: string): string {
  return join(dataDir, 'apiserver.json');
}

export function loadSnapshot(store: Store, dataDir: string): boolean {
  let text: string;
  try {
    text = readFileSync(snapshotPath(dataDir), 'utf8');
  } catch {
    return false;
  }
  const snap = JSON.parse(text) as Snapshot;
  store.load(snap.resourceVersion, snap.objects);
  return true;
}

export class Snapshotter {
  private timer: NodeJS.Timeout | undefined;
  private dirty = false;

  constructor(
    private readonly store: Store,
    private readonly dataDir: string,
  ) {
    store.onChange = () => this.schedule();
  }

  private schedule(): void {
    this.dirty = true;
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, DEBOUNCE_MS);
    this.timer.unref();
  }

  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.dirty) return;
    this.dirty = false;
    const objects: Snapshot['objects'] = [];
    for (const key of this.store.keys())
      for (const object of this.store.list(key)) objects.push({ key, object });
    const snap: Snapshot = { resourceVersion: this.store.currentRv(), objects };
    const path = snapshotPath(this.dataDir);
    try {
      mkdirSync(this.dataDir, { recursive: true });
      writeFileSync(`${path}.tmp`, JSON.stringify(snap));
      renameSync(`${path}.tmp`, path);
    } catch (err) {
      log.warn('apiserver snapshot failed', { path, ...errorFields(err) });
    }
  }

  stop(): void {
    this.store.onChange = undefined;
    this.flush();
  }
}
