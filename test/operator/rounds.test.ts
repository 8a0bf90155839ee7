// plan() on a finished run whose spec.domains changes (src/operator/rounds.ts): appending a domain
// trains exactly one new expert and then mixes, finetunes and evaluates all experts again as round
// 2; removing one mixes again without it; every other change is refused naming the field.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BTXRunSpec, Condition, DomainSpec } from '../../src/api/types.js';
import type { Plan } from '../../src/operator/plan.js';
import { at, env, eventReasons, kinds, makeRun, World } from './fixtures.js';

const SEED = '/btx/runs/ml/demo/seed/step-4';
const LAW: DomainSpec = { name: 'law', data: '/btx/data/law.txt' };

const cond = (w: World, type: string): Condition | undefined =>
  w.run.status?.conditions?.find((c) => c.type === type);
const created = (p: Plan) =>
  p.actions.flatMap((a) =>
    a.kind === 'createPod' ? [a.pod.metadata?.name] : a.kind === 'createJob' ? [a.job.metadata?.name] : [],
  );

const eventMessages = (p: Plan, reason: string) =>
  p.actions.flatMap((a) => (a.kind === 'event' && a.reason === reason ? [a.message] : [])).join('\n');

const results1 = [{ model: 'btx', domain: 'code', loss: 1.5, perplexity: 4.48 }];
const routing1 = [{ domain: 'code', expert: 'code', share: 0.9 }];

/** Mix, finetune and eval Jobs of a round, finished in turn (the experts are done). */
function finishRound(w: World, suffix: string, results: object[], t: number): Plan {
  w.completeJob(`demo-mix${suffix}`, { checkpoint: `/mixed${suffix}` });
  w.step(at(t));
  w.completeJob(`demo-finetune${suffix}`, { checkpoint: `/finetuned${suffix}/step-2` });
  w.step(at(t + 1));
  w.completeJob(`demo-eval${suffix}`, { results, routing: routing1 });
  return w.step(at(t + 2));
}

/** A run that went through round 1 and Succeeded at t=202. */
function succeeded(overrides: Partial<BTXRunSpec> = {}): World {
  const w = new World(makeRun(overrides));
  w.throughExperts();
  const p = finishRound(w, '', results1, 200);
  assert.equal(p.status.phase, 'Succeeded');
  return w;
}

function setDomains(w: World, domains: DomainSpec[]): void {
  w.run = {
    ...w.run,
    spec: { ...w.run.spec, domains },
    metadata: { ...w.run.metadata, generation: (w.run.metadata.generation ?? 1) + 1 },
  };
}

function succeedExpert(w: World, pod: string, domain: string): void {
  w.setPod(pod, {
    phase: 'Succeeded',
    exitCode: 0,
    message: JSON.stringify({ checkpoint: `/btx/runs/ml/demo/experts/${domain}/step-6`, step: 6, loss: 2 }),
  });
}

