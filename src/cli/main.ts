// The `sluice` command line.
import { Command } from 'commander';
import { CAPACITY_FLAGS, DEFAULT_CAPACITY } from '../bpf/map-table.js';
import { DEFAULT_BPFFS_DIR } from '../bpf/pins.js';
import { reportError } from './report-error.js';
import { runExplain } from './explain.js';
import { runManifest } from './manifest.js';
import { runRules } from './rules.js';
import { runValidate } from './validate.js';
// Kernel-side commands load libbpf through koffi: import them only when used, so the
// policy commands work on any machine.
const kernel = () => import('./daemon-commands.js');
const DEFAULT_LISTEN = '127.0.0.1:15099';

const program = new Command('sluice')
  .description('eBPF replacement for the iptables rules Istio installs in every meshed pod')
  .exitOverride()
  .configureOutput({ writeErr: (s) => process.stderr.write(s) });

program
  .command('explain')
  .description('show the decision a connection gets, with the spec step that made it')
  .argument('<pod>', 'NAMESPACE/NAME, or NAME in namespace default')
  .argument('<dst>', 'IP:PORT or [IPv6]:PORT')
  .requiredOption('--source <spec>', 'where pods come from: file:PATH, or kubernetes')
  .option('--kubeconfig <path>', 'kubeconfig (kubernetes source; default: $KUBECONFIG, else in-cluster)')
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
  .requiredOption('--source <spec>', 'where pods come from: file:PATH, or kubernetes')
  .option('--kubeconfig <path>', 'kubeconfig (kubernetes source; default: $KUBECONFIG, else in-cluster)')
  .option('--config <path>', 'node-wide defaults (YAML)')
  .option('--ipv6', 'the ip6tables form')
  .action((pod: string, opts) => runRules(pod, opts));

program
  .command('validate')
  .description("print every pod's policy or its errors; exit 1 if any pod is rejected")
  .requiredOption('--source <spec>', 'where pods come from: file:PATH, or kubernetes')
  .option('--kubeconfig <path>', 'kubeconfig (kubernetes source; default: $KUBECONFIG, else in-cluster)')
  .option('--config <path>', 'node-wide defaults (YAML)')
  .option('--json', 'print JSON')
  .action(async (opts) => {
    process.exitCode = await runValidate(opts);
  });

program
  .command('run')
  .description('the daemon: attach the programs and keep pod policies in sync with the source')
  .requiredOption('--source <spec>', 'where pods come from: kubernetes (informers for this node), or file:PATH (watched for changes)')
  .option('--node <name>', 'this node (kubernetes source; default: $NODE_NAME)')
  .option('--kubeconfig <path>', 'kubeconfig (kubernetes source; default: $KUBECONFIG, else in-cluster)')
  .option('--proc-root <dir>', "the host's /proc, where pod processes are found (kubernetes source)", '/proc')
  .option('--config <path>', 'node-wide defaults (YAML)')
  .option('--cgroup <dir>', 'cgroup v2 directory to attach to (default: the cgroup2 mount)')
  .option('--bpffs <dir>', 'pin directory', DEFAULT_BPFFS_DIR)
  .option('--listen <addr>', 'HTTP address', DEFAULT_LISTEN)
  .option('--lookup-socket <path>', 'unix socket for original-destination lookups (mode 0600: root only)')
  .option('--lookup-group <group>', 'group NAME or GID that may also connect to the lookup socket (mode 0660)')
  .option('--accelerate', 'sk_msg acceleration of local socket pairs (off by default; refused where `sluice doctor` finds the sockmap regression)')
  .option('--accelerate-force', 'implies --accelerate, and enables it even on a kernel with the sockmap regression (benchmarks)')
  .option(`${CAPACITY_FLAGS.pods} <n>`, 'capacity of the pod policy map', String(DEFAULT_CAPACITY.pods))
  .option(`${CAPACITY_FLAGS.connections} <n>`, 'capacity of the original-destination map', String(DEFAULT_CAPACITY.connections))
  .option('--resync <seconds>', 'reconcile this often even when the source is unchanged (notices vanished netns)', '10')
  .option('--hold-unknown', "refuse a captured pod's outbound connects until its policy is written (no bypass while the daemon lags)")
  .option('--max-connections-per-pod <n>', 'original-destination records one pod may hold (default: a quarter of --max-connections)')
  .option('--bpf-objects <dir>', 'directory of the BPF objects to load (an upgrade test; default: the build next to this program)')
  .option('--host-netns <path>', "the host's netns, never captured (as the daemon's own netns is)", '/proc/1/ns/net')
  .action(async (opts) => (await kernel()).runRun(opts));

