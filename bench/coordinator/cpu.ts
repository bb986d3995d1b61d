import { readFileSync } from "node:fs";

/** Clock ticks per second of /proc times; 100 on every Linux the bench runs on. */
const CLOCK_TICKS = 100;

/** CPU seconds (user + system) process `pid` has used so far, from /proc/<pid>/stat. */
export function processCpuSeconds(pid: number): number {
  // Fields after the command name (which may hold spaces, hence the last ")").
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 of the whole line; state (field 3) is index 0 here.
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/**
 * Busy CPU seconds of the whole machine so far (all cores, from /proc/stat).
 * The bench shares the machine with whatever else runs on it; a window's
 * machine-busy minus coordinator minus bench shows how much others took.
 */
export function machineBusySeconds(): number {
  const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0] ?? "";
  const [, user, nice, system, _idle, _iowait, irq, softirq, steal] = line
    .trim()
    .split(/\s+/)
    .map(Number);
  const busy = [user, nice, system, irq, softirq, steal].reduce<number>(
    (total, ticks) => total + (ticks ?? 0),
    0,
  );
  return busy / CLOCK_TICKS;
}

/** CPU use over a window, in cores (CPU seconds per wall second). */
export interface CpuWindow {
  coordinatorCores: number;
  benchCores: number;
  /** Everything else on the machine (other processes, kernel threads) during the window. */
  otherCores: number;
}

/** Starts a CPU window; calling the returned function ends it. */
export function startCpuWindow(coordinatorPid: number): () => CpuWindow {
  const started = performance.now();
  const coordinator = processCpuSeconds(coordinatorPid);
  const bench = process.cpuUsage();
  const machine = machineBusySeconds();
  return () => {
    const seconds = (performance.now() - started) / 1000;
    const coordinatorCpu = processCpuSeconds(coordinatorPid) - coordinator;
    const benchUsage = process.cpuUsage(bench);
    const benchCpu = (benchUsage.user + benchUsage.system) / 1e6;
    const machineCpu = machineBusySeconds() - machine;
    const cores = (cpuSeconds: number) => Math.round((100 * cpuSeconds) / seconds) / 100;
    return {
      coordinatorCores: cores(coordinatorCpu),
      benchCores: cores(benchCpu),
      otherCores: cores(Math.max(0, machineCpu - coordinatorCpu - benchCpu)),
    };
  };
}
