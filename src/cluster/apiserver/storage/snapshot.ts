// Optional persistence: a debounced JSON snapshot of every object in dataDir/apiserver.json (0600 in
// a 0700 data dir: it holds every Secret), loaded at start so `btx cluster` keeps its state across
// restarts. Watch history is not kept: a client's old resourceVersion is answered with 410 Gone after
// a restart, and it relists.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { log, errorFields } from '../../../util/log.js';
import type { KObject } from '../apimachinery/meta.js';
import type { Store } from './store.js';
import { ensurePrivateDir, writePrivateFile } from '../../privateFiles.js';

const DEBOUNCE_MS = 500;

interface Snapshot {
  resourceVersion: number;
  objects: { key: string; object: KObject }[];
}

export function snapshotPath(dataDir: string): string {
  return join(dataDir, 'apiserver.json');
}

export function loadSnapshot(store: Store, dataDir: string): boolean {
  // It holds every Secret: only this user may read it (and a data dir from before is closed now).
  ensurePrivateDir(dataDir, [snapshotPath(dataDir)]);
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
      ensurePrivateDir(this.dataDir);
      writePrivateFile(path, JSON.stringify(snap));
    } catch (err) {
      log.warn('apiserver snapshot failed', { path, ...errorFields(err) });
    }
  }

  stop(): void {
    this.store.onChange = undefined;
    this.flush();
  }
}
