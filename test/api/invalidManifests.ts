// The invalid manifests under test/api/invalid/: each file says in its header comments which
// message validateRun gives and what the API server says (or that only the operator rejects it).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import type { BTXRun } from '../../src/api/types.js';
import { repoRoot } from '../support/tools.js';

export interface InvalidManifest {
  file: string;
  path: string;
  run: BTXRun;
  /** A fragment of one of validateRun's messages. */
  validateRun: string;
  /** A fragment of the API server's rejection (schema or CEL rule), or undefined when only the operator catches it. */
  apiserver: string | undefined;
}

export const INVALID_DIR = join(repoRoot, 'test', 'api', 'invalid');

export function invalidManifests(): InvalidManifest[] {
  return readdirSync(INVALID_DIR)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((file) => {
      const path = join(INVALID_DIR, file);
      const text = readFileSync(path, 'utf8');
      const header = (key: string) => new RegExp(`^# ${key}: (.*)$`, 'm').exec(text)?.[1];
      const validateRun = header('validateRun');
      const apiserver = header('apiserver');
      if (!validateRun || !apiserver)
        throw new Error(`${file}: needs '# validateRun:' and '# apiserver:' comments`);
      return {
        file,
        path,
        run: parse(text) as BTXRun,
        validateRun,
        apiserver: apiserver.startsWith('accepts') ? undefined : apiserver,
      };
    });
}
