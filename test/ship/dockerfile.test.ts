// What can be checked of the Dockerfile without building it: the stages and their targets, non-root users,
// production-only dependencies, the files it copies, and base images pinned to versions.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../support/tools.js';
import { copyArgs, execForm, parseDockerfile, type Stage } from './dockerfile.js';

const text = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8');
const dockerfile = parseDockerfile(text);
const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as {
  engines: { node: string };
  optionalDependencies: Record<string, string>;
};

function stage(name: string): Stage {
  const s = dockerfile.stages.find((st) => st.name === name);
  assert.ok(s, `stage ${name} exists`);
  return s;
}

function last(s: Stage, keyword: string): string | undefined {
  return s.instructions.filter((i) => i.keyword === keyword).at(-1)?.args;
}

function runs(s: Stage): string {
  return s.instructions
    .filter((i) => i.keyword === 'RUN')
    .map((i) => i.args)
    .join('\n');
}

/** Stage names reachable from a target through FROM and COPY --from. */
function ancestry(name: string, seen = new Set<string>()): Set<string> {
  if (seen.has(name)) return seen;
  seen.add(name);
  const s = stage(name);
  const names = new Set(dockerfile.stages.map((st) => st.name));
  if (names.has(s.from)) ancestry(s.from, seen);
  for (const ins of s.instructions) {
    if (ins.keyword !== 'COPY') continue;
    const from = copyArgs(ins.args).flags.from;
    if (from !== undefined && names.has(from)) ancestry(from, seen);
  }
  return seen;
}

test('the Dockerfile has build, operator and trainer stages, and the targets use the build output', () => {
  const names = dockerfile.stages.map((s) => s.name);
  for (const n of ['build', 'operator', 'trainer'])
    assert.ok(names.includes(n), `stage ${n} in ${names.join(', ')}`);
  assert.equal(new Set(names).size, names.length, 'stage names are unique');
  assert.match(runs(stage('build')), /npm ci\b/);
  assert.match(runs(stage('build')), /npm run build/);
  for (const target of ['operator', 'trainer']) {
    assert.ok(ancestry(target).has('build'), `${target} copies from build`);
    const copies = stage(target)
      .instructions.filter((i) => i.keyword === 'COPY')
      .map((i) => copyArgs(i.args));
    assert.ok(
      copies.some((c) => c.flags.from === 'build' && c.sources.includes('/src/dist')),
      `${target} copies dist/ from build`,
    );
  }
  // bin/btx.js runs dist/cli/main.js: the build config must put it there.
  const build = JSON.parse(readFileSync(join(repoRoot, 'tsconfig.build.json'), 'utf8')) as {
    compilerOptions: { rootDir: string; outDir: string };
  };
  assert.deepEqual([build.compilerOptions.rootDir, build.compilerOptions.outDir], ['src', 'dist']);
  assert.match(readFileSync(join(repoRoot, 'bin/btx.js'), 'utf8'), /\.\.\/dist\/cli\/main\.js/);
  assert.ok(existsSync(join(repoRoot, 'src/cli/main.ts')));
});

test('the final stages run as a numeric non-root user', () => {
  for (const target of ['operator', 'trainer']) {
    const user = last(stage(target), 'USER');
    assert.ok(user, `${target} sets USER`);
    const [uid, gid] = user.split(':');
    assert.match(uid!, /^\d+$/, `${target} USER is numeric, so runAsNonRoot can verify it`);
    assert.notEqual(Number(uid), 0, `${target} USER is not root`);
    if (gid !== undefined) assert.notEqual(Number(gid), 0, `${target} group is not root`);
    // Nothing after USER switches back.
    const ins = stage(target).instructions;
    const userAt = ins.findLastIndex((i) => i.keyword === 'USER');
    assert.ok(!ins.slice(userAt + 1).some((i) => i.keyword === 'RUN'), `${target}: no RUN after USER`);
  }
});

test('both images start btx through node bin/btx.js, the operator image with `operator`', () => {
  assert.deepEqual(execForm(last(stage('operator'), 'ENTRYPOINT')!), ['node', 'bin/btx.js']);
  assert.deepEqual(execForm(last(stage('operator'), 'CMD')!), ['operator']);
  assert.deepEqual(execForm(last(stage('trainer'), 'ENTRYPOINT')!), ['node', 'bin/btx.js']);
  const exposed = last(stage('operator'), 'EXPOSE');
  assert.equal(exposed, '8080', 'the operator exposes the metrics port the chart uses');
});

