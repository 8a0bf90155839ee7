// `npm run bench`: every bench/<area>.ts that exports bench(), one after the other, so each prints
// its ratios measured side by side in the same run. `npm run bench -- mix trainer` picks areas.
import { readdirSync } from 'node:fs';
import { basename } from 'node:path';

const here = new URL('.', import.meta.url);
const wanted = process.argv.slice(2);
const areas = readdirSync(here)
  .filter((f) => f.endsWith('.ts') && f !== 'index.ts')
  .map((f) => basename(f, '.ts'))
  .filter((a) => wanted.length === 0 || wanted.includes(a))
  .sort();

for (const area of areas) {
  const mod = (await import(new URL(`${area}.ts`, here).href)) as { bench?: () => Promise<void> };
  if (typeof mod.bench !== 'function') continue;
  console.log(`\n=== ${area} ===`);
  const started = Date.now();
  await mod.bench();
  console.log(`(${area}: ${((Date.now() - started) / 1000).toFixed(1)} s)`);
}
