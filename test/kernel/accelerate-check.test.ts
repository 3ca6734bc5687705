// The live sockmap regression check on this kernel (checkSockmapWakeup), and how
// `sluice run --accelerate` follows its verdict. Neither needs a sandbox: the check makes
// its own private, anonymous namespace and never pins its maps.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import pino from 'pino';
import { checkSockmapWakeup, type WakeupReport } from '../../src/bpf/probes.js';
import { decideAcceleration, type DaemonOptions } from '../../src/daemon/run.js';
import { InputError } from '../../src/policy/errors.js';
import { BPFFS_ROOT, bpfRequirementsMissing } from './bpf-fixture.js';

const missing = bpfRequirementsMissing();

let wakeup: WakeupReport | null = null;

test.serial('the sockmap regression check gives a definite answer on this kernel, and leaves nothing behind', async (t) => {
  if (missing) return t.fail(missing);
  // Other kernel tests run concurrently: only names that are not theirs count.
  const notTests = (names: string[]) => names.filter((n) => !/^sluice-test-\d+-/.test(n)).sort();
  const netns = () => notTests(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0]!).filter(Boolean));
  const pins = () => notTests(readdirSync(BPFFS_ROOT));
  const netnsBefore = netns();
  const pinsBefore = pins();
  wakeup = await checkSockmapWakeup();
  t.log(`kernel ${execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim()}: ${wakeup.verdict} (${wakeup.summary})`);
  t.log(`single waits: ${wakeup.observations.map((o) => `${o.path}/${o.waiter} woke=${o.woke} fionread=${o.fionread}/${o.readableAfter}`).join('; ')}`);
  t.log(`stress: ${wakeup.stress.map((s) => `${s.path} ${s.mode}: ${s.rounds} rounds, ${s.stalls} stalls, max wait ${s.maxWaitMs} ms`).join('; ')}`);
  t.true(wakeup.verdict === 'ok' || wakeup.verdict === 'regressed' || wakeup.verdict === 'limited', `a definite answer, not ${wakeup.verdict}`);
  t.is(wakeup.observations.length, 6);
  t.true(wakeup.redirected > 0, 'the check did go through the sk_msg redirect');
  t.deepEqual(netns(), netnsBefore, 'its network namespace was private and anonymous');
  t.deepEqual(pins(), pinsBefore, 'its maps were never pinned');
});

test.serial('sluice run --accelerate follows the check: refused with a message naming sluice doctor, unless forced', async (t) => {
  if (missing) return t.fail(missing);
  const report = wakeup ?? (await checkSockmapWakeup());
  const log = pino({ level: 'silent' });
  const opts: DaemonOptions = { source: 'file:/dev/null', config: {} as DaemonOptions['config'], bpffs: '/nonexistent', listen: '127.0.0.1:0', accelerate: true, sockmapCheck: async () => report };
  if (report.verdict === 'ok') {
    t.true(await decideAcceleration(opts, log));
  } else {
    const err = await t.throwsAsync(decideAcceleration(opts, log), { instanceOf: InputError });
    t.is((err as InputError).code, 'ACCELERATE_REFUSED');
    t.regex(err!.message, /--accelerate refused: .*sluice doctor.*--accelerate-force/);
  }
  t.true(await decideAcceleration({ ...opts, accelerateForce: true }, log), '--accelerate-force overrides');
  t.false(await decideAcceleration({ ...opts, accelerate: false }, log), 'no flag: off, and the check does not even run');
});