test('the operator image carries production dependencies only, without optional native bindings', () => {
  const deps = [...ancestry('operator')].map((n) => runs(stage(n))).join('\n');
  const ci = deps.split('\n').filter((l) => /npm ci\b/.test(l) && /--omit=dev/.test(l));
  assert.ok(ci.length > 0, 'an `npm ci --omit=dev` feeds the operator');
  for (const line of ci) assert.match(line, /--omit=optional/);
  const copies = stage('operator')
    .instructions.filter((i) => i.keyword === 'COPY')
    .map((i) => copyArgs(i.args));
  const modules = copies.find((c) => c.sources.some((s) => s.endsWith('node_modules')));
  assert.ok(modules?.flags.from, 'node_modules come from a deps stage');
  assert.match(runs(stage(modules.flags.from)), /npm ci --omit=dev --omit=optional/);
});

test('the trainer image is CUDA 11 (>= 11.2) with cuDNN 8 and installs @tensorflow/tfjs-node-gpu with its script', () => {
  const from = stage('trainer').from;
  const m = /^nvidia\/cuda:(\d+)\.(\d+)\.(\d+)-cudnn(\d+)-(runtime|devel)-ubuntu(\d+\.\d+)$/.exec(from);
  assert.ok(m, `trainer base ${from} is an nvidia/cuda cuDNN image`);
  // libtensorflow 2.9.1 (tfjs-node-gpu 4.22) needs CUDA 11.2+ and cuDNN 8.1+, and the CUDA 11 sonames.
  assert.equal(Number(m[1]), 11);
  assert.ok(Number(m[2]) >= 2);
  assert.equal(Number(m[4]), 8);
  assert.equal(pkg.optionalDependencies['@tensorflow/tfjs-node-gpu'], '4.22.0');
  const deps = [...ancestry('trainer')].map((n) => runs(stage(n))).join('\n');
  assert.match(deps, /allow-scripts=@tensorflow\/tfjs-node-gpu/, 'its install script is allowed by name');
  assert.match(deps, /npm rebuild @tensorflow\/tfjs-node-gpu/, 'and run');
  assert.match(deps, /tfjs_binding\.node/, 'and the binding is checked to be there');
  assert.match(deps, /npm ci --omit=dev/);
  // Node comes from the same pinned image as the operator's.
  const copies = stage('trainer')
    .instructions.filter((i) => i.keyword === 'COPY')
    .map((i) => copyArgs(i.args));
  const nodeCopy = copies.find((c) => c.sources.includes('/usr/local/bin/node'));
  assert.ok(nodeCopy?.flags.from, 'node is copied from a Node image stage');
  assert.equal(stage(nodeCopy.flags.from).from, stage('operator').from);
});

test('every base image is pinned to a version tag, never latest, and Node is an LTS line the package supports', () => {
  const stageNames = new Set(dockerfile.stages.map((s) => s.name));
  const images = dockerfile.stages.map((s) => s.from).filter((f) => !stageNames.has(f));
  assert.ok(images.length >= 2);
  for (const image of images) {
    assert.doesNotMatch(image, /\$/, `${image}: every ARG resolved`);
    const tag = /:([^/@]+)$/.exec(image)?.[1];
    assert.ok(tag, `${image} has a tag`);
    assert.doesNotMatch(tag, /latest/);
    assert.match(tag, /^v?\d+\.\d+\.\d+/, `${image} is pinned to major.minor.patch`);
  }
  const node = images.find((i) => i.startsWith('node:'));
  assert.ok(node, 'a node: image');
  const [major, minor] = /^node:(\d+)\.(\d+)/.exec(node)!.slice(1).map(Number) as [number, number];
  assert.equal(major % 2, 0, 'an even (LTS) Node major');
  assert.match(node, /-slim$/, 'the slim variant');
  const [wantMajor, wantMinor] = /(\d+)\.(\d+)/.exec(pkg.engines.node)!.slice(1).map(Number) as [
    number,
    number,
  ];
  assert.ok(
    major > wantMajor || (major === wantMajor && minor >= wantMinor),
    `${node} satisfies ${pkg.engines.node}`,
  );
});

test('every file the Dockerfile copies from the context exists and is not excluded by .dockerignore', () => {
  const ignored = readFileSync(join(repoRoot, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  let checked = 0;
  for (const s of dockerfile.stages) {
    for (const ins of s.instructions) {
      if (ins.keyword === 'ADD') assert.fail(`line ${ins.line}: use COPY, not ADD`);
      if (ins.keyword !== 'COPY') continue;
      const { flags, sources } = copyArgs(ins.args);
      if (flags.from !== undefined) continue;
      for (const src of sources) {
        const path = src.replace(/^\.\//, '').replace(/\/$/, '');
        assert.ok(existsSync(join(repoRoot, path)), `line ${ins.line}: ${src} exists`);
        const top = path.split('/')[0]!;
        assert.ok(
          !ignored.includes(path) && !ignored.includes(top),
          `line ${ins.line}: ${src} is in the build context`,
        );
        checked++;
      }
    }
  }
  assert.ok(checked >= 6, `checked ${checked} sources`);
});
