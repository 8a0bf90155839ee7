// Files only the control plane's user may read: the API server's snapshot (it holds every Secret),
// the serving key, the bearer token. Their folder is 0700 and the files 0600, and both are put right
// at start, so a data dir made by an older version (0755 folder, 0644 snapshot) is closed too.
import { chmodSync, existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';

export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/** Creates `dir` if needed and makes it 0700, with the given files (where they exist) 0600. */
export function ensurePrivateDir(dir: string, files: string[] = []): void {
  mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  chmodSync(dir, PRIVATE_DIR_MODE);
  for (const file of files) if (existsSync(file)) chmodSync(file, PRIVATE_FILE_MODE);
}

/** Writes a 0600 file atomically (a temporary file, then a rename), so readers never see half of it. */
export function writePrivateFile(path: string, data: string | Buffer): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, data, { mode: PRIVATE_FILE_MODE });
  // writeFileSync's mode only applies to a new file; a tmp left by a crash keeps its old mode.
  chmodSync(tmp, PRIVATE_FILE_MODE);
  renameSync(tmp, path);
}