program
  .command('manifest')
  .description('print the Kubernetes install (Namespace, RBAC, DaemonSet) as YAML; --uninstall prints the clean-up')
  .option('--image <ref>', 'the sluice image')
  .option('--namespace <ns>', 'namespace for the daemon')
  .option('--host-cgroup <dir>', "the nodes' cgroup2 mount", '/sys/fs/cgroup')
  .option('--bpffs <dir>', 'pin directory on the nodes', DEFAULT_BPFFS_DIR)
  .option('--listen <addr>', "the daemon's HTTP address on the node", DEFAULT_LISTEN)
  .option('--lookup-socket <path>', 'lookup socket on the node (under /run/sluice)')
  .option('--max-pods <n>', 'passed to sluice run')
  .option('--max-connections <n>', 'passed to sluice run')
  .option('--resync <seconds>', 'passed to sluice run')
  .option('--accelerate', 'passed to sluice run')
  .option('--accelerate-force', 'passed to sluice run')
  .option('--uninstall', 'print the DaemonSet that runs `sluice uninstall` on every node instead')
  .action((opts) => runManifest(opts));

program
  .command('status')
  .description('what is attached and pinned, per-pod state and counters')
  .option('--bpffs <dir>', 'pin directory', DEFAULT_BPFFS_DIR)
  .option('--listen <addr>', "the daemon's HTTP address", DEFAULT_LISTEN)
  .option('--source <spec>', 'also list the pods of this source (kubernetes or file:PATH) and whether the kernel holds each one\'s policy')
  .option('--kubeconfig <path>', 'kubeconfig (kubernetes source; default: $KUBECONFIG, else in-cluster)')
  .option('--node <name>', 'this node (kubernetes source; default: $NODE_NAME)')
  .option('--proc-root <dir>', "the host's /proc (kubernetes source)", '/proc')
  .option('--config <path>', 'node-wide defaults (YAML)')
  .option('--json', 'print JSON')
  .action(async (opts) => (await kernel()).runStatus(opts));

program
  .command('lookup')
  .description("the original destination of a connection, given the proxy side's peer and local address")
  .argument('<src>', 'peer IP:PORT as the proxy sees it')
  .argument('<dst>', 'local IP:PORT as the proxy sees it')
  .option('--bpffs <dir>', 'pin directory', DEFAULT_BPFFS_DIR)
  .option('--netns <cookie>', 'netns cookie (needed for loopback addresses)')
  .action(async (src: string, dst: string, opts) => {
    process.exitCode = (await kernel()).runLookup(src, dst, opts);
  });

program
  .command('uninstall')
  .description('detach every link and remove every pin and map')
  .option('--cgroup <dir>', 'accepted for symmetry with run; links are found through their pins')
  .option('--bpffs <dir>', 'pin directory', DEFAULT_BPFFS_DIR)
  .option('--json', 'print JSON')
  .action(async (opts) => (await kernel()).runUninstall(opts));

program
  .command('doctor')
  .description('kernel features, cgroup2, bpffs, BTF and the sockmap wake-up regression')
  .option('--bpffs <dir>', 'pin directory', DEFAULT_BPFFS_DIR)
  .option('--listen <addr>', "the daemon's HTTP address, for the pod checks", DEFAULT_LISTEN)
  .option('--json', 'print JSON')
  .action(async (opts) => {
    process.exitCode = await (await kernel()).runDoctorCommand(opts);
  });

program
  .command('demo')
  .description('two pods with HAProxy sidecars (uid 1337) captured by a live daemon: real traffic, the path each request took, then cleanup')
  .option('--json', 'print one JSON report')
  .action(async (opts: { json?: boolean }) => {
    // The same refusal as sluice run, before the demo builds its pods.
    (await kernel()).refuseKernelWithoutHooks();
    const { runDemo } = await import('../demo/demo.js');
    const report = await runDemo(opts);
    if (opts.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    process.exitCode = report.ok ? 0 : 1;
  });

try {
  await program.parseAsync(process.argv);
} catch (e) {
  process.exitCode = reportError(e);
}