test('appending a domain to a Succeeded run trains exactly one new expert, then mix, finetune and eval of all experts as round 2', () => {
  const w = succeeded();
  const before = structuredClone(w.run.status?.experts);
  const tokens = w.run.status?.tokenize?.tokens;
  setDomains(w, [...w.run.spec.domains, LAW]);
  const allCreated: (string | undefined)[] = [];
  // The new domain is tokenized first, into the folder the run's other shards are in.
  const roundStart = w.step(at(300));
  allCreated.push(...created(roundStart));
  assert.deepEqual(created(roundStart), ['demo-tokenize-law-1']);
  assert.equal(roundStart.status.phase, 'Tokenizing');
  assert.equal(env(w.job('demo-tokenize-law-1')).BTX_TOKENS, tokens);
  w.completeJob('demo-tokenize-law-1', World.tokenized('law'));
  let p = w.step(at(300));
  allCreated.push(...created(p));
  assert.deepEqual(created(p), ['demo-expert-law-1'], 'one new expert pod, nothing else');
  assert.equal(env(w.pod('demo-expert-law-1')).BTX_TOKENS, tokens);
  assert.equal(p.status.phase, 'TrainingExperts');
  assert.equal(p.status.round, 2);
  assert.deepEqual(p.status.rounds, [
    {
      round: 1,
      domains: ['code', 'math', 'prose'],
      checkpoint: '/finetuned/step-2',
      completionTime: at(202).toISOString(),
      results: results1,
      routing: routing1,
    },
  ]);
  assert.equal(p.status.results, undefined, 'the new round has no results yet');
  assert.equal(p.status.completionTime, undefined);
  assert.equal(p.status.mix, undefined);
  assert.equal(p.status.seed?.phase, 'Succeeded', 'the seed is not trained again');
  assert.deepEqual(
    p.status.startedWith?.domains.map((d) => d.name),
    ['code', 'math', 'prose', 'law'],
  );
  assert.deepEqual(p.status.experts?.slice(0, 3), before, 'existing experts and their checkpoints kept');
  assert.equal(p.status.expertsReady, '3/4');
  assert.equal(env(w.pod('demo-expert-law-1')).BTX_INPUT, SEED, 'branched from the same seed');
  assert.equal(env(w.pod('demo-expert-law-1')).BTX_OUTPUT, '/btx/runs/ml/demo/experts/law');
  assert.equal(cond(w, 'Succeeded')?.status, 'False');
  assert.equal(cond(w, 'Succeeded')?.reason, 'NewRound');
  assert.equal(cond(w, 'Mixed')?.status, 'False');
  assert.ok(eventReasons(roundStart).includes('RoundStarted'));
  assert.match(
    eventMessages(roundStart, 'RoundStarted'),
    /^round 2 started \(law appended: training its expert, then mixing all 4 experts again\)$/,
  );
  // Planned again before anything moved: nothing new.
  assert.deepEqual(created(w.step(at(301))), []);

  succeedExpert(w, 'demo-expert-law-1', 'law');
  p = w.step(at(310));
  allCreated.push(...created(p));
  assert.deepEqual(created(p), ['demo-mix-r2'], 'a new mix Job, not the round-1 one');
  const mix = env(w.job('demo-mix-r2'));
  assert.equal(
    mix.BTX_EXPERTS,
    ['code', 'math', 'prose', 'law'].map((d) => `/btx/runs/ml/demo/experts/${d}/step-6`).join(','),
  );
  assert.equal(mix.BTX_OUTPUT, '/btx/runs/ml/demo/rounds/2/mixed');
  w.completeJob('demo-mix-r2', { checkpoint: '/btx/runs/ml/demo/rounds/2/mixed' });
  p = w.step(at(311));
  allCreated.push(...created(p));
  const ft = env(w.job('demo-finetune-r2'));
  assert.equal(ft.BTX_INPUT, '/btx/runs/ml/demo/rounds/2/mixed');
  assert.equal(ft.BTX_OUTPUT, '/btx/runs/ml/demo/rounds/2/finetuned', 'never resumes round 1');
  assert.match(ft.BTX_DATA ?? '', /,law=\/btx\/data\/law\.txt$/);
  w.completeJob('demo-finetune-r2', { checkpoint: '/btx/runs/ml/demo/rounds/2/finetuned/step-2' });
  p = w.step(at(312));
  allCreated.push(...created(p));
  const ev = env(w.job('demo-eval-r2'));
  assert.match(ev.BTX_CHECKPOINTS ?? '', /^btx=\/btx\/runs\/ml\/demo\/rounds\/2\/finetuned\/step-2,seed=/);
  assert.match(ev.BTX_CHECKPOINTS ?? '', /,law=\/btx\/runs\/ml\/demo\/experts\/law\/step-6$/);
  assert.equal(ev.BTX_OUTPUT, '/btx/runs/ml/demo/rounds/2/eval');
  const results2 = [{ model: 'btx', domain: 'law', loss: 1.2, perplexity: 3.3 }];
  w.completeJob('demo-eval-r2', { results: results2, routing: routing1 });
  p = w.step(at(313));
  assert.equal(p.status.phase, 'Succeeded');
  assert.deepEqual(p.status.results, results2);
  assert.equal(p.status.rounds?.length, 1);
  assert.equal(cond(w, 'Succeeded')?.status, 'True');
  assert.ok(eventReasons(p).includes('RunSucceeded'));
  assert.deepEqual(allCreated, [
    'demo-tokenize-law-1',
    'demo-expert-law-1',
    'demo-mix-r2',
    'demo-finetune-r2',
    'demo-eval-r2',
  ]);
  // Round-1 Jobs are still there, untouched (owner references as ever).
  assert.ok(w.jobs.has('demo-mix') && w.jobs.has('demo-eval'));
  assert.equal(w.job('demo-mix-r2').metadata?.ownerReferences?.[0]?.uid, 'uid-1');
  // And it stays Succeeded.
  assert.deepEqual(w.step(at(400)).actions, []);
});

