// API server benchmark: with 2,000 live pods and 20 watchers, sustained writes per second (a mix
// of creates and merge-patch updates over HTTP, 16 in flight) and the latency from a write being
// sent to its event reaching each watcher (p50/p99), with persistence off and on; then one write in
// flight, where that latency is the fan-out alone rather than queueing behind other writes.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startApiServer } from '../src/cluster/apiserver/server.js';

const LIVE = 2_000;
const WATCHERS = 20;
const IN_FLIGHT = 16;
const SECONDS = 5;

interface Result {
  writesPerSecond: number;
  p50: number;
  p99: number;
  deliveries: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function run(persist: boolean, inFlight: number): Promise<Result> {
  const dir = mkdtempSync(join(tmpdir(), 'btx-bench-apiserver-'));
  const token = 'bench';
  const server = await startApiServer({ token, dataDir: dir, persist });
  const headers = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' };
  const pods = `${server.url}/api/v1/namespaces/default/pods`;
  const pod = (name: string) =>
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, labels: { app: 'bench' } },
      spec: { containers: [{ name: 'main', image: 'busybox', command: ['sleep', '1'] }] },
    });
  const pool = async (count: number, fn: (i: number) => Promise<void>): Promise<void> => {
    let next = 0;
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (next < count) await fn(next++);
      }),
    );
  };
  await pool(LIVE, async (i) => {
    const res = await fetch(pods, { method: 'POST', headers, body: pod(`live-${i}`) });
    await res.arrayBuffer();
  });

  // Watchers: each measures, per event, the time since the write that caused it was sent.
  const latencies: number[] = [];
  const controllers: AbortController[] = [];
  let measuring = false;
  await Promise.all(
    Array.from({ length: WATCHERS }, async () => {
      const ctrl = new AbortController();
      controllers.push(ctrl);
      const res = await fetch(`${pods}?watch=true&resourceVersion=${LIVE + 10_000_000}`, {
        headers,
        signal: ctrl.signal,
      });
      void (async () => {
        const decoder = new TextDecoder();
        let buf = '';
        try {
          for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
            buf += decoder.decode(chunk, { stream: true });
            let nl: number;
            while ((nl = buf.indexOf('\n')) >= 0) {
              const line = buf.slice(0, nl);
              buf = buf.slice(nl + 1);
              if (!measuring) continue;
              const m = /"bench\/sent":"([\d.]+)"/.exec(line);
              if (m) latencies.push(performance.now() - Number(m[1]));
            }
          }
        } catch {
          // aborted at the end
        }
      })();
    }),
  );

  measuring = true;
  let writes = 0;
  let created = 0;
  const deadline = performance.now() + SECONDS * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async (_, worker) => {
      let k = 0;
      while (performance.now() < deadline) {
        const sent = performance.now().toFixed(3);
        let res: Response;
        if (k++ % 4 === 0) {
          const name = `new-${worker}-${created++}`;
          const body = JSON.parse(pod(name));
          body.metadata.annotations = { 'bench/sent': sent };
          res = await fetch(pods, { method: 'POST', headers, body: JSON.stringify(body) });
        } else {
          const name = `live-${Math.floor(Math.random() * LIVE)}`;
          res = await fetch(`${pods}/${name}`, {
            method: 'PATCH',
            headers: { ...headers, 'Content-Type': 'application/merge-patch+json' },
            body: JSON.stringify({ metadata: { annotations: { 'bench/sent': sent } } }),
          });
        }
        await res.arrayBuffer();
        if (res.ok) writes++;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  await new Promise((r) => setTimeout(r, 200));
  measuring = false;
  for (const c of controllers) c.abort();
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
  latencies.sort((a, b) => a - b);
  return {
    writesPerSecond: writes / elapsed,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    deliveries: latencies.length,
  };
}

export async function bench(): Promise<void> {
  console.log(
    `apiserver: ${LIVE} live pods, ${WATCHERS} watchers, ${SECONDS}s of 1:3 create:patch; latency = write sent -> event read by each watcher`,
  );
  const cases: [persist: boolean, inFlight: number][] = [
    [false, IN_FLIGHT],
    [true, IN_FLIGHT],
    [false, 1],
  ];
  for (const [persist, inFlight] of cases) {
    const r = await run(persist, inFlight);
    console.log(
      `apiserver (persistence ${persist ? 'on, ' : 'off,'} ${String(inFlight).padStart(2)} in flight): ${r.writesPerSecond.toFixed(0)} writes/s; watch latency p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms over ${r.deliveries} deliveries (${(r.deliveries / WATCHERS).toFixed(0)} events x ${WATCHERS} watchers)`,
    );
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.env.BTX_LOG_LEVEL ??= 'warn';
  await bench();
}
