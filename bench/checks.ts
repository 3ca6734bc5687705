// What makes a run fail (exit 1) although it finished: a connection that reached the
// wrong listener or saw the wrong original destination, a stream that moved the wrong
// bytes or none, and acceleration figures that did not come from the sk_msg redirect (or
// redirected bytes with acceleration off). Timings are never judged here.
import type { Figure } from './figures.js';
import type { StreamResult } from './load.js';
import type { BenchOptions } from './options.js';
import type { RunState } from './phases.js';
import { accelDelta, addAccel, redirectedShare, summarize, type AccelDelta } from './report.js';

/** A wrong listener or original destination in any phase means its figures measure something else. */
export function figureMismatches(figures: Figure[], log: (m: string) => void): boolean {
  let bad = false;
  for (const f of figures) {
    if (/(^|\.)mismatches\./.test(f.id) && f.value.median > 0) {
      bad = true;
      log(`${f.id}: ${f.value.median} connection(s) reached the wrong listener or saw the wrong original destination`);
    }
  }
  return bad;
}

/** The rate rounds and the stream runs; true when one of them does not measure its capture. */
export function phaseProblems(o: BenchOptions, s: RunState, log: (m: string) => void): boolean {
  let bad = false;
  for (const d of o.directions) {
    for (const [name, rs] of Object.entries(s.results[d] ?? {})) {
      const x = summarize(rs);
      if (x.mismatches > 0 || x.connections === 0) {
        bad = true;
        log(`${d} ${name}: ${x.mismatches} connection(s) reached the wrong listener or saw the wrong original destination; its figures do not measure that capture`);
      } else if (x.errors > 0) {
        log(`${d} ${name}: ${x.errors} connection(s) failed (see the rounds above)`);
      }
    }
  }
  for (const [name, runs] of Object.entries(s.streams)) {
    const empty = (r: StreamResult) => [...r.up, ...r.down].some((p) => p.bytes === 0 || p.seconds <= 0) || r.ping.roundTrips === 0;
    const broken = runs.filter((r) => r.result.error || r.result.mismatch || r.result.up.length < o.writes.length || r.result.down.length < o.writes.length || empty(r.result));
    const corrupt = runs.filter((r) => [...r.result.up, ...r.result.down, r.result.ping].some((p) => p.bad >= 0));
    if (broken.length || corrupt.length) {
      bad = true;
      const first = broken[0]?.result;
      if (broken.length) log(`stream ${name}: ${broken.length} run(s) incomplete (${first?.mismatch ? `reached "${first.reply}"` : first?.error || 'a phase moved nothing'}); its figures do not measure that capture`);
      if (corrupt.length) log(`stream ${name}: ${corrupt.length} run(s) received bytes that differ from what was sent (see "bad" in the JSON)`);
    }
    // Never credit the redirect with figures it did not produce, nor the plain data plane with one.
    const share = redirectedShare(runs);
    const all = runs.reduce((a, r) => addAccel(a, r.accel ?? accelDelta({}, {})), undefined as AccelDelta | undefined);
    if (name === 'ebpf+accel' && (share === null || !(share >= 0.99))) {
      bad = true;
      log(`stream ebpf+accel: the accelerated path was NOT taken for ${share === null ? 'all' : `${((1 - share) * 100).toFixed(1)}% of`} the bytes (accel_redirected_bytes ${all?.redirectedBytes ?? 0}, enrolled ${all?.enrolled ?? 0}, enrol failed ${all?.enrolFailed ?? 0}, peer missing ${all?.peerMissing ?? 0}, off ${all?.off ?? 0}); its figures are not the sk_msg path`);
    } else if (name !== 'ebpf+accel' && share !== null && share > 0) {
      bad = true;
      log(`stream ${name}: ${all?.redirectedBytes} bytes went by the sk_msg redirect with acceleration off`);
    }
  }
  return bad;
}