test('removing a domain from a Succeeded run mixes again without it and trains no expert', () => {
  const w = succeeded();
  setDomains(
    w,
    w.run.spec.domains.filter((d) => d.name !== 'math'),
  );
  let p = w.step(at(300));
  assert.deepEqual(created(p), ['demo-mix-r2']);
  assert.equal(kinds(p, 'createPod').length, 0);
  assert.equal(p.status.round, 2);
  assert.deepEqual(
    p.status.experts?.map((e) => e.name),
    ['code', 'prose'],
  );
  assert.equal(p.status.expertsReady, '2/2');
  assert.equal(
    env(w.job('demo-mix-r2')).BTX_EXPERTS,
    '/btx/runs/ml/demo/experts/code/step-6,/btx/runs/ml/demo/experts/prose/step-6',
  );
  assert.deepEqual(p.status.rounds?.[0]?.domains, ['code', 'math', 'prose']);
  assert.match(eventMessages(p, 'RoundStarted'), /math removed: mixing the 2 remaining experts again/);
  p = finishRound(w, '-r2', results1, 310);
  assert.equal(p.status.phase, 'Succeeded');
  assert.equal(env(w.job('demo-finetune-r2')).BTX_DATA, 'code=/btx/data/code.txt,prose=/btx/data/prose.txt');
  // Adding math back under its old name is refused: its checkpoints carry the name.
  setDomains(w, [...w.run.spec.domains, { name: 'math', data: '/btx/data/math2.txt' }]);
  p = w.step(at(400));
  assert.equal(p.status.phase, 'Succeeded');
  assert.deepEqual(created(p), []);
  assert.match(
    cond(w, 'SpecApplied')?.message ?? '',
    /^spec\.domains\[2\]\.name: math was a domain of round 1/,
  );
});

const refused: [string, (d: DomainSpec[]) => DomainSpec[], RegExp][] = [
  ['a reorder', (d) => [d[1]!, d[0]!, d[2]!], /^spec\.domains\[0\]\.(data|name): /],
  ['a rename', (d) => [d[0]!, { ...d[1]!, name: 'maths' }, d[2]!], /^spec\.domains\[1\]\.name: /],
  [
    'changed data of an existing domain',
    (d) => [d[0]!, { ...d[1]!, data: '/btx/x' }, d[2]!],
    /^spec\.domains\[1\]\.data: /,
  ],
  [
    'an append with a changed domain',
    (d) => [d[0]!, { ...d[1]!, steps: 9 }, d[2]!, LAW],
    /^spec\.domains\[1\]\.steps: /,
  ],
  ['a remove and an add at once', (d) => [d[0]!, d[1]!, LAW], /^spec\.domains\[2\]/],
];
for (const [what, change, field] of refused) {
  test(`${what} on a Succeeded run is refused naming the field; the run stays Succeeded`, () => {
    const w = succeeded();
    const original = w.run.spec.domains;
    const status = structuredClone(w.run.status);
    setDomains(w, change(original));
    const p = w.step(at(300));
    assert.equal(p.status.phase, 'Succeeded');
    assert.deepEqual(created(p), []);
    assert.equal(p.status.round, 1);
    const c = cond(w, 'SpecApplied');
    assert.equal(c?.status, 'False');
    assert.equal(c?.reason, 'ImmutableFieldChanged');
    assert.match(c?.message ?? '', field);
    assert.match(c?.message ?? '', /may append domains .* or remove domains/);
    assert.deepEqual(eventReasons(p), ['ImmutableFieldChanged']);
    assert.deepEqual(eventReasons(w.step(at(301))), [], 'one Event per change');
    setDomains(w, original);
    w.step(at(302));
    assert.equal(cond(w, 'SpecApplied')?.status, 'True');
    assert.deepEqual(w.run.status?.results, status?.results);
  });
}

test('changing another immutable field together with an append is refused naming that field', () => {
  const w = succeeded();
  w.run = {
    ...w.run,
    spec: {
      ...w.run.spec,
      domains: [...w.run.spec.domains, LAW],
      storage: { persistentVolumeClaim: { claimName: 'x' } },
    },
  };
  const p = w.step(at(300));
  assert.deepEqual(created(p), []);
  assert.match(cond(w, 'SpecApplied')?.message ?? '', /^spec\.storage\.persistentVolumeClaim\.claimName: /);
});

test('an append while the run is not Succeeded waits: refused naming spec.domains, then round 2 starts once round 1 Succeeded', () => {
  const w = new World(makeRun());
  w.throughExperts();
  setDomains(w, [...w.run.spec.domains, LAW]);
  let p = w.step(at(150));
  assert.equal(p.status.phase, 'Mixing');
  assert.deepEqual(created(p), []);
  const c = cond(w, 'SpecApplied');
  assert.equal(c?.reason, 'ImmutableFieldChanged');
  assert.match(c?.message ?? '', /^spec\.domains can change only once the run has Succeeded/);
  assert.deepEqual(
    p.status.experts?.map((e) => e.name),
    ['code', 'math', 'prose'],
  );
  // Round 1 finishes with the three experts it started with...
  assert.equal(env(w.job('demo-mix')).BTX_EXPERTS.split(',').length, 3);
  p = finishRound(w, '', results1, 200);
  assert.equal(p.status.phase, 'Succeeded');
  assert.deepEqual(created(p), []);
  // ...and the next plan starts round 2 from the spec that asked for law (level-triggered).
  p = w.step(at(300));
  assert.deepEqual(created(p), ['demo-tokenize-law-1'], 'round 2 starts by tokenizing law');
  assert.equal(cond(w, 'SpecApplied')?.status, 'True');
});

