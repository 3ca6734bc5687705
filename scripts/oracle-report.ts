// Prints, for every oracle case, decide()'s outcome and what a backend really did.
//   sudo npx tsx scripts/oracle-report.ts [iptables|none] [policy-name...]
// Exit 1 when some observation differs from expectedObservation (istioQuirks: true).
import { decide } from '../src/policy/decide.js';
import { iptablesBackend, noCaptureBackend } from '../test/kernel/harness/backend.js';
import { CASES, POLICIES } from '../test/kernel/harness/cases.js';
import { expectedObservation } from '../test/kernel/harness/observe.js';
import { checkRequirements } from '../test/kernel/harness/requirements.js';
import { cleanupAll, runMatrix } from '../test/kernel/harness/runner.js';

const [which = 'iptables', ...only] = process.argv.slice(2);
const backend = { iptables: iptablesBackend, none: noCaptureBackend }[which];
if (!backend) throw new Error(`unknown backend ${which}: use iptables or none`);
checkRequirements({ iptables: which === 'iptables' });
const policies = Object.fromEntries(Object.entries(POLICIES).filter(([n]) => only.length === 0 || only.includes(n)));

let bad = 0;
try {
  const m = await runMatrix([backend], policies, CASES);
  for (const c of CASES) {
    const rec = m[backend.name]?.[c.policyName]?.[c.id];
    if (!rec) continue;
    const d = decide(POLICIES[c.policyName]!, c.conn, { istioQuirks: true });
    const exp = expectedObservation(POLICIES[c.policyName]!, c, d);
    const same = JSON.stringify(exp) === JSON.stringify(rec.observation);
    if (!same) bad++;
    console.log(`${same ? 'ok  ' : 'DIFF'} ${c.id.padEnd(50)} ${d.outcome.padEnd(14)} ${JSON.stringify(rec.observation)}`);
    if (!same) console.log(`     expected ${' '.repeat(60)}${JSON.stringify(exp)}`);
  }
} finally {
  await cleanupAll();
}
console.log(`${bad} difference(s)`);
process.exitCode = bad ? 1 : 0;
