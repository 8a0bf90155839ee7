// The flags that several `btx` commands take, each declared once: its name, its value's placeholder and
// its BTX_* variable (train, eval and mix read the same stage-contract variables), and the words they
// accept. A command still writes the help line, because the default it names is its own (train's
// --router keeps the checkpoint's, mix's picks topK).
import { ENV } from '../api/stageContract.js';
import { BACKEND_ENV } from '../trainer/backend.js';
import type { FloatDType } from '../trainer/safetensors.js';
import type { FlagSpec } from './flags.js';

/** --dtype's words for the safetensors float types. */
export const DTYPES: Readonly<Record<string, FloatDType>> = { f32: 'F32', f16: 'F16', bf16: 'BF16' };

const SHARED = {
  tokens: { value: 'DIR', env: ENV.tokens },
  'batch-size': { value: 'N', env: ENV.batchSize },
  'seq-len': { value: 'N', env: 'BTX_SEQ_LEN' },
  router: { value: 'TYPE', env: ENV.router },
  k: { value: 'N', env: ENV.topK },
  dtype: { value: 'D', env: ENV.dtype },
  seed: { value: 'N', env: ENV.randomSeed },
} as const satisfies Record<string, Omit<FlagSpec, 'name' | 'help'>>;

/** A shared flag with this command's help line. */
export function sharedFlag(name: keyof typeof SHARED, help: string): FlagSpec {
  return { name, ...SHARED[name], help };
}

export const BACKEND_FLAG: FlagSpec = {
  name: 'backend',
  value: 'NAME',
  env: BACKEND_ENV,
  help: 'tensorflow-gpu | tensorflow | wasm | cpu | auto (default auto)',
};
