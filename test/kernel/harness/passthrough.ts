// What must pass through capture untouched: getsockopt calls and iptables-legacy-save's
// large getsockopt reads, observed in the pod netns before and after install.
import { runInNetns, type TestCgroup } from '../bpf-fixture.js';
import type { Topology } from './topology.js';

/** getsockopt calls that must pass through untouched, printed as JSON. */
const GETSOCKOPT_SCRIPT = `
import errno, json, socket
out = {}
def probe(name, fn):
    try:
        out[name] = fn()
    except OSError as e:
        out[name] = 'errno:' + errno.errorcode.get(e.errno, str(e.errno))
t = socket.socket()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
t6 = socket.socket(socket.AF_INET6)
probe('so_type', lambda: t.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE))
probe('congestion_16', lambda: t.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16).rstrip(b'\\0').decode())
probe('congestion_8192', lambda: t.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 8192).rstrip(b'\\0').decode())
probe('tcp_info_8192', lambda: len(t.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8192)))
probe('unknown_option_8192', lambda: t.getsockopt(socket.SOL_SOCKET, 9999, 8192).hex())
probe('orig_dst_unconnected', lambda: t.getsockopt(socket.SOL_IP, 80, 16).hex())
probe('orig_dst6_unconnected', lambda: t6.getsockopt(41, 80, 28).hex())
probe('orig_dst_udp', lambda: u.getsockopt(socket.SOL_IP, 80, 16).hex())
print(json.dumps(out, sort_keys=True))
`;

/** 300 rules: iptables-legacy-save then reads them with getsockopt buffers far above 4 KiB. */
export function manyRules(): string {
  const lines = ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]'];
  for (let i = 0; i < 300; i++) lines.push(`-A INPUT -s 10.${i >> 8}.${i & 255}.0/24 -p tcp --dport ${1000 + i} -j ACCEPT`);
  return [...lines, 'COMMIT', ''].join('\n');
}

/** The rules alone: no comment lines, and no chain counters (traffic moves them). */
const rulesOnly = (s: string) =>
  s
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .map((l) => l.replace(/ \[\d+:\d+\]$/, ''))
    .join('\n');

export async function getsockoptFacts(e: { cg: TestCgroup; topo: Topology }): Promise<string> {
  const r = await runInNetns(e.cg, e.topo.pod.path, 'python3', ['-c', GETSOCKOPT_SCRIPT]);
  if (r.code !== 0) throw new Error(`getsockopt script failed: ${r.stderr}`);
  return r.stdout.trim();
}

export async function iptablesSave(e: { cg: TestCgroup; topo: Topology }): Promise<string> {
  const r = await runInNetns(e.cg, e.topo.pod.path, 'iptables-legacy-save', []);
  if (r.code !== 0) throw new Error(`iptables-legacy-save failed: ${r.stderr}`);
  return rulesOnly(r.stdout);
}
