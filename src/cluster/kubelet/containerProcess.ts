// One container = one local process in its own process group (detached), so a signal reaches
// every process the container started, as it would in the container's PID namespace.
// Groups still alive when this process exits are killed, so no container outlives its kubelet.
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { constants } from 'node:os';
import { dirname } from 'node:path';

export interface ProcessSpec {
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  /** stdout and stderr both append here. */
  logFile: string;
  /** Told the group's id once it exists and once it is gone (the kubelet records them on disk). */
  onGroupStarted?(pgid: number): void;
  onGroupEnded?(pgid: number): void;
}

export interface ProcessExit {
  /** As a container runtime reports it: the exit status, or 128 + signal number. */
  exitCode: number;
  /** The signal number when a signal ended the process. */
  signal?: number;
  /** Set when the process could not be started at all (exit code 128, reason StartError). */
  startError?: string;
}

export interface RunningProcess {
  pid: number | undefined;
  exited: Promise<ProcessExit>;
  /** Sends a signal to the whole process group; a no-op once it is gone. */
  signal(sig: NodeJS.Signals): void;
}

const liveGroups = new Set<number>();
let exitHookInstalled = false;

function killGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    // ESRCH: the group is already gone.
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const pid of liveGroups) killGroup(pid, 'SIGKILL');
  });
}

export function startProcess(spec: ProcessSpec): RunningProcess {
  installExitHook();
  mkdirSync(dirname(spec.logFile), { recursive: true });
  mkdirSync(spec.cwd, { recursive: true });
  const [command, ...args] = spec.argv;
  if (command === undefined) {
    return {
      pid: undefined,
      exited: Promise.resolve({ exitCode: 128, startError: 'no command to run' }),
      signal: () => {},
    };
  }
  const log = openSync(spec.logFile, 'a');
  let child;
  try {
    child = spawn(command, args, {
      cwd: spec.cwd,
      env: spec.env,
      detached: true,
      stdio: ['ignore', log, log],
    });
  } finally {
    closeSync(log);
  }
  const pid = child.pid;
  if (pid !== undefined) {
    liveGroups.add(pid);
    spec.onGroupStarted?.(pid);
  }
  const exited = new Promise<ProcessExit>((resolve) => {
    child.once('error', (err) => {
      if (pid !== undefined) {
        liveGroups.delete(pid);
        spec.onGroupEnded?.(pid);
      }
      resolve({ exitCode: 128, startError: err.message });
    });
    child.once('exit', (code, signal) => {
      if (pid !== undefined) {
        // The main process is gone: like a runtime tearing down the container, end its orphans.
        killGroup(pid, 'SIGKILL');
        liveGroups.delete(pid);
        spec.onGroupEnded?.(pid);
      }
      if (signal) {
        const number = constants.signals[signal] ?? 9;
        resolve({ exitCode: 128 + number, signal: number });
      } else {
        resolve({ exitCode: code ?? 0 });
      }
    });
  });
  return {
    pid,
    exited,
    signal: (sig) => {
      if (pid !== undefined && liveGroups.has(pid)) killGroup(pid, sig);
    },
  };
}
