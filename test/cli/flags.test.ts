// The one flag parser (src/cli/flags.ts) and the rule it gives every subcommand: a mistake is one
// plain line on stderr and exit status 2; --help prints the same layout everywhere.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { COMMANDS } from '../../src/cli/commands.js';
import { type CommandSpec, helpText, parseFlags, UsageError } from '../../src/cli/flags.js';
import { LAUNCHER, runBtxInProcess, runBtxProcess } from '../support/btx.js';

/** Every way to reach a flag parser: each command, and each stage of `btx train`. */
const INVOCATIONS = Object.entries(COMMANDS).flatMap(([name, c]) =>
  c.subcommands ? [[name], ...c.subcommands.map((s) => [name, s])] : [[name]],
);

const SAMPLE: CommandSpec = {
  name: 'btx sample',
  usage: 'btx sample [flags]',
  about: 'A command for these tests.',
  flags: [
    { name: 'steps', value: 'N', env: 'BTX_STEPS', help: 'steps' },
    { name: 'rate', value: 'X', help: 'no variable' },
    { name: 'domain', short: 'd', value: 'NAME', env: 'BTX_DOMAINS', repeatable: true, help: 'domains' },
    { name: 'freeze', env: 'BTX_FREEZE', help: 'a switch' },
    { name: 'router', value: 'TYPE', help: 'topK | switch' },
  ],
};

function parse(argv: string[], env: NodeJS.ProcessEnv = {}) {
  const f = parseFlags(SAMPLE, argv, env);
  assert.ok(f !== 'help');
  return f;
}

test('every btx subcommand: an unknown flag exits 2 with one plain line naming it, nothing else', async () => {
  for (const words of INVOCATIONS) {
    const r = await runBtxInProcess([...words, '--bogus']);
    const command = `btx ${words[0]}`;
    assert.equal(r.code, 2, `${words.join(' ')}: ${r.stderr}`);
    assert.equal(r.stdout, '', words.join(' '));
    assert.equal(r.stderr, `${command}: unknown flag '--bogus' (see ${command} --help)\n`);
  }
});

test('bin/btx.js: a usage error is the exit status 2 and one line, with no log line', async () => {
  const r = await runBtxProcess(['operator', '--bogus'], {}, 60_000, LAUNCHER);
  assert.equal(r.code, 2);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, "btx operator: unknown flag '--bogus' (see btx operator --help)\n");
});

