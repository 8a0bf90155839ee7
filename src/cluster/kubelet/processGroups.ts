// The process groups this node started, recorded on disk (<dataDir>/kubelet/process-groups/<pgid>),
// so that a kubelet starting on the same data dir after a crash can end its predecessor's containers.
// A kubelet killed with SIGKILL runs no exit hook: its containers live on as orphans, and the new
// kubelet would otherwise start replacements beside them (two trainers writing one checkpoint folder).
// A record holds the group leader's start time (Linux /proc), so a pid the kernel has since given to
// an unrelated process is never signalled.
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

interface GroupRecord {
  pgid: number;
  /** /proc/<pid>/stat field 22 (clock ticks since boot) of the leader; absent off Linux. */
  startTime?: string;
  /** What ran in it, for the log. */
  what: string;
}

/** The start time of a process as /proc reports it; undefined when it is gone (or there is no /proc). */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces and parentheses): state is field 3.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[22 - 3];
  } catch {
    return undefined;
  }
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    // EPERM: the group exists but belongs to someone else (then it is not ours to end either).
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class ProcessGroupRecords {
  readonly dir: string;

  constructor(dataDir: string) {
    this.dir = join(dataDir, 'kubelet', 'process-groups');
  }

  /** Records a group right after its leader started. */
  add(pgid: number, what: string): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const record: GroupRecord = { pgid, startTime: processStartTime(pgid), what };
    writeFileSync(join(this.dir, String(pgid)), JSON.stringify(record));
  }

  /** The group is gone (its leader exited and the rest were killed). */
  remove(pgid: number): void {
    rmSync(join(this.dir, String(pgid)), { force: true });
  }

  /**
   * SIGKILLs every recorded group that is still alive and still ours, waits until they are gone
   * (at most `timeoutMs`), and clears the records. Returns what was killed.
   */
  async killPrevious(timeoutMs = 10_000): Promise<string[]> {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return [];
    }
    const killed: GroupRecord[] = [];
    for (const name of names) {
      const file = join(this.dir, name);
      let record: GroupRecord;
      try {
        record = JSON.parse(readFileSync(file, 'utf8')) as GroupRecord;
      } catch {
        rmSync(file, { force: true });
        continue;
      }
      const pgid = record.pgid;
      if (Number.isInteger(pgid) && pgid > 1 && groupAlive(pgid) && this.stillOurs(record)) {
        try {
          process.kill(-pgid, 'SIGKILL');
          killed.push(record);
        } catch {
          // Gone meanwhile.
        }
      }
    }
    const deadline = Date.now() + timeoutMs;
    while (killed.some((r) => groupAlive(r.pgid)) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    for (const name of names) rmSync(join(this.dir, name), { force: true });
    return killed.map((r) => `${r.what} (process group ${r.pgid})`);
  }

  /**
   * The leader still runs with the recorded start time, or it exited and left members behind
   * (Linux never hands out a pid that is still some group's id, so such a group is the old one).
   */
  private stillOurs(record: GroupRecord): boolean {
    const now = processStartTime(record.pgid);
    if (now === undefined) return true;
    return record.startTime === undefined || record.startTime === now;
  }
}
