// The embedded control plane for operator tests (test/support/controlPlane.ts) with the BTXRun CRD
// installed, and helpers to create runs and wait on them (every wait says what it waited for).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import type { ControlPlane, ControlPlaneOptions } from '../../src/cluster/controlPlane.js';
import { btxPodRuntime } from '../../src/cli/podRuntime.js';
import { btxRunCRD } from '../../src/api/crd.js';
import { byteTokenizerFiles } from '../../src/trainer/tokenizer.js';
import { GROUP, PLURAL, VERSION, type BTXRun } from '../../src/api/types.js';
import type { BTXRunSpecInput } from '../../src/api/defaults.js';
import { btxEntrypoint } from '../support/btx.js';
import { startTestControlPlane, type TestControlPlane } from '../support/controlPlane.js';
import { waitFor } from '../support/waitFor.js';

export type TestCluster = TestControlPlane & { plane: ControlPlane };

/**
 * The whole embedded control plane (test/support/controlPlane.ts) with the BTXRun CRD installed, POSTed
 * as plain JSON: client-node's typed serializer drops `x-kubernetes-*` keys (it knows them as
 * x_kubernetes_* attributes), which would prune spec.expert.template to {}. The project's pods run
 * btxEntrypoint() (under npm test, the CLI compiled for the run: test/support/btx.ts).
 */
export async function startCluster(opts: Partial<ControlPlaneOptions> = {}): Promise<TestCluster> {
  const c = await startTestControlPlane({
    name: 'operator',
    controllers: { ...btxPodRuntime(btxEntrypoint()), ...opts },
  });
  const res = await c.req('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', btxRunCRD());
  if (!res.ok) throw new Error(`CRD install failed: ${res.status} ${await res.text()}`);
  return { ...c, plane: c.plane! };
}

/**
 * What the tokenize stage needs on a run's volume: `/btx/data/<domain>.txt` (100 short lines each,
 * so about 10 are held out) for the given domains, and a seed folder `/btx/seed` holding the byte
 * tokenizer's files, as a seed checkpoint carries them. The tokenize Jobs then run the real CLI.
 */
export function writeTinyVolume(
  c: TestCluster,
  claim: string,
  domains: readonly string[],
  namespace = 'default',
): void {
  const root = join(c.dataDir, 'volumes', 'pvc', namespace, claim);
  mkdirSync(join(root, 'data'), { recursive: true });
  for (const d of domains) {
    const lines = Array.from({ length: 100 }, (_, i) => `${d} example ${i}: ${'abc'.repeat(1 + (i % 7))}`);
    writeFileSync(join(root, 'data', `${d}.txt`), `${lines.join('\n')}\n`);
  }
  mkdirSync(join(root, 'seed'), { recursive: true });
  for (const [file, bytes] of byteTokenizerFiles()) writeFileSync(join(root, 'seed', file), bytes);
}

/** A run over two domains (code, math) on the volume's seed, without the seed as an expert. */
export const TWO_DOMAINS: BTXRunSpecInput = {
  storage: { persistentVolumeClaim: { claimName: 'data' } },
  seed: { checkpoint: '/btx/seed' },
  domains: [
    { name: 'code', data: '/btx/data/code.txt' },
    { name: 'math', data: '/btx/data/math.txt' },
  ],
  mix: { includeSeedAsExpert: false },
};

export async function createRun(
  c: TestCluster,
  name: string,
  spec: BTXRunSpecInput,
  namespace = 'default',
): Promise<BTXRun> {
  return (await c.custom.createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace,
    plural: PLURAL,
    body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'BTXRun', metadata: { name, namespace }, spec },
  })) as BTXRun;
}

export async function getRun(c: TestCluster, name: string, namespace = 'default'): Promise<BTXRun> {
  return (await c.custom.getNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace,
    plural: PLURAL,
    name,
  })) as BTXRun;
}

export async function waitForRun(
  c: TestCluster,
  name: string,
  ok: (r: BTXRun) => boolean,
  what: string,
  timeoutMs = 60_000,
): Promise<BTXRun> {
  let last: BTXRun | undefined;
  try {
    return await waitFor(
      `${name}: ${what}`,
      async () => {
        last = await getRun(c, name);
        return ok(last) ? last : undefined;
      },
      timeoutMs,
    );
  } catch (err) {
    const pods = await c.core
      .listNamespacedPod({ namespace: 'default' })
      .catch(() => ({ items: [] as V1Pod[] }));
    const podLines = pods.items.map(
      (p) =>
        `${p.metadata?.name} ${p.status?.phase}${p.metadata?.deletionTimestamp ? ' (deleting)' : ''} ${JSON.stringify(p.status?.containerStatuses?.[0]?.state ?? {})}`,
    );
    throw new Error(
      `${(err as Error).message}; last status: ${JSON.stringify(last?.status)}; pods:\n${podLines.join('\n')}`,
      { cause: err },
    );
  }
}

export async function podsOf(c: TestCluster, run: string, namespace = 'default'): Promise<V1Pod[]> {
  const list = await c.core.listNamespacedPod({ namespace, labelSelector: `btx.ai/run=${run}` });
  return list.items;
}

/** The run's expert pods (not the pods of its tokenize and other Jobs). */
export async function expertPodsOf(c: TestCluster, run: string, namespace = 'default'): Promise<V1Pod[]> {
  const list = await c.core.listNamespacedPod({
    namespace,
    labelSelector: `btx.ai/run=${run},btx.ai/stage=expert`,
  });
  return list.items;
}

/**
 * A stage container that is done at once: writes a termination message, exits with the code
 * FAKE_EXIT_<DOMAIN>_<ATTEMPT> (or FAKE_EXIT_<DOMAIN>, else 0), sleeps forever for "sleep", and
 * succeeds after N ms for "after:N".
 */
export const FAKE_STAGE_SCRIPT = `
const fs = require('fs');
const env = process.env;
const domain = (env.BTX_DOMAIN || env.BTX_STAGE || '').toUpperCase().replace(/-/g, '_');
const code = env['FAKE_EXIT_' + domain + '_' + env.BTX_ATTEMPT] ?? env['FAKE_EXIT_' + domain] ?? '0';
if (code === 'sleep') { setInterval(() => {}, 1000); return; }
const finish = () => {
const paths = JSON.parse(env.BTX_LOCAL_PATHS || '{}');
const msg = { checkpoint: (env.BTX_OUTPUT || '/btx/out') + '/step-' + (env.BTX_STEPS || '1'), step: Number(env.BTX_STEPS || 1), loss: 1.5 };
if (paths['/dev/termination-log']) fs.writeFileSync(paths['/dev/termination-log'], JSON.stringify(msg));
  console.log('fake stage', domain, 'exit', code);
  process.exit(code.startsWith('after:') ? 0 : Number(code));
};
if (code.startsWith('after:')) setTimeout(finish, Number(code.slice(6)));
else finish();
`;

/** spec.expert.template making expert pods run FAKE_STAGE_SCRIPT with the given env. */
export function fakeExpertTemplate(env: Record<string, string> = {}) {
  return {
    spec: {
      containers: [
        {
          name: 'trainer',
          command: [process.execPath, '-e', `(() => {${FAKE_STAGE_SCRIPT}})()`],
          env: Object.entries(env).map(([name, value]) => ({ name, value })),
        },
      ],
    },
  };
}
