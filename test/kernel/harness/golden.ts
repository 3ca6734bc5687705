// Istio's own istio-iptables goldens as a capture backend (the second oracle), and the
// connection cases they are tried with. A golden is the command list of istio-iptables'
// unit test, in either of its two formats: the old one (`iptables -t nat -A ...`, one
// command a line) and the restore one (`* nat` ... `COMMIT` blocks, IPv4 first, then
// IPv6 once a table repeats). Both become iptables-restore input per family.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Connection, Protocol } from '../../../src/policy/types.js';
import { EMPTY_NAT, restore, type CaptureBackend } from './backend.js';
import type { NetnsRole, OracleCase } from './cases.js';
import { REPO_ROOT } from './requirements.js';
import { ADDRESSES, VM_ADDRESSES } from './topology.js';

export const GOLDEN_DIR = join(REPO_ROOT, 'test', 'kernel', 'fixtures', 'istio-golden');

/** iptables-restore input per family; null when the golden writes nothing for it. */
export interface GoldenRules {
  ipv4: string | null;
  ipv6: string | null;
}

type Tables = Map<string, string[]>;

function render(tables: Tables): string | null {
  if (tables.size === 0) return null;
  return [...tables].map(([table, lines]) => [`*${table}`, ...lines, 'COMMIT'].join('\n')).join('\n') + '\n';
}

export function parseGolden(text: string): GoldenRules {
  const fam: Record<4 | 6, Tables> = { 4: new Map(), 6: new Map() };
  const add = (f: 4 | 6, table: string, line: string) => {
    if (!fam[f].has(table)) fam[f].set(table, []);
    fam[f].get(table)!.push(line);
  };
  let block: { family: 4 | 6; table: string } | null = null;
  const seen = new Set<string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line === 'iptables-save' || line === 'ip6tables-save') continue;
    const header = /^\*\s*(\w+)$/.exec(line);
    if (header) {
      const table = header[1]!;
      const family = seen.has(`4:${table}`) ? 6 : 4;
      seen.add(`${family}:${table}`);
      block = { family, table };
      continue;
    }
    if (line === 'COMMIT') {
      block = null;
      continue;
    }
    const cmd = /^(ip6?tables) -t (\w+) (.*)$/.exec(line);
    if (cmd) add(cmd[1] === 'ip6tables' ? 6 : 4, cmd[2]!, cmd[3]!);
    else if (block && line.startsWith('-')) add(block.family, block.table, line);
    else throw new Error(`golden line not understood: ${JSON.stringify(line)}`);
  }
  return { ipv4: render(fam[4]), ipv6: render(fam[6]) };
}

export function readGolden(name: string): GoldenRules {
  return parseGolden(readFileSync(join(GOLDEN_DIR, `${name}.golden`), 'utf8'));
}

/** The golden's rules restored into the pod netns, as istio-init leaves them. */
export function goldenBackend(name: string): CaptureBackend {
  const rules = readGolden(name);
  return {
    name: `istio-golden:${name}`,
    async install(topo) {
      if (rules.ipv4) await restore(topo, 4, rules.ipv4);
      if (rules.ipv6) await restore(topo, 6, rules.ipv6);
    },
    async uninstall(topo) {
      await restore(topo, 4, EMPTY_NAT);
      await restore(topo, 6, EMPTY_NAT);
    },
  };
}

/** The addresses of one family in the golden topology. */
interface Fam {
  v: 'v4' | 'v6';
  pod: string;
  remote: string;
  other: string;
  loop: string;
  passthrough: string;
  vm: string;
  route: string;
}
const V4: Fam = { v: 'v4', pod: ADDRESSES.pod4, remote: ADDRESSES.remote4, other: VM_ADDRESSES.other4, loop: '127.0.0.1', passthrough: '127.0.0.6', vm: VM_ADDRESSES.vm4, route: VM_ADDRESSES.route4 };
const V6: Fam = { v: 'v6', pod: ADDRESSES.pod6, remote: ADDRESSES.remote6, other: VM_ADDRESSES.other6, loop: '::1', passthrough: '::6', vm: VM_ADDRESSES.vm6, route: VM_ADDRESSES.route6 };

/** The proxy identity of a golden (istio-iptables' --proxy-uid / --proxy-gid lists). */
export interface Identity {
  uid: number;
  gid: number;
}

