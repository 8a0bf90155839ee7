// Regenerates data/samples/{math,code,prose}: three small, clearly different domains for tests,
// the local demo and the BTX end-to-end script. Deterministic: run it again and nothing changes
// (as long as the pinned packages in node_modules are the same versions).
//
//   math:  arithmetic word problems and equations, generated here from a seeded PRNG.
//   code:  JavaScript sources of permissively licensed packages in node_modules (see NOTICE).
//   prose: English paragraphs of those packages' READMEs, with code blocks, tables and markup removed.
//
// Usage: node --import tsx scripts/generate-sample-corpora.ts
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mulberry32 } from '../src/trainer/prng.js';

const root = join(import.meta.dirname, '..');
const out = join(root, 'data', 'samples');
const TARGET_BYTES = 160 * 1024;

function pkgInfo(name: string): { license: string; version: string } {
  const pkg = JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')) as {
    license: string;
    version: string;
  };
  return { license: pkg.license, version: pkg.version };
}

function math(): string {
  const rand = mulberry32(20240312);
  const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
  const names = ['Ada', 'Ben', 'Chen', 'Dara', 'Eli', 'Fatima', 'Gus', 'Hana'];
  const things = ['apples', 'marbles', 'books', 'coins', 'stamps', 'pencils'];
  const paragraphs: string[] = [];
  let size = 0;
  while (size < TARGET_BYTES) {
    const lines: string[] = [];
    for (let i = 0; i < 6; i++) {
      const a = int(2, 99);
      const b = int(2, 99);
      switch (int(0, 5)) {
        case 0:
          lines.push(`${a} + ${b} = ${a + b}`);
          break;
        case 1:
          lines.push(`${a + b} - ${b} = ${a}`);
          break;
        case 2:
          lines.push(`${a % 13} * ${b % 13} = ${(a % 13) * (b % 13)}`);
          break;
        case 3:
          lines.push(`${(a % 12) * ((b % 12) + 1)} / ${(b % 12) + 1} = ${a % 12}`);
          break;
        case 4: {
          const n = names[int(0, names.length - 1)]!;
          const t = things[int(0, things.length - 1)]!;
          lines.push(`${n} has ${a} ${t} and gets ${b} more. Now ${n} has ${a + b} ${t}.`);
          break;
        }
        default:
          lines.push(`Q: What is ${a} plus ${b}? A: ${a + b}.`);
      }
    }
    const p = lines.join('\n');
    paragraphs.push(p);
    size += p.length + 2;
  }
  return `${paragraphs.join('\n\n')}\n`;
}

const CODE_SOURCES: { pkg: string; dir: string }[] = [
  { pkg: 'yaml', dir: 'dist/compose' },
  { pkg: 'winston', dir: 'lib/winston' },
  { pkg: 'prom-client', dir: 'lib' },
  { pkg: 'semver', dir: 'classes' },
];

function jsFiles(dir: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(dir).sort()) {
    const full = join(dir, entry);
    if (statSync(full).isDirectory()) found.push(...jsFiles(full));
    else if (entry.endsWith('.js')) found.push(full);
  }
  return found;
}

function code(): Map<string, string> {
  const files = new Map<string, string>();
  let size = 0;
  for (const { pkg, dir } of CODE_SOURCES) {
    for (const file of jsFiles(join(root, 'node_modules', pkg, dir))) {
      if (size >= TARGET_BYTES) return files;
      const text = readFileSync(file, 'utf8');
      const rel = file.slice(join(root, 'node_modules').length + 1).replace(/[/\\]/g, '__');
      files.set(`${rel}.txt`, text);
      size += text.length;
    }
  }
  return files;
}

const PROSE_PACKAGES = ['winston', 'prom-client', 'debug', 'semver', 'ws', 'logform', 'picomatch', 'ajv'];

function proseParagraphs(markdown: string): string[] {
  const withoutCode = markdown.replace(/```[\s\S]*?```/g, '').replace(/<[^>]+>/g, '');
  return withoutCode
    .split(/\n\s*\n/)
    .map((p) =>
      p
        .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1') // links and images -> their text
        .replace(/`([^`]*)`/g, '$1')
        .replace(/[*_#>]+/g, '')
        .replace(/\s+/g, ' ')
        .trim(),
    )
    .filter((p) => {
      if (p.length < 80 || p.includes('|')) return false;
      const letters = p.replace(/[^A-Za-z ]/g, '').length;
      return letters / p.length > 0.9; // English sentences, not code or lists of symbols
    });
}

function prose(): string {
  const paragraphs: string[] = [];
  let size = 0;
  for (const pkg of PROSE_PACKAGES) {
    const dir = join(root, 'node_modules', pkg);
    const readme = readdirSync(dir).find((f) => f.toLowerCase() === 'readme.md');
    if (!readme) continue;
    for (const p of proseParagraphs(readFileSync(join(dir, readme), 'utf8'))) {
      if (size >= TARGET_BYTES) break;
      paragraphs.push(p);
      size += p.length + 2;
    }
  }
  return `${paragraphs.join('\n\n')}\n`;
}

rmSync(out, { recursive: true, force: true });
for (const d of ['math', 'code', 'prose']) mkdirSync(join(out, d), { recursive: true });
writeFileSync(join(out, 'math', 'arithmetic.txt'), math());
for (const [name, text] of code()) writeFileSync(join(out, 'code', name), text);
writeFileSync(join(out, 'prose', 'readmes.txt'), prose());
const notice = [
  'Sample corpora for btx-operator (generated by scripts/generate-sample-corpora.ts).',
  '',
  'math/: generated arithmetic, no third-party text.',
  'code/: unmodified JavaScript sources from these npm packages (licence, version):',
  ...CODE_SOURCES.map(({ pkg, dir }) => {
    const i = pkgInfo(pkg);
    return `  ${pkg} ${i.version} (${i.license}): ${dir}`;
  }),
  'prose/: English paragraphs extracted from the README files of these npm packages:',
  ...PROSE_PACKAGES.map((pkg) => {
    const i = pkgInfo(pkg);
    return `  ${pkg} ${i.version} (${i.license})`;
  }),
  'Each package is distributed under the licence named; see its repository for the full text.',
  '',
].join('\n');
writeFileSync(join(out, 'NOTICE'), notice);
console.log(`wrote ${out}`);
