// Where the time of one mclc run goes, stage by stage: with MCL_TIMINGS=FILE
// in the environment, mclc writes the wall-clock and CPU time of each stage
// (start-up, reading the workspace, each compiler stage, serialising and
// writing the plan, the report, and the exit), the main thread's own share of
// that CPU time, and the time spent in garbage collection to FILE as JSON when
// it exits. `npm run bench` reads it to print its per-stage table of a real
// `mclc plan`. Without the variable nothing is measured and nothing is written.

import { closeSync, openSync, readSync, writeFileSync } from 'node:fs';
import { PerformanceObserver } from 'node:perf_hooks';

export interface StageTiming {
  stage: string;
  /** Wall-clock milliseconds since the previous stage ended (the first stage: since the process started). */
  wall_ms: number;
  /** CPU milliseconds of the whole process (every thread: the collector's helpers too) in the same interval. */
  cpu_ms: number;
  /**
   * CPU milliseconds of the main thread alone in the same interval: the stage's own work, without what
   * V8's compiler thread and the collector's helpers did meanwhile. Absent where the system does not
   * tell a thread's run time (Linux's /proc/thread-self/schedstat).
   */
  main_ms?: number;
  /**
   * Milliseconds the main thread was paused for garbage collection within the stage's interval (a
   * stage nested in another, such as reading the sources, has its pauses counted in the enclosing one).
   */
  gc_ms: number;
}

export interface TimingsDocument {
  stages: StageTiming[];
  /** Milliseconds the main thread was paused by garbage collection, over the whole run. */
  gc_ms: number;
  /** Wall-clock milliseconds from the process start to the exit. */
  total_wall_ms: number;
  total_cpu_ms: number;
  /** CPU milliseconds of the main thread from the process start to the exit, where known. */
  total_main_ms?: number;
}

interface Clock {
  wall: number;
  cpu: number;
  main: number | undefined;
}

class Timings {
  private readonly stages: StageTiming[] = [];
  private last: Clock = { wall: 0, cpu: 0, main: 0 };
  private gcMs = 0;
  /** The collector's pauses, by start time: the observer hears of them only once the compile yields. */
  private readonly pauses: { start: number; duration: number }[] = [];
  /** Where each stage of `stages` ended (wall clock), for placing the pauses in them; -1 for a nested stage. */
  private readonly ends: number[] = [];
  /** Time spent inside stages nested in others (the reads inside loading), subtracted from the enclosing stage. */
  private nested = new Map<string, { wall: number; cpu: number; main: number | undefined }>();
  private readonly mainThread = new MainThreadClock();

  constructor(private readonly file: string) {
    // The first stage is everything before the first line of mclc runs: Node's own start, and
    // loading and evaluating the bundle. performance.now() counts from the process's start.
    const observer = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        this.gcMs += e.duration;
        this.pauses.push({ start: e.startTime, duration: e.duration });
      }
    });
    observer.observe({ entryTypes: ['gc'] });
    process.on('exit', () => this.write());
  }

  private now(): Clock {
    return { wall: performance.now(), cpu: cpuMs(), main: this.mainThread.ms() };
  }

  /** Ends the current stage under `stage`'s name. */
  mark(stage: string): void {
    const now = this.now();
    let w = now.wall - this.last.wall;
    let c = now.cpu - this.last.cpu;
    let m = minus(now.main, this.last.main);
    for (const [name, t] of this.nested) {
      this.stages.push({ stage: name, wall_ms: t.wall, cpu_ms: t.cpu, ...(t.main !== undefined ? { main_ms: t.main } : {}), gc_ms: 0 });
      this.ends.push(-1);
      w -= t.wall;
      c -= t.cpu;
      m = minus(m, t.main);
    }
    this.nested.clear();
    this.stages.push({ stage, wall_ms: w, cpu_ms: c, ...(m !== undefined ? { main_ms: m } : {}), gc_ms: 0 });
    this.ends.push(now.wall);
    this.last = now;
  }

  /** Runs `f` as a stage of its own nested in the current one (reported before it, and not counted twice). */
  nest<T>(stage: string, f: () => T): T {
    const start = this.now();
    try {
      return f();
    } finally {
      const end = this.now();
      const t = this.nested.get(stage) ?? { wall: 0, cpu: 0, main: 0 };
      t.wall += end.wall - start.wall;
      t.cpu += end.cpu - start.cpu;
      t.main = t.main === undefined ? undefined : minus(t.main + (end.main ?? NaN), start.main);
      this.nested.set(stage, t);
    }
  }

  private write(): void {
    this.mark('exit');
    // Each pause goes to the stage it started in: the first that ended after it started.
    for (const p of this.pauses) {
      const i = this.ends.findIndex((end) => end >= p.start);
      if (i >= 0) this.stages[i].gc_ms += p.duration;
    }
    const doc: TimingsDocument = {
      stages: this.stages,
      gc_ms: this.gcMs,
      total_wall_ms: this.last.wall,
      total_cpu_ms: this.last.cpu,
      ...(this.last.main !== undefined ? { total_main_ms: this.last.main } : {}),
    };
    this.mainThread.close();
    try {
      writeFileSync(this.file, JSON.stringify(doc, null, 2) + '\n');
    } catch {
      // Timings are a measurement aid; failing to write them must not change how mclc exits.
    }
  }
}

/** a - b, undefined when either is unknown (or not a number). */
function minus(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined || b === undefined) return undefined;
  const d = a - b;
  return Number.isNaN(d) ? undefined : d;
}

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/**
 * The CPU time the main thread has run, in milliseconds: the first field of Linux's
 * /proc/thread-self/schedstat (nanoseconds on the CPU), read through a descriptor opened once.
 * process.cpuUsage() counts every thread, and while the main thread reads a file or parses,
 * V8's compiler thread and the collector's helpers run too: reading the sources of a large
 * workspace showed five times its own time. Undefined where the file cannot be read.
 */
class MainThreadClock {
  private fd: number | undefined;
  private readonly buf = Buffer.alloc(128);

  constructor() {
    try {
      this.fd = openSync('/proc/thread-self/schedstat', 'r');
      if (this.ms() === undefined) this.close();
    } catch {
      this.fd = undefined;
    }
  }

  ms(): number | undefined {
    if (this.fd === undefined) return undefined;
    try {
      const n = readSync(this.fd, this.buf, 0, this.buf.length, 0);
      const ns = Number(this.buf.toString('latin1', 0, n).split(' ')[0]);
      return Number.isFinite(ns) ? ns / 1e6 : undefined;
    } catch {
      return undefined;
    }
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/** The run's timings when MCL_TIMINGS names a file, else undefined (and nothing is measured). */
export const timings: Timings | undefined = process.env.MCL_TIMINGS ? new Timings(process.env.MCL_TIMINGS) : undefined;
