import { readFileSync } from 'node:fs';

/** Linux clock ticks per second (USER_HZ), the unit of /proc CPU times. */
const TICKS_PER_SECOND = 100;

/** CPU time read from /proc at one moment. */
export interface CpuSnapshot {
  readonly at: number;
  /** Busy ticks of the whole machine (all CPUs). */
  readonly machineBusy: number;
  /** Busy ticks (user + system, all threads) of each watched process. */
  readonly processes: Readonly<Record<string, number>>;
}

/** CPU used over an interval, in cores (1 = one CPU fully busy). */
export interface CpuUsage {
  readonly machineCores: number;
  readonly processCores: Readonly<Record<string, number>>;
  /** CPU time (user + system) each watched process used over the interval, in seconds, unrounded. */
  readonly processSeconds: Readonly<Record<string, number>>;
  /** Everything the watched processes did not use: other work on the machine (tests, builds). */
  readonly foreignCores: number;
}

function machineBusyTicks(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
  const fields = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal guest guest_nice; guest time is already in user.
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = fields;
  return user + nice + system + irq + softirq + steal;
}

function processTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

export function cpuSnapshot(pids: Readonly<Record<string, number | undefined>>): CpuSnapshot {
  const processes: Record<string, number> = {};
  for (const [name, pid] of Object.entries(pids)) if (pid !== undefined) processes[name] = processTicks(pid);
  return { at: performance.now(), machineBusy: machineBusyTicks(), processes };
}

export function cpuUsage(before: CpuSnapshot, after: CpuSnapshot): CpuUsage {
  const seconds = Math.max((after.at - before.at) / 1000, 1e-3);
  const cores = (ticks: number) => Math.round((100 * ticks) / TICKS_PER_SECOND / seconds) / 100;
  const processCores: Record<string, number> = {};
  const processSeconds: Record<string, number> = {};
  let ours = 0;
  for (const [name, ticks] of Object.entries(after.processes)) {
    const used = ticks - (before.processes[name] ?? ticks);
    ours += used;
    processCores[name] = cores(used);
    processSeconds[name] = used / TICKS_PER_SECOND;
  }
  const machine = after.machineBusy - before.machineBusy;
  return { machineCores: cores(machine), processCores, processSeconds, foreignCores: cores(Math.max(0, machine - ours)) };
}
