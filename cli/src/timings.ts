// Where the time of one mclc run goes, stage by stage: with MCL_TIMINGS=FILE
// in the environment, mclc writes the wall-clock and CPU time of each stage
// (start-up, reading the workspace, each compiler stage, serialising and
// writing the plan, the report, and the exit) and the time spent in garbage
// collection to FILE as JSON when it exits. `npm run bench` reads it to print
// its per-stage table of a real `mclc plan`. Without the variable nothing is
// measured and nothing is written.

import { writeFileSync } from 'node:fs';
import { PerformanceObserver } from 'node:perf_hooks';

export interface StageTiming {
  stage: string;
  /** Wall-clock milliseconds since the previous stage ended (the first stage: since the process started). */
  wall_ms: number;
  /** CPU milliseconds of the whole process (every thread: the collector's helpers too) in the same interval. */
  cpu_ms: number;
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
}

class Timings {
  private readonly stages: StageTiming[] = [];
  private lastWall = 0;
  private lastCpu = 0;
  private gcMs = 0;
  /** The collector's pauses, by start time: the observer hears of them only once the compile yields. */
  private readonly pauses: { start: number; duration: number }[] = [];
  /** Where each stage of `stages` ended (wall clock), for placing the pauses in them; -1 for a nested stage. */
  private readonly ends: number[] = [];
  /** Time spent inside stages nested in others (the reads inside loading), subtracted from the enclosing stage. */
  private nested = new Map<string, { wall: number; cpu: number }>();

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

  /** Ends the current stage under `stage`'s name. */
  mark(stage: string): void {
    const wall = performance.now();
    const cpu = cpuMs();
    let w = wall - this.lastWall;
    let c = cpu - this.lastCpu;
    for (const [name, t] of this.nested) {
      this.stages.push({ stage: name, wall_ms: t.wall, cpu_ms: t.cpu, gc_ms: 0 });
      this.ends.push(-1);
      w -= t.wall;
      c -= t.cpu;
    }
    this.nested.clear();
    this.stages.push({ stage, wall_ms: w, cpu_ms: c, gc_ms: 0 });
    this.ends.push(wall);
    this.lastWall = wall;
    this.lastCpu = cpu;
  }

  /** Runs `f` as a stage of its own nested in the current one (reported before it, and not counted twice). */
  nest<T>(stage: string, f: () => T): T {
    const w0 = performance.now();
    const c0 = cpuMs();
    try {
      return f();
    } finally {
      const t = this.nested.get(stage) ?? { wall: 0, cpu: 0 };
      t.wall += performance.now() - w0;
      t.cpu += cpuMs() - c0;
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
    const doc: TimingsDocument = { stages: this.stages, gc_ms: this.gcMs, total_wall_ms: this.lastWall, total_cpu_ms: this.lastCpu };
    try {
      writeFileSync(this.file, JSON.stringify(doc, null, 2) + '\n');
    } catch {
      // Timings are a measurement aid; failing to write them must not change how mclc exits.
    }
  }
}

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** The run's timings when MCL_TIMINGS names a file, else undefined (and nothing is measured). */
export const timings: Timings | undefined = process.env.MCL_TIMINGS ? new Timings(process.env.MCL_TIMINGS) : undefined;
