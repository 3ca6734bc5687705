// `--runs N`: the whole bench N times, each a child process writing its own JSON, then
// each figure's median across the runs' medians with their spread (lowest to highest run
// median), and every target judged on that interval.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatFigure, spread, type Figure } from './figures.js';
import { renderSvg } from './svg.js';
import { formatTargets, judgeAll, type Judged } from './targets.js';

export interface RunDoc {
  figures: Figure[];
  targets: Judged[];
}

/** Across runs: value and ratio are the spread of the runs' medians. */
export function combineRuns(docs: RunDoc[]): Figure[] {
  const ids = [...new Set(docs.flatMap((d) => d.figures.map((f) => f.id)))];
  return ids.map((id) => {
    const fs = docs.flatMap((d) => d.figures.filter((f) => f.id === id));
    const ratios = fs.flatMap((f) => (f.vsIptables ? [f.vsIptables.median] : []));
    return { id, unit: fs[0]!.unit, value: spread(fs.map((f) => f.value.median)), vsIptables: ratios.length ? spread(ratios) : null };
  });
}

/** Runs this script `n` times with `args` (less --runs, --json, --svg); returns each run's document. */
export async function repeatRuns(script: string, args: string[], n: number, log: (m: string) => void): Promise<RunDoc[]> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-runs-'));
  const docs: RunDoc[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const json = join(dir, `run${i}.json`);
      log(`run ${i + 1}/${n}`);
      const code = await new Promise<number>((resolve) => {
        const child = spawn(process.execPath, [...process.execArgv, script, ...args, '--json', json], { stdio: ['ignore', 'inherit', 'inherit'] });
        child.once('exit', (c) => resolve(c ?? 1));
      });
      if (code !== 0) throw new Error(`run ${i + 1} exited ${code}`);
      docs.push(JSON.parse(readFileSync(json, 'utf8')) as RunDoc);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return docs;
}

/** Drops --runs, --json and --svg (and their values) from an argv. */
export function childArgs(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (['--runs', '--json', '--svg'].includes(a)) i++;
    else if (!/^--(runs|json|svg)=/.test(a)) out.push(a);
  }
  return out;
}

export { judgeAll };

/** `--runs N`: the whole bench again in separate processes; figures are then medians across runs. */
export async function multiRun(script: string, argv: string[], runs: number, out: { json?: string | undefined; svg?: string | undefined }, log: (m: string) => void): Promise<void> {
  const docs = await repeatRuns(script, childArgs(argv), runs, log);
  const figures = combineRuns(docs);
  const judged = judgeAll(figures);
  console.log(`\nsluice bench, ${runs} runs: each figure is the median of the runs' medians [lowest..highest run median]`);
  for (const f of figures) if (!/(^|\.)(errors|mismatches)\./.test(f.id)) console.log(`  ${f.id.padEnd(44)} ${formatFigure(f)}`);
  console.log(`\n${formatTargets(judged, `interval: lowest to highest of ${runs} run medians`)}`);
  if (out.json) writeFileSync(out.json, `${JSON.stringify({ runs: docs.length, figures, targets: judged, perRun: docs }, null, 2)}\n`);
  if (out.svg) writeFileSync(out.svg, await renderSvg(figures, `sluice bench, ${runs} runs, kernel ${release()}`, 'run median'));
}