test('an invalid spec on a Succeeded run starts no round; it says why (InvalidSpec) and stays Succeeded', () => {
  const w = succeeded();
  setDomains(w, [...w.run.spec.domains, LAW]);
  const p = w.step(at(300), [
    { field: 'spec.domains[3].data', message: 'spec.domains[3].data: must be under /btx' },
  ]);
  assert.equal(p.status.phase, 'Succeeded');
  assert.deepEqual(created(p), []);
  assert.equal(cond(w, 'SpecApplied')?.reason, 'InvalidSpec');
  assert.match(
    cond(w, 'SpecApplied')?.message ?? '',
    /no new round started: spec\.domains\[3\]\.data: must be under/,
  );
});

test('a Failed run refuses a change of domains naming the field, and stays Failed', () => {
  const w = new World(makeRun());
  w.throughExperts();
  w.jobs.set('demo-mix', {
    ...w.job('demo-mix'),
    status: { conditions: [{ type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded' }] },
  });
  assert.equal(w.step(at(150)).status.phase, 'Failed');
  setDomains(w, [...w.run.spec.domains, LAW]);
  const p = w.step(at(160));
  assert.equal(p.status.phase, 'Failed');
  assert.deepEqual(created(p), []);
  assert.match(cond(w, 'SpecApplied')?.message ?? '', /^spec\.domains: the run has Failed/);
});

test('after ttlSecondsAfterFinished removed round 1 children, an append still trains one expert and mixes the kept checkpoints', () => {
  const w = succeeded({ ttlSecondsAfterFinished: 10 });
  w.step(at(1000));
  assert.equal(w.jobs.size, 0, 'the TTL took every Job');
  assert.deepEqual(
    [...w.pods.values()].filter((x) => x.metadata?.labels?.['btx.ai/stage'] === 'expert'),
    [],
    'and every expert pod',
  );
  w.pods.clear(); // the garbage collector takes the Jobs' pods
  setDomains(w, [...w.run.spec.domains, LAW]);
  let p = w.step(at(1001));
  assert.deepEqual(created(p), ['demo-tokenize-law-1'], 'only the new domain is tokenized');
  w.completeJob('demo-tokenize-law-1', World.tokenized('law'));
  p = w.step(at(1001));
  assert.deepEqual(created(p), ['demo-expert-law-1']);
  succeedExpert(w, 'demo-expert-law-1', 'law');
  p = w.step(at(1002));
  assert.deepEqual(created(p), ['demo-mix-r2']);
  assert.equal(env(w.job('demo-mix-r2')).BTX_EXPERTS.split(',').length, 4);
  p = finishRound(w, '-r2', results1, 1003);
  assert.equal(p.status.phase, 'Succeeded');
  assert.equal(p.status.completionTime, at(1005).toISOString());
  assert.equal(w.step(at(1006)).requeueAfterMs, 9000, 'the TTL counts again from the new finish');
});

test('a suspend in round 2 resumes with the round-2 Job names', () => {
  const w = succeeded();
  setDomains(w, w.run.spec.domains.slice(0, 2));
  w.step(at(300));
  assert.ok(w.jobs.has('demo-mix-r2'));
  w.run = { ...w.run, spec: { ...w.run.spec, suspend: true } };
  w.step(at(301));
  assert.equal(w.jobs.has('demo-mix-r2'), false);
  w.run = { ...w.run, spec: { ...w.run.spec, suspend: false } };
  const p = w.step(at(302));
  assert.deepEqual(created(p), ['demo-mix-r2-2']);
});

test("a round whose finetune reported no checkpoint records the folder that stage writes, not the mix's", () => {
  const w = succeeded();
  setDomains(w, w.run.spec.domains.slice(0, 2));
  w.step(at(300));
  w.completeJob('demo-mix-r2', { checkpoint: '/btx/runs/ml/demo/rounds/2/mixed' });
  w.step(at(301));
  w.completeJob('demo-finetune-r2', {});
  w.step(at(302));
  w.completeJob('demo-eval-r2', { results: results1 });
  assert.equal(w.step(at(303)).status.phase, 'Succeeded');
  setDomains(w, w.run.spec.domains.slice(0, 1));
  const p = w.step(at(400));
  assert.equal(p.status.round, 3);
  assert.deepEqual(
    p.status.rounds?.map((r) => r.checkpoint),
    ['/finetuned/step-2', '/btx/runs/ml/demo/rounds/2/finetuned'],
  );
});
