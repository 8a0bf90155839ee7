import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { IncomingMessage, Server } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { PROGRESS_ANNOTATION } from '../../src/api/stageContract.js';
import { ProgressReporter } from '../../src/trainer/progress.js';
import { tempDir } from './trainerFixtures.js';

const tmp = tempDir('progress');
after(tmp.cleanup);

interface Seen {
  method: string;
  url: string;
  contentType: string;
  body: unknown;
}

/** A stand-in API server answering every request with `status`; records what it received. */
async function apiServer(status: number): Promise<{ server: Server; seen: Seen[]; kubeconfig: string }> {
  const seen: Seen[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    let data = '';
    req.on('data', (c: Buffer) => (data += c.toString()));
    req.on('end', () => {
      seen.push({
        method: req.method!,
        url: req.url!,
        contentType: req.headers['content-type'] ?? '',
        body: JSON.parse(data || 'null'),
      });
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify(
          status === 200
            ? { kind: 'Pod', metadata: { name: 'p' } }
            : { kind: 'Status', reason: 'Forbidden', code: status },
        ),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const kubeconfig = join(tmp.dir, `kubeconfig-${port}`);
  writeFileSync(
    kubeconfig,
    `apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "http://127.0.0.1:${port}", insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`,
  );
  return { server, seen, kubeconfig };
}

const env = { BTX_POD_NAME: 'trainer-0', BTX_POD_NAMESPACE: 'ns1' };

test('progress annotation: merge-patches btx.ai/progress on its own pod, throttled, with the newest checkpoint', async () => {
  const { server, seen, kubeconfig } = await apiServer(200);
  process.env.KUBECONFIG = kubeconfig;
  try {
    const p = new ProgressReporter('expert', 60_000, env);
    p.report({ step: 1, totalSteps: 10, loss: 5, tokensPerSecond: 100 });
    p.report({ step: 2, totalSteps: 10, loss: 4.5, tokensPerSecond: 100 }); // throttled away
    p.checkpointWritten('/btx/runs/ns1/r/experts/math/step-2');
    p.report({ step: 2, totalSteps: 10, loss: 4.5, tokensPerSecond: 100 }, true);
    await p.flush();
    assert.equal(seen.length, 2);
    assert.equal(seen[0]!.method, 'PATCH');
    assert.equal(seen[0]!.url.split('?')[0], '/api/v1/namespaces/ns1/pods/trainer-0');
    assert.equal(seen[0]!.contentType, 'application/merge-patch+json');
    const body = seen[1]!.body as { metadata: { annotations: Record<string, string> } };
    const progress = JSON.parse(body.metadata.annotations[PROGRESS_ANNOTATION]!) as Record<string, unknown>;
    assert.equal(progress.step, 2);
    assert.equal(progress.checkpoint, '/btx/runs/ns1/r/experts/math/step-2');
  } finally {
    delete process.env.KUBECONFIG;
    server.close();
  }
});

test('progress annotation: stops patching after the first refusal (403) and never throws into training', async () => {
  const { server, seen, kubeconfig } = await apiServer(403);
  process.env.KUBECONFIG = kubeconfig;
  try {
    const p = new ProgressReporter('expert', 0, env);
    for (let step = 1; step <= 5; step++)
      p.report({ step, totalSteps: 5, loss: 1, tokensPerSecond: 1 }, true);
    await p.flush();
    assert.equal(seen.length, 1);
  } finally {
    delete process.env.KUBECONFIG;
    server.close();
  }
});
