// The operator started with exactly the arguments the chart's Deployment gives it runs: it serves
// /healthz, /readyz and /metrics on the chart's port, takes its Lease in the release namespace, reconciles
// a run, and every request it makes to the API server is allowed by the RBAC the chart grants it.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { btxEntrypoint } from '../support/btx.js';
import { repoRoot } from '../support/tools.js';
import { helmTemplate, type Manifest } from './deployManifests.js';
import { startRecordingProxy, writePlainKubeconfig } from './recordingProxy.js';
import { startTestControlPlane } from '../support/controlPlane.js';
import { waitFor } from '../support/waitFor.js';

type Rule = { apiGroups: string[]; resources: string[]; verbs: string[] };

const LEASES_IN_OPS = '/apis/coordination.k8s.io/v1/namespaces/ops/leases';
const RUN_IN_ML = '/apis/btx.ai/v1alpha1/namespaces/ml/btxruns/llama-btx';
type Request = { verb: string; group: string; resource: string; namespace?: string; path: string };

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** What an API request asks for, in RBAC terms; undefined for discovery and other non-resource URLs. */
function toRequest(line: string): Request | undefined {
  const [method, rawPath] = line.split(' ', 2) as [string, string];
  const url = new URL(rawPath, 'http://x');
  const parts = url.pathname.split('/').filter(Boolean);
  let group: string;
  let rest: string[];
  if (parts[0] === 'api' && parts.length >= 3) {
    group = '';
    rest = parts.slice(2);
  } else if (parts[0] === 'apis' && parts.length >= 4) {
    group = parts[1]!;
    rest = parts.slice(3);
  } else return undefined;
  let namespace: string | undefined;
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  const [resource, name, sub] = rest as [string, string | undefined, string | undefined];
  const watch = url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1';
  const verb =
    method === 'GET'
      ? name === undefined
        ? watch
          ? 'watch'
          : 'list'
        : 'get'
      : method === 'POST'
        ? 'create'
        : method === 'PUT'
          ? 'update'
          : method === 'PATCH'
            ? 'patch'
            : method === 'DELETE'
              ? name === undefined
                ? 'deletecollection'
                : 'delete'
              : method.toLowerCase();
  return { verb, group, resource: sub ? `${resource}/${sub}` : resource, namespace, path: line };
}

function allows(rules: Rule[], r: Request): boolean {
  return rules.some(
    (rule) =>
      rule.apiGroups.includes(r.group) && rule.resources.includes(r.resource) && rule.verbs.includes(r.verb),
  );
}

