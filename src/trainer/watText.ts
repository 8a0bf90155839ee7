// Small builders of WebAssembly text for our generated kernels (gemmWat.ts, rowKernelsWat.ts): the
// generators are TypeScript so that tile sizes and variants are parameters, and these keep their
// loops readable.

export const range = (n: number) => [...Array(n).keys()];
export const get = (name: string) => `(local.get $${name})`;
export const set = (name: string, value: string) => `(local.set $${name} ${value})`;
export const add = (a: string, b: string) => `(i32.add ${a} ${b})`;
export const mul = (a: string, b: string) => `(i32.mul ${a} ${b})`;
export const i32 = (v: number) => `(i32.const ${v})`;
export const min = (a: string, b: string) => `(select ${a} ${b} (i32.lt_s ${a} ${b}))`;

/** `for (name = from; name < end; name += step) body`, as a block and a loop. */
export const forLoop = (name: string, from: string, end: string, step: string, ...body: string[]) => `
  ${set(name, from)}
  (block $${name}_done (loop $${name}_next
    (br_if $${name}_done (i32.ge_s ${get(name)} ${end}))
    ${body.join('\n')}
    ${set(name, add(get(name), step))}
    (br $${name}_next)))`;
