// The `sluice` command line.
import { Command, CommanderError } from 'commander';
import { InputError } from '../policy/errors.js';
import { runExplain } from './explain.js';
import { runRules } from './rules.js';
import { runValidate } from './validate.js';

const program = new Command('sluice')
  .description('eBPF replacement for the iptables rules Istio installs in every meshed pod')
  .exitOverride()
  .configureOutput({ writeErr: (s) => process.stderr.write(s) });

program
  .command('explain')
  .description('show the decision a connection gets, with the spec step that made it')
  .argument('<pod>', 'NAMESPACE/NAME, or NAME in namespace default')
  .argument('<dst>', 'IP:PORT or [IPv6]:PORT')
  .requiredOption('--source <spec>', 'where pods come from: file:PATH')
  .option('--config <path>', 'node-wide defaults (YAML)')
  .option('--uid <n>', 'socket uid (outbound; default 1000, an app)')
  .option('--gid <n>', 'socket gid (outbound; default: the uid)')
  .option('--src <ip>', 'source address')
  .option('--udp', 'UDP instead of TCP')
  .option('--inbound', 'the connection arrives at the pod from outside')
  .option('--interface <if>', 'route interface (outbound) or arrival interface (inbound)')
  .option('--json', 'print one JSON object')
  .action((pod: string, dst: string, opts) => runExplain(pod, dst, opts));

program
  .command('rules')
  .description('print the iptables-restore input istio-iptables would write for a pod')
  .argument('<pod>', 'NAMESPACE/NAME, or NAME in namespace default')
  .requiredOption('--source <spec>', 'where pods come from: file:PATH')
  .option('--config <path>', 'node-wide defaults (YAML)')
  .option('--ipv6', 'the ip6tables form')
  .action((pod: string, opts) => runRules(pod, opts));

program
  .command('validate')
  .description("print every pod's policy or its errors; exit 1 if any pod is rejected")
  .requiredOption('--source <spec>', 'where pods come from: file:PATH')
  .option('--config <path>', 'node-wide defaults (YAML)')
  .option('--json', 'print JSON')
  .action((opts) => {
    process.exitCode = runValidate(opts);
  });

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    // Help and version exit 0; usage errors exit 2, like the rest of the bad-input paths.
    process.exitCode = e.exitCode === 0 ? 0 : 2;
  } else if (e instanceof InputError) {
    console.error(`sluice: ${e.message}`);
    process.exitCode = 2;
  } else {
    console.error(`sluice: ${(e as Error).stack ?? e}`);
    process.exitCode = 1;
  }
}