test('every btx subcommand: --help prints usage, the flags and -h, --help, and exits 0', async () => {
  for (const words of INVOCATIONS) {
    const r = await runBtxInProcess([...words, '--help']);
    assert.equal(r.code, 0, `${words.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr, '', words.join(' '));
    assert.match(r.stdout, new RegExp(`^usage: btx ${words[0]}\\b`), words.join(' '));
    assert.match(r.stdout, /^flags( \(a flag wins over its environment variable\))?:$/m, words.join(' '));
    assert.match(r.stdout, /^ {2}-h, --help {2,}.*this help$/m, words.join(' '));
  }
});

test('btx train without a known stage is a usage error too', async () => {
  const none = await runBtxInProcess(['train']);
  const bad = await runBtxInProcess(['train', 'pretrain']);
  assert.equal(none.code, 2);
  assert.equal(none.stderr, 'btx train: give a stage: seed, expert or finetune (see btx train --help)\n');
  assert.equal(bad.code, 2);
  assert.equal(
    bad.stderr,
    "btx train: unknown stage 'pretrain': seed, expert or finetune (see btx train --help)\n",
  );
});

test('a flag wins over its variable; the variable fills in; an empty variable is unset', () => {
  const f = parse(['--steps', '7'], { BTX_STEPS: '5', BTX_FREEZE: '' });
  assert.equal(f.number('steps', 1), 7);
  assert.equal(parse([], { BTX_STEPS: '5' }).number('steps', 1), 5);
  assert.equal(parse([], { BTX_STEPS: '' }).number('steps', 1), 1);
  assert.equal(f.has('freeze'), false);
  assert.equal(parse(['--steps=9']).number('steps', 1), 9);
});

test('a repeatable flag collects each use; its variable is a comma-separated list', () => {
  assert.deepEqual(parse(['--domain', 'a', '-d', 'b'], { BTX_DOMAINS: 'x' }).list('domain'), ['a', 'b']);
  assert.deepEqual(parse([], { BTX_DOMAINS: ' x, y ,,' }).list('domain'), ['x', 'y']);
  assert.deepEqual(parse([]).list('domain'), []);
  assert.throws(
    () => parse([]).requiredList('domain'),
    /^UsageError: --domain \(or BTX_DOMAINS\) is required$/,
  );
  assert.deepEqual(parse(['-d', 'math=/m', '-d', 'code=/c']).named('domain'), [
    { name: 'math', value: '/m' },
    { name: 'code', value: '/c' },
  ]);
  assert.throws(() => parse(['-d', 'math']).named('domain'), /--domain 'math' must be NAME=VALUE/);
});

test('a switch takes no value on the command line; its variable is true|false|1|0|yes|no', () => {
  assert.equal(parse(['--freeze']).boolean('freeze', false), true);
  assert.equal(parse([], { BTX_FREEZE: 'false' }).boolean('freeze', true), false);
  assert.equal(parse([], { BTX_FREEZE: 'YES' }).boolean('freeze', false), true);
  assert.equal(parse([]).boolean('freeze', true), true);
  assert.throws(
    () => parse([], { BTX_FREEZE: 'maybe' }).boolean('freeze', false),
    /--freeze must be true or false, got 'maybe'/,
  );
  assert.throws(
    () => parse(['--freeze=no']),
    /^UsageError: --freeze takes no value \(see btx sample --help\)$/,
  );
});

test('every mistake is a UsageError naming the flag', () => {
  const cases: [string[], RegExp][] = [
    [['--bogus'], /^unknown flag '--bogus' \(see btx sample --help\)$/],
    [['-z'], /^unknown flag '-z' \(see btx sample --help\)$/],
    [['--steps'], /^--steps needs a value \(see btx sample --help\)$/],
    [['--steps', '--rate', '1'], /^--steps needs a value/],
    [['--steps='], /^--steps needs a value$/],
    [['extra'], /^unexpected argument 'extra' \(see btx sample --help\)$/],
  ];
  for (const [argv, message] of cases) {
    assert.throws(
      () => parse(argv),
      (err: unknown) => err instanceof UsageError && message.test(err.message),
      argv.join(' '),
    );
  }
});

test('numbers and choices are checked against their rule', () => {
  assert.equal(parse(['--rate', '2.5']).optionalNumber('rate'), 2.5);
  assert.equal(parse([]).optionalNumber('rate'), undefined);
  assert.throws(
    () => parse(['--steps', '1.5']).number('steps', 1, { integer: true }),
    /--steps must be an integer, got '1.5'/,
  );
  assert.throws(
    () => parse(['--steps', '0']).number('steps', 1, { integer: true, min: 1 }),
    /^UsageError: --steps must be an integer >= 1, got '0'$/,
  );
  assert.throws(
    () => parse(['--rate', '7']).number('rate', 1, { min: 0, max: 1 }),
    /--rate must be a number >= 0 and <= 1, got '7'/,
  );
  assert.throws(() => parse(['--rate', ' ']).number('rate', 1), /--rate must be a number, got ' '/);
  assert.equal(parse(['--router', 'TOPK']).oneOf('router', ['topK', 'switch']), 'topK');
  assert.throws(
    () => parse(['--router', 'top2']).oneOf('router', ['topK', 'switch']),
    /--router must be one of topK, switch, got 'top2'/,
  );
  assert.throws(() => parse([]).required('steps'), /^UsageError: --steps \(or BTX_STEPS\) is required$/);
  assert.throws(() => parse([]).required('rate'), /^UsageError: --rate is required$/);
});

test('-h and --help win over anything else on the line', () => {
  assert.equal(parseFlags(SAMPLE, ['--steps', '3', '-h'], {}), 'help');
  assert.equal(parseFlags(SAMPLE, ['--help'], {}), 'help');
});

test('the help layout: usage, about, one aligned row per flag with its variable, then -h, --help', () => {
  assert.equal(
    helpText(SAMPLE),
    [
      'usage: btx sample [flags]',
      '',
      'A command for these tests.',
      '',
      'flags (a flag wins over its environment variable):',
      '      --steps N          BTX_STEPS    steps',
      '      --rate X                        no variable',
      '  -d, --domain NAME ...  BTX_DOMAINS  domains',
      '      --freeze           BTX_FREEZE   a switch',
      '      --router TYPE                   topK | switch',
      '  -h, --help                          this help',
      '',
    ].join('\n'),
  );
});