function rulesOf(objects: Manifest[], kind: string, name: string, namespace?: string): Rule[] {
  const o = objects.find(
    (m) => m.kind === kind && m.metadata.name === name && m.metadata.namespace === namespace,
  );
  assert.ok(o, `${kind} ${namespace ?? ''}/${name} rendered`);
  return (o as Manifest & { rules: Rule[] }).rules;
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

for (const mode of ['cluster-wide', 'watchNamespaces'] as const) {
  test(`the operator runs with the chart's args (${mode}) and every API request it makes is allowed by the chart's RBAC`, async () => {
    const c = await startTestControlPlane({ name: 'ship' });
    const proxy = await startRecordingProxy(c.url, c.token);
    const kubectl = c.kubectl;
    const operatorConfig = join(c.dir, 'kubeconfig-operator');
    writePlainKubeconfig(operatorConfig, proxy.url);
    let child: ChildProcess | undefined;
    let output = '';
    try {
      const port = await freePort();
      const values = ['--set', `metrics.port=${port}`];
      if (mode === 'watchNamespaces') values.push('--set', 'watchNamespaces={ml}');
      const objects = helmTemplate(values, 'btx-operator', 'ops');
      const deployment = objects.find((o) => o.kind === 'Deployment') as Manifest & {
        spec: {
          template: { spec: { containers: { args: string[]; env: { name: string; value: string }[] }[] } };
        };
      };
      const container = deployment.spec.template.spec.containers[0]!;
      assert.equal(container.args[0], 'operator');

      await c.createNamespaces(['ops', 'ml']);
      await kubectl(['apply', '-f', join(repoRoot, 'crds/btx.ai_btxruns.yaml')]);
      await kubectl(['wait', '--for=condition=Established', '--timeout=30s', 'crd/btxruns.btx.ai']);
      await kubectl(['apply', '-n', 'ml', '-f', join(repoRoot, 'examples/btxrun-gpu.yaml')]);

      const env: NodeJS.ProcessEnv = { ...process.env, POD_NAMESPACE: 'ops' };
      for (const e of container.env) env[e.name] = e.value;
      // The CLI as the image runs it (compiled; under npm test the copy compiled for the run).
      const [node, ...entry] = btxEntrypoint() as [string, ...string[]];
      child = spawn(node, [...entry, ...container.args, '--kubeconfig', operatorConfig], {
        cwd: repoRoot,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (output += d.toString()));

      const base = `http://127.0.0.1:${port}`;
      await waitFor('/healthz', async () => ((await fetch(`${base}/healthz`)).ok ? true : undefined), 45_000);
      await waitFor('/readyz', async () => ((await fetch(`${base}/readyz`)).ok ? true : undefined), 45_000);
      // The waits poll with the harness's client (one kept connection), not a kubectl process a poll.
      await waitFor(
        'the Lease in the release namespace',
        async () => (await c.json<{ items: unknown[] }>('GET', LEASES_IN_OPS)).body.items.length > 0,
        45_000,
      );
      await waitFor(
        'the run to be reconciled',
        async () => {
          const run = await c.json<{ status?: { phase?: string } }>('GET', RUN_IN_ML);
          return run.body.status?.phase ? run.body.status.phase : undefined;
        },
        45_000,
      );
      // The first stage is one tokenize Job per domain; with no Job controller here the test finishes
      // them itself (as long ago as the grace for late pod statuses), so the experts' pods follow.
      const tokenizeJobs = await waitFor(
        'the tokenize Jobs',
        async () => {
          const jobs = await c.batch.listNamespacedJob({ namespace: 'ml' });
          const names = jobs.items.map((j) => `job.batch/${j.metadata?.name}`);
          return names.filter((n) => n.includes('-tokenize-')).length === 3 ? names : undefined;
        },
        45_000,
      );
      const complete = {
        status: {
          conditions: [{ type: 'Complete', status: 'True' }],
          completionTime: '2020-01-01T00:00:00Z',
        },
      };
      for (const job of tokenizeJobs)
        await kubectl([
          'patch',
          job,
          '-n',
          'ml',
          '--subresource=status',
          '--type=merge',
          '-p',
          JSON.stringify(complete),
        ]);
      await waitFor(
        'expert pods',
        async () => (await c.core.listNamespacedPod({ namespace: 'ml' })).items.length > 0,
        45_000,
      );
      const metrics = await (await fetch(`${base}/metrics`)).text();
      assert.match(metrics, /^btx_run_phase\{/m);
    } catch (err) {
      throw new Error(`${(err as Error).message}\noperator output:\n${output.slice(-4000)}`, { cause: err });
    } finally {
      if (child) await stopProcess(child);
      await proxy.close();
      await c.stop();
    }

    const objects = helmTemplate(
      mode === 'watchNamespaces' ? ['--set', 'watchNamespaces={ml}'] : [],
      'btx-operator',
      'ops',
    );
    const operatorRules =
      mode === 'watchNamespaces'
        ? rulesOf(objects, 'Role', 'btx-operator', 'ml')
        : rulesOf(objects, 'ClusterRole', 'btx-operator');
    const leaseRules = rulesOf(objects, 'Role', 'btx-operator-leader-election', 'ops');
    const requests = proxy.requests.map(toRequest).filter((r): r is Request => r !== undefined);
    assert.ok(requests.length > 5, `the operator made requests: ${proxy.requests.join('\n')}`);
    const denied = requests.filter((r) => {
      if (r.namespace === 'ops' && allows(leaseRules, r)) return false;
      if (mode === 'watchNamespaces' && r.namespace !== 'ml') return true; // only a Role in ml
      return !allows(operatorRules, r);
    });
    assert.deepEqual(
      [
        ...new Set(
          denied.map((r) => `${r.verb} ${r.group}/${r.resource} in ${r.namespace ?? '(cluster)'}: ${r.path}`),
        ),
      ],
      [],
      'requests the chart RBAC would deny',
    );
    const seen = new Set(requests.map((r) => `${r.verb} ${r.group}/${r.resource}`));
    for (const need of ['watch btx.ai/btxruns', 'create /pods', 'create coordination.k8s.io/leases']) {
      assert.ok(seen.has(need), `the operator did ${need} (seen: ${[...seen].sort().join(', ')})`);
    }
  });
}
