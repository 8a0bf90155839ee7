// Backend choice: tfjs-node-gpu > tfjs-node > wasm > cpu, or the one BTX_BACKEND names.
// The native bindings are optionalDependencies (their install fails on machines without the
// prebuilt library), so they are imported dynamically and a failed import just means "not here".
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as tf from './tfjs.js';
import { log } from '../util/log.js';
import { shareDataOnWasmIdentityAndCast } from './wasmKernels.js';
import { gatherRowsOnWasm } from './gatherKernel.js';
import { installWasmMatMul } from './matMulKernel.js';
import { installRowKernels } from './rowKernels.js';

export type BackendName = 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu';
export const BACKEND_ENV = 'BTX_BACKEND';
const ORDER: BackendName[] = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];

async function tryNative(pkg: string): Promise<boolean> {
  try {
    // The package registers the 'tensorflow' backend with the shared tfjs-core on import.
    await import(pkg);
    return await tf.setBackend('tensorflow');
  } catch {
    return false;
  }
}

async function tryWasm(): Promise<boolean> {
  try {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    // In Node the .wasm binaries are read from the package folder, not fetched.
    const require = createRequire(import.meta.url);
    const dist = join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm')), '/');
    wasm.setWasmPaths(dist);
    shareDataOnWasmIdentityAndCast();
    gatherRowsOnWasm();
    if (!(await tf.setBackend('wasm'))) return false;
    // Our products and row kernels on this backend are our WebAssembly modules: without them, no wasm.
    const gemm = await installWasmMatMul();
    await installRowKernels();
    log.debug('wasm matMul through our GEMM', { fusedMultiplyAdd: gemm.fma });
    return true;
  } catch {
    return false;
  }
}

async function tryBackend(name: BackendName): Promise<boolean> {
  switch (name) {
    case 'tensorflow-gpu':
      return tryNative('@tensorflow/tfjs-node-gpu');
    case 'tensorflow':
      return tryNative('@tensorflow/tfjs-node');
    case 'wasm':
      return tryWasm();
    case 'cpu':
      return tf.setBackend('cpu');
  }
}

let chosen: BackendName | undefined;

/**
 * Initialise TensorFlow.js once per process and return the backend in use.
 * `forced` (or BTX_BACKEND) picks one backend and fails if it cannot start, rather than
 * silently training somewhere slower than asked.
 */
export async function initBackend(
  forced: string | undefined = process.env[BACKEND_ENV],
): Promise<BackendName> {
  if (chosen) return chosen;
  const wanted = forced && forced !== 'auto' ? forced : undefined;
  if (wanted !== undefined && !ORDER.includes(wanted as BackendName)) {
    throw new Error(`${BACKEND_ENV}=${wanted} is not one of ${ORDER.join(', ')}, auto`);
  }
  const candidates = wanted ? [wanted as BackendName] : ORDER;
  for (const name of candidates) {
    if (await tryBackend(name)) {
      await tf.ready();
      chosen = name;
      log.info('tensorflow backend', { backend: name, forced: wanted !== undefined });
      return name;
    }
    if (wanted) throw new Error(`backend ${wanted} could not be started`);
  }
  throw new Error('no TensorFlow.js backend could be started');
}
