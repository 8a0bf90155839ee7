// GET pods/{name}/log: the kubelet writes each container's output to a file (src/cluster/podLogs.ts);
// this serves it, with tailLines, limitBytes, previous, and follow (new bytes until the container
// terminates or restarts, the pod goes, or the client leaves).
import { open, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { containerLogPath } from '../../../podLogs.js';
import { badRequest } from '../../apimachinery/errors.js';
import { isObject, type KObject } from '../../apimachinery/meta.js';

const FOLLOW_POLL_MS = 100;

export interface LogQuery {
  container?: string;
  follow: boolean;
  previous: boolean;
  tailLines?: number;
  limitBytes?: number;
}

type O = Record<string, unknown>;

function containerStatus(pod: KObject, container: string): O | undefined {
  const status = isObject(pod.status) ? pod.status : {};
  for (const list of ['containerStatuses', 'initContainerStatuses']) {
    for (const cs of Array.isArray(status[list]) ? status[list] : [])
      if (isObject(cs) && cs.name === container) return cs;
  }
  return undefined;
}

/** The container whose logs are asked for, as the real server resolves and words it. */
export function resolveContainer(pod: KObject, requested: string | undefined): string {
  const spec = isObject(pod.spec) ? pod.spec : {};
  const names = (list: unknown): string[] =>
    Array.isArray(list) ? list.filter(isObject).map((c) => String(c.name)) : [];
  const containers = names(spec.containers);
  const init = names(spec.initContainers);
  const name = pod.metadata.name;
  if (requested) {
    if (!containers.includes(requested) && !init.includes(requested))
      throw badRequest(`container ${requested} is not valid for pod ${name}`);
    return requested;
  }
  if (containers.length === 1) return containers[0]!;
  throw badRequest(
    `a container name must be specified for pod ${name}, choose one of: [${containers.join(' ')}]${init.length ? ` or one of the init containers: [${init.join(' ')}]` : ''}`,
  );
}

function tail(text: Buffer, lines: number): Buffer {
  if (lines <= 0) return Buffer.alloc(0);
  let end = text.length;
  if (end > 0 && text[end - 1] === 0x0a) end--;
  let count = 0;
  for (let i = end - 1; i >= 0; i--) {
    if (text[i] === 0x0a && ++count === lines) return text.subarray(i + 1);
  }
  return text;
}

export async function serveLogs(
  dataDir: string,
  initial: KObject,
  q: LogQuery,
  getPod: () => KObject | undefined,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const container = resolveContainer(initial, q.container);
  const ns = initial.metadata.namespace!;
  const name = initial.metadata.name!;
  const cs = containerStatus(initial, container);
  const restarts = typeof cs?.restartCount === 'number' ? cs.restartCount : 0;
  let restart = restarts;
  if (q.previous) {
    if (!cs || restarts === 0)
      throw badRequest(`previous terminated container "${container}" in pod "${name}" not found`);
    restart = restarts - 1;
  }
  const path = containerLogPath(dataDir, ns, name, initial.metadata.uid!, container, restart);
  let size = 0;
  try {
    size = (await stat(path)).size;
  } catch {
    const state = cs && isObject(cs.state) ? cs.state : {};
    if (!cs || isObject(state.waiting)) {
      const reason =
        isObject(state.waiting) && state.waiting.reason ? String(state.waiting.reason) : 'ContainerCreating';
      throw badRequest(`container "${container}" in pod "${name}" is waiting to start: ${reason}`);
    }
  }
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Cache-Control': 'no-cache, private' });
  let sent = 0;
  const limit = q.limitBytes ?? Infinity;
  const send = (chunk: Buffer): boolean => {
    const room = limit - sent;
    const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
    sent += part.length;
    if (part.length) res.write(part);
    return sent < limit;
  };
  let offset = 0;
  if (size > 0) {
    const fh = await open(path, 'r');
    try {
      const buf = Buffer.alloc(size);
      await fh.read(buf, 0, size, 0);
      offset = size;
      const first = q.tailLines !== undefined ? tail(buf, q.tailLines) : buf;
      if (!send(first)) return void res.end();
    } finally {
      await fh.close();
    }
  }
  if (!q.follow) return void res.end();
  let gone = false;
  req.on('close', () => (gone = true));
  const terminated = (): boolean => {
    const pod = getPod();
    if (!pod || pod.metadata.uid !== initial.metadata.uid) return true;
    const now = containerStatus(pod, container);
    if (!now) return false;
    if (typeof now.restartCount === 'number' && now.restartCount !== restart) return true;
    return isObject(now.state) && isObject(now.state.terminated);
  };
  while (!gone) {
    const done = terminated();
    let newSize = offset;
    try {
      newSize = (await stat(path)).size;
    } catch {
      // not written yet
    }
    if (newSize > offset) {
      const fh = await open(path, 'r');
      try {
        const buf = Buffer.alloc(newSize - offset);
        await fh.read(buf, 0, buf.length, offset);
        offset = newSize;
        if (!send(buf)) break;
      } finally {
        await fh.close();
      }
      continue;
    }
    if (done) break;
    await new Promise((r) => setTimeout(r, FOLLOW_POLL_MS));
  }
  res.end();
}
