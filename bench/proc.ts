/**
 * Reads the Linux /proc figures the echo benchmark reports: CPU time (utime + stime, and the
 * per-thread schedstat nanoseconds as a cross-check) and VmRSS summed over a process tree, the
 * machine-wide per-CPU counters (busy and steal time), the clock tick rate and the open-file
 * limit. Every reader is synchronous so that a sample is taken at the exact moment it is called.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second for utime/stime (`getconf CLK_TCK`, 100 on Linux in practice). */
export function clockTicksPerSecond(): number {
  const result = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 2000 });
  const ticks = Number.parseInt(result.stdout ?? '', 10);
  return Number.isFinite(ticks) && ticks > 0 ? ticks : 100;
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Fields of /proc/PID/stat after the command name, which may itself contain spaces and ")". */
function statFields(pid: number): string[] | undefined {
  const text = readText(`/proc/${pid}/stat`);
  if (text === undefined) return undefined;
  const end = text.lastIndexOf(')');
  if (end < 0) return undefined;
  // fields[0] is field 3 (state), so field N of proc(5) is fields[N - 3]
  return text
    .slice(end + 2)
    .trim()
    .split(' ');
}

/** The PID and every live descendant of it, found by scanning the parent PIDs in /proc. */
export function processTree(rootPid: number): number[] {
  const children = new Map<number, number[]>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [rootPid];
  }
  for (const entry of entries) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    const fields = statFields(pid);
    const ppid = fields === undefined ? Number.NaN : Number(fields[1]);
    if (!Number.isInteger(ppid)) continue;
    const list = children.get(ppid);
    if (list === undefined) children.set(ppid, [pid]);
    else list.push(pid);
  }
  const tree: number[] = [];
  const queue = [rootPid];
  // a process tree is finite, but bound the walk anyway
  while (queue.length > 0 && tree.length < 10_000) {
    const pid = queue.shift() as number;
    tree.push(pid);
    for (const child of children.get(pid) ?? []) queue.push(child);
  }
  return tree;
}

/** CPU time used so far by a set of processes. */
export interface CpuSample {
  /** utime + stime in clock ticks, summed over the processes (all their threads, live and exited). */
  readonly ticks: number;
  /** Sum of the first field of /proc/PID/task/TID/schedstat (ns on CPU) over live threads. */
  readonly schedNs: number;
}

export function cpuSample(pids: readonly number[]): CpuSample {
  let ticks = 0;
  let schedNs = 0;
  for (const pid of pids) {
    const fields = statFields(pid);
    if (fields === undefined) continue;
    // utime is field 14 and stime field 15
    ticks += Number(fields[11]) + Number(fields[12]);
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${pid}/task`);
    } catch {
      tasks = [];
    }
    for (const tid of tasks) {
      const sched = readText(`/proc/${pid}/task/${tid}/schedstat`);
      if (sched !== undefined) schedNs += Number(sched.split(' ')[0]);
    }
  }
  return { ticks, schedNs };
}

/** Read and write system calls made so far by a set of processes (/proc/PID/io: syscr, syscw). */
export function syscallCounts(pids: readonly number[]): { reads: number; writes: number } {
  let reads = 0;
  let writes = 0;
  for (const pid of pids) {
    const text = readText(`/proc/${pid}/io`) ?? '';
    reads += Number(/^syscr: (\d+)$/m.exec(text)?.[1] ?? 0);
    writes += Number(/^syscw: (\d+)$/m.exec(text)?.[1] ?? 0);
  }
  return { reads, writes };
}

/** VmRSS in KiB summed over a set of processes (a process that has gone counts 0). */
export function rssKiB(pids: readonly number[]): number {
  let total = 0;
  for (const pid of pids) {
    const status = readText(`/proc/${pid}/status`);
    const match = status === undefined ? null : /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    if (match !== null) total += Number(match[1]);
  }
  return total;
}

/** Machine-wide per-CPU counters from /proc/stat, in clock ticks. */
export interface MachineSample {
  /**
   * Per CPU index: `work` is user + nice + system, the time that is also charged to processes
   * (irq and softirq time is not charged to any process, so it is left out); `steal` is time
   * the hypervisor gave to other guests.
   */
  readonly cpus: ReadonlyMap<
    number,
    { readonly work: number; readonly steal: number; readonly total: number }
  >;
}

export function machineSample(): MachineSample {
  const cpus = new Map<number, { work: number; steal: number; total: number }>();
  const text = readText('/proc/stat') ?? '';
  for (const line of text.split('\n')) {
    const match = /^cpu(\d+)\s+(.*)$/.exec(line);
    if (match === null) continue;
    const values = (match[2] ?? '').split(/\s+/).map(Number);
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = values;
    cpus.set(Number(match[1]), {
      work: user + nice + system,
      steal,
      total: user + nice + system + idle + iowait + irq + softirq + steal,
    });
  }
  return { cpus };
}

/** Between two samples: CPU time charged to processes (in ticks, all CPUs) and the worst steal share. */
export function machineDelta(
  before: MachineSample,
  after: MachineSample,
): { workTicks: number; steal: number } {
  let workTicks = 0;
  let steal = 0;
  for (const [cpu, end] of after.cpus) {
    const start = before.cpus.get(cpu);
    if (start === undefined) continue;
    workTicks += end.work - start.work;
    const total = end.total - start.total;
    if (total > 0) steal = Math.max(steal, (end.steal - start.steal) / total);
  }
  return { workTicks, steal };
}

/** The soft limit on open files of this process ("Max open files" in /proc/self/limits). */
export function openFileLimit(): number {
  const text = readText('/proc/self/limits') ?? '';
  const match = /^Max open files\s+(\d+|unlimited)/m.exec(text);
  if (match === null) return 1024;
  return match[1] === 'unlimited' ? 1_000_000 : Number(match[1]);
}

/** Machine-wide TCP counters: every socket on the machine, not only the benchmark's. */
export interface TcpSample {
  /** Segments sent (`Tcp: OutSegs` in /proc/net/snmp), retransmissions excluded. */
  readonly outSegs: number;
  /** Delayed ACKs sent (`TcpExt: DelayedACKs` in /proc/net/netstat). */
  readonly delayedAcks: number;
}

/** One field of a /proc/net/snmp-style file: a header line and a value line per prefix. */
function netCounter(path: string, prefix: string, field: string): number {
  const lines = (readText(path) ?? '').split('\n').filter((line) => line.startsWith(`${prefix}:`));
  const names = (lines[0] ?? '').split(/\s+/);
  const values = (lines[1] ?? '').split(/\s+/);
  const index = names.indexOf(field);
  const value = index > 0 ? Number(values[index]) : Number.NaN;
  return Number.isFinite(value) ? value : Number.NaN;
}

/** The machine-wide TCP counters now (NaN where a counter cannot be read). */
export function tcpSample(): TcpSample {
  return {
    outSegs: netCounter('/proc/net/snmp', 'Tcp', 'OutSegs'),
    delayedAcks: netCounter('/proc/net/netstat', 'TcpExt', 'DelayedACKs'),
  };
}
