// policy → iptables-restore input equivalent to what istio-iptables writes (REDIRECT mode).
// This is the baseline the kernel oracle and the benchmark compare sluice against.
import { cidrHasLoopback, ipFamily } from './net.js';
import { DNS_PORT, type CapturePolicy, type Family } from './types.js';

export interface RenderedRules {
  ipv4: string;
  ipv6: string;
}

const CHAINS = ['ISTIO_INBOUND', 'ISTIO_IN_REDIRECT', 'ISTIO_OUTPUT', 'ISTIO_REDIRECT'];

function byFamily(list: string[], family: Family): string[] {
  return list.filter((cidr) => ipFamily(cidr.split('/')[0]!) === family);
}

function host(ip: string, family: Family): string {
  return `${ip}/${family === 4 ? 32 : 128}`;
}

export function renderIptables(policy: CapturePolicy): RenderedRules {
  return { ipv4: renderFamily(policy, 4), ipv6: renderFamily(policy, 6) };
}

function renderFamily(policy: CapturePolicy, family: Family): string {
  const { ports } = policy;
  const loop = family === 4 ? '127.0.0.1/32' : '::1/128';
  const passthrough = family === 4 ? '127.0.0.6/32' : '::6/128';
  const include = policy.includeOutboundIPRanges === '*' ? '*' : byFamily(policy.includeOutboundIPRanges, family);
  const keepLoopbackCapture = include !== '*' && include.some(cidrHasLoopback);
  const dns = policy.dnsCapture;
  const rules: string[] = [];
  const add = (chain: string, spec: string) => rules.push(`-A ${chain} ${spec}`);

  // Inbound (PREROUTING). Reroute interfaces first: they behave like outbound traffic.
  if (include === '*' || include.length > 0) {
    for (const iface of policy.rerouteInterfaces) {
      if (include === '*') add('PREROUTING', `-i ${iface} -p tcp -j ISTIO_REDIRECT`);
      else for (const cidr of include) add('PREROUTING', `-i ${iface} -d ${cidr} -p tcp -j ISTIO_REDIRECT`);
    }
  }
  for (const iface of policy.rerouteInterfaces) add('PREROUTING', `-i ${iface} -j RETURN`);
  for (const iface of policy.excludeInterfaces) add('PREROUTING', `-i ${iface} -j RETURN`);
  const inbound = policy.includeInboundPorts;
  if (inbound === '*' || inbound.length > 0) {
    add('PREROUTING', '-p tcp -j ISTIO_INBOUND');
    add('ISTIO_INBOUND', `-p tcp --dport ${ports.tunnel} -j RETURN`);
    if (inbound === '*') {
      for (const p of policy.excludeInboundPorts) add('ISTIO_INBOUND', `-p tcp --dport ${p} -j RETURN`);
      add('ISTIO_INBOUND', '-p tcp -j ISTIO_IN_REDIRECT');
    } else {
      for (const p of inbound) add('ISTIO_INBOUND', `-p tcp --dport ${p} -j ISTIO_IN_REDIRECT`);
    }
  }
  add('ISTIO_IN_REDIRECT', `-p tcp -j REDIRECT --to-ports ${ports.inbound}`);
  add('ISTIO_REDIRECT', `-p tcp -j REDIRECT --to-ports ${ports.outbound}`);

  // Outbound (OUTPUT → ISTIO_OUTPUT), one rule per spec step, in order.
  for (const iface of policy.excludeInterfaces) add('OUTPUT', `-o ${iface} -j RETURN`);
  add('OUTPUT', '-p tcp -j ISTIO_OUTPUT');
  if (dns) add('OUTPUT', `-p udp --dport ${DNS_PORT} -j ISTIO_OUTPUT`);
  for (const p of policy.excludeOutboundPorts) {
    add('ISTIO_OUTPUT', `-p tcp --dport ${p} -j RETURN`);
    add('ISTIO_OUTPUT', `-p udp --dport ${p} -j RETURN`);
  }
  add('ISTIO_OUTPUT', `-o lo -s ${passthrough} -j RETURN`);
  const ownerRules = (match: '--uid-owner' | '--gid-owner', ids: number[], excludeDns: boolean) => {
    const hairpinPorts = excludeDns && dns ? `-m multiport ! --dports ${ports.tunnel},${DNS_PORT}` : `! --dport ${ports.tunnel}`;
    const localReturn = dns ? `-o lo -p tcp ! --dport ${DNS_PORT}` : '-o lo';
    for (const id of ids) {
      add('ISTIO_OUTPUT', `-o lo ! -d ${loop} -p tcp ${hairpinPorts} -m owner ${match} ${id} -j ISTIO_IN_REDIRECT`);
      if (!keepLoopbackCapture) add('ISTIO_OUTPUT', `${localReturn} -m owner ! ${match} ${id} -j RETURN`);
      add('ISTIO_OUTPUT', `-m owner ${match} ${id} -j RETURN`);
    }
  };
  ownerRules('--uid-owner', policy.proxyUids, true);
  ownerRules('--gid-owner', policy.proxyGids, false);
  if (dns) {
    add('ISTIO_OUTPUT', `-p tcp --dport ${DNS_PORT} -j REDIRECT --to-ports ${ports.dns}`);
    add('ISTIO_OUTPUT', `-p udp --dport ${DNS_PORT} -j REDIRECT --to-ports ${ports.dns}`);
  }
  add('ISTIO_OUTPUT', `-d ${loop} -j RETURN`);
  for (const cidr of byFamily(policy.excludeOutboundIPRanges, family)) add('ISTIO_OUTPUT', `-d ${cidr} -j RETURN`);
  for (const bind of policy.excludeOutboundBinds) {
    if (ipFamily(bind.address) !== family) continue;
    add('ISTIO_OUTPUT', bind.port === null ? `-d ${host(bind.address, family)} -j RETURN` : `-d ${host(bind.address, family)} -p tcp --dport ${bind.port} -j RETURN`);
  }
  for (const p of policy.includeOutboundPorts) add('ISTIO_OUTPUT', `-p tcp --dport ${p} -j ISTIO_REDIRECT`);
  if (include === '*') add('ISTIO_OUTPUT', '-j ISTIO_REDIRECT');
  else for (const cidr of include) add('ISTIO_OUTPUT', `-d ${cidr} -j ISTIO_REDIRECT`);

  return [
    `# sluice: istio-iptables equivalent for ${policy.pod.namespace}/${policy.pod.name} (IPv${family})`,
    ...(policy.interceptionMode === 'TPROXY'
      ? ['# interceptionMode TPROXY: sluice captures it as REDIRECT with the same decisions; its inbound keeps the original addresses (no NAT), as TPROXY does. These are the REDIRECT-mode rules.']
      : []),
    '*nat',
    ':PREROUTING ACCEPT [0:0]',
    ':INPUT ACCEPT [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    ':POSTROUTING ACCEPT [0:0]',
    ...CHAINS.map((c) => `:${c} - [0:0]`),
    ...rules,
    'COMMIT',
    '',
  ].join('\n');
}
