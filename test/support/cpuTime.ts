// Loaded into every test process by scripts/run-tests.mjs (--import): at exit, the file's CPU time
// (its own, and that of the child processes it waited for: `btx` runs, stage pods, kubectl) goes to
// stdout as one marker line, and scripts/test-reporter.mjs prints it next to the file's wall time.
// Why: the machine the suite runs on is shared, so wall time is noisy; CPU seconds are what a change
// to a test saves or costs (the suite's budget is < 5 min on 2 quiet cores).
// Linux reads /proc/self/stat (utime, stime, cutime, cstime); elsewhere process.cpuUsage() (own only).
import { readFileSync } from 'node:fs';

/** The marker scripts/test-reporter.mjs looks for; keep the two in step. */
export const CPU_MARKER = 'btx-test-cpu-seconds:';

const TICKS_PER_SECOND = 100; // USER_HZ: 100 on every Linux ABI node supports (getconf CLK_TCK)

/** CPU seconds of this process and of the children it waited for. */
function cpuSeconds(): { total: number; children: number } {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    // Fields after the command name (which may hold spaces, hence the last ')'): state is field 3.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const [utime, stime, cutime, cstime] = fields.slice(11, 15).map(Number);
    const children = (cutime! + cstime!) / TICKS_PER_SECOND;
    return { total: (utime! + stime!) / TICKS_PER_SECOND + children, children };
  } catch {
    const { user, system } = process.cpuUsage();
    return { total: (user + system) / 1e6, children: 0 };
  }
}

process.on('exit', () => {
  const { total, children } = cpuSeconds();
  // stdout is a pipe to the test runner (synchronous on Linux), so this line lands before exit.
  process.stdout.write(`${CPU_MARKER}${total.toFixed(2)} ${children.toFixed(2)}\n`);
});