type Role = 'app' | 'proxy' | 'gid-proxy';

interface GoldenSpec {
  name: string;
  from: NetnsRole;
  dst: (f: Fam) => string | null;
  port: number;
  role?: Role;
  src?: (f: Fam) => string;
  protocol?: Protocol;
}

const APP = 1000;

/** One list for every golden: each golden's settings decide which of them it captures. */
export const GOLDEN_SPECS: GoldenSpec[] = [
  { name: 'app-remote', from: 'pod', dst: (f) => f.remote, port: 80 },
  { name: 'app-other', from: 'pod', dst: (f) => f.other, port: 80 },
  { name: 'app-remote-port-32000', from: 'pod', dst: (f) => f.remote, port: 32000 },
  { name: 'app-loopback', from: 'pod', dst: (f) => f.loop, port: 8080 },
  { name: 'app-loopback-range', from: 'pod', dst: (f) => (f.v === 'v4' ? '127.1.2.3' : null), port: 8080 },
  { name: 'app-own-pod-ip', from: 'pod', dst: (f) => f.pod, port: 8080 },
  { name: 'app-vm', from: 'pod', dst: (f) => f.vm, port: 8080 },
  { name: 'app-dns-tcp', from: 'pod', dst: (f) => f.remote, port: 53 },
  { name: 'app-dns-udp', from: 'pod', dst: (f) => f.remote, port: 53, protocol: 'udp' },
  { name: 'proxy-remote', from: 'pod', dst: (f) => f.remote, port: 80, role: 'proxy' },
  { name: 'proxy-hairpin', from: 'pod', dst: (f) => f.pod, port: 8080, role: 'proxy', src: (f) => f.pod },
  { name: 'proxy-passthrough', from: 'pod', dst: (f) => f.pod, port: 8080, role: 'proxy', src: (f) => f.passthrough },
  { name: 'proxy-own-tunnel-port', from: 'pod', dst: (f) => f.pod, port: 15008, role: 'proxy' },
  { name: 'gid-proxy-remote', from: 'pod', dst: (f) => f.remote, port: 80, role: 'gid-proxy' },
  { name: 'inbound-8080', from: 'peer', dst: (f) => f.pod, port: 8080 },
  { name: 'inbound-4000', from: 'peer', dst: (f) => f.pod, port: 4000 },
  { name: 'inbound-32000', from: 'peer', dst: (f) => f.pod, port: 32000 },
  { name: 'inbound-15021', from: 'peer', dst: (f) => f.pod, port: 15021 },
  { name: 'inbound-15008', from: 'peer', dst: (f) => f.pod, port: 15008 },
  { name: 'vm-remote', from: 'vm', dst: (f) => f.remote, port: 80 },
  { name: 'vm-other', from: 'vm', dst: (f) => f.other, port: 80 },
  { name: 'vm-route-address', from: 'vm', dst: (f) => f.route, port: 8080 },
  { name: 'vm-pod-ip', from: 'vm', dst: (f) => f.pod, port: 4000 },
];

/** The cases of one golden: every spec, for the families the golden writes rules for. */
export function goldenCases(golden: string, families: ('v4' | 'v6')[], id: Identity, vmIface: string): OracleCase[] {
  const out: OracleCase[] = [];
  for (const f of [V4, V6].filter((x) => families.includes(x.v))) {
    for (const s of GOLDEN_SPECS) {
      const ip = s.dst(f);
      if (ip === null) continue;
      const protocol = s.protocol ?? 'tcp';
      const caseId = `${golden}/${s.name}-${f.v}`;
      const dst = { ip, port: s.port };
      if (s.from !== 'pod') {
        const conn: Connection = { direction: 'inbound', protocol, dst, interface: s.from === 'vm' ? vmIface : 'eth0' };
        out.push({ id: caseId, policyName: golden, conn, client: { netns: s.from } });
        continue;
      }
      const role = s.role ?? 'app';
      const uid = role === 'proxy' ? id.uid : role === 'gid-proxy' ? 0 : APP;
      const gid = role === 'app' ? APP : id.gid;
      const src = s.src?.(f);
      const conn: Connection = { direction: 'outbound', protocol, dst, uid, gid, ...(src ? { src } : {}) };
      out.push({ id: caseId, policyName: golden, conn, client: { netns: 'pod', uid, gid, ...(src ? { src } : {}) } });
    }
  }
  return out;
}
