/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * reroute.h: capture-spec inbound step 1 for traffic that is forwarded, not delivered:
 * a VM behind a reroute (KubeVirt) interface connects to a remote address, the pod only
 * routes it, so neither the cgroup hooks nor sk_lookup ever see it. Istio REDIRECTs it in
 * PREROUTING to the outbound listener. Here tc does the same, statelessly per packet, with
 * one record per connection in sluice_conns:
 *  - ingress, SYN: decide_inbound() says P_OUT (step IN_1): record the destination the
 *    VM asked for under the key the proxy's accepted socket computes (VM address and port,
 *    pod IP and P_OUT), so getsockopt answers SO_ORIGINAL_DST from it, then rewrite the
 *    destination to the pod IP and P_OUT (a DNAT: the kernel delivers it locally);
 *  - ingress, later packets with a record: the same rewrite;
 *  - egress: packets from pod IP:P_OUT to a recorded VM connection get the original
 *    destination back as their source (the reverse NAT REDIRECT does), so the VM's socket
 *    sees the remote it asked for.
 * sockops adopts the record on the proxy's accepted socket and deletes it at close.
 * Why not bpf_sk_assign (the inbound spike): a socket assigned to a packet for a remote
 * address answers from that address, which IPv4 only allows an IP_TRANSPARENT listener,
 * and the proxy's REDIRECT-mode listener is not one. BPF-only.
 */
#ifndef SLUICE_REROUTE_H
#define SLUICE_REROUTE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "sluice.h"
#include "maps.h"
#include "endpoint.h"
#include "decide.h"
#include "redirect.h"

#define REROUTE_L3_OFF ETH_HLEN
#define IPV4_CSUM_OFF 10
#define IPV4_SRC_OFF 12
#define IPV4_DST_OFF 16
#define IPV6_SRC_OFF 8
#define IPV6_DST_OFF 24
#define IPV6_HDR_LEN 40
#define TCP_CSUM_OFF 16
#define TCP_FLAGS_OFF 13
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_ACK 0x10
#define IPV4_FRAG_MASK 0x3fff /* MF and the fragment offset, host order */

/* The facts of one TCP packet a reroute program needs. */
struct reroute_pkt {
	struct endpoint src;
	struct endpoint dst;
	__u32 l4_off;
	__u8 tcp_flags;
};

/* Parses an unfragmented TCP packet over IPv4 or IPv6 (no extension headers). 0: not one. */
static __always_inline int reroute_parse(struct __sk_buff *skb, struct reroute_pkt *pk)
{
	__u8 h[IPV6_HDR_LEN];
	__be16 ports[2];

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		if (bpf_skb_load_bytes(skb, REROUTE_L3_OFF, h, 20))
			return 0;
		if ((h[0] >> 4) != 4 || (h[0] & 0xf) < 5 || h[9] != IPPROTO_TCP)
			return 0;
		if (((h[6] << 8) | h[7]) & IPV4_FRAG_MASK)
			return 0;
		pk->l4_off = REROUTE_L3_OFF + (h[0] & 0xf) * 4;
		endpoint_set4(&pk->src, *(__be32 *)&h[IPV4_SRC_OFF], 0);
		endpoint_set4(&pk->dst, *(__be32 *)&h[IPV4_DST_OFF], 0);
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		const __be32 *s = (const __be32 *)&h[IPV6_SRC_OFF], *d = (const __be32 *)&h[IPV6_DST_OFF];

		if (bpf_skb_load_bytes(skb, REROUTE_L3_OFF, h, IPV6_HDR_LEN))
			return 0;
		if ((h[0] >> 4) != 6 || h[6] != IPPROTO_TCP)
			return 0;
		pk->l4_off = REROUTE_L3_OFF + IPV6_HDR_LEN;
		endpoint_set6(&pk->src, s[0], s[1], s[2], s[3], 0);
		endpoint_set6(&pk->dst, d[0], d[1], d[2], d[3], 0);
	} else {
		return 0;
	}
	if (bpf_skb_load_bytes(skb, pk->l4_off, ports, sizeof(ports)) ||
	    bpf_skb_load_bytes(skb, pk->l4_off + TCP_FLAGS_OFF, &pk->tcp_flags, 1))
		return 0;
	pk->src.port = ports[0];
	pk->dst.port = ports[1];
	return 1;
}

/* Rewrites the source (dst = 0) or destination (dst = 1) of the packet from `from` to
 * `to`, address and port, keeping the IPv4 and TCP checksums right. 0 on success. */
static __always_inline int reroute_rewrite(struct __sk_buff *skb, const struct reroute_pkt *pk, int dst,
					   struct endpoint *from, struct endpoint *to)
{
	__u32 csum = pk->l4_off + TCP_CSUM_OFF;
	__u32 port_off = pk->l4_off + (dst ? 2 : 0);

	if (from->family == SLUICE_FAMILY_IPV4) {
		__u32 off = REROUTE_L3_OFF + (dst ? IPV4_DST_OFF : IPV4_SRC_OFF);

		if (bpf_l4_csum_replace(skb, csum, from->addr[0], to->addr[0], BPF_F_PSEUDO_HDR | 4) ||
		    bpf_l3_csum_replace(skb, REROUTE_L3_OFF + IPV4_CSUM_OFF, from->addr[0], to->addr[0], 4) ||
		    bpf_skb_store_bytes(skb, off, &to->addr[0], 4, 0))
			return -1;
	} else {
		__u32 off = REROUTE_L3_OFF + (dst ? IPV6_DST_OFF : IPV6_SRC_OFF);
		__s64 diff = bpf_csum_diff(from->addr, 16, to->addr, 16, 0);

		if (diff < 0 || bpf_l4_csum_replace(skb, csum, 0, (__u32)diff, BPF_F_PSEUDO_HDR) ||
		    bpf_skb_store_bytes(skb, off, to->addr, 16, 0))
			return -1;
	}
	if (bpf_l4_csum_replace(skb, csum, from->port, to->port, 2) || bpf_skb_store_bytes(skb, port_off, &to->port, 2, 0))
		return -1;
	return 0;
}

static __always_inline int endpoint_addr_eq(const struct endpoint *a, const struct endpoint *b)
{
	return a->family == b->family && a->addr[0] == b->addr[0] && a->addr[1] == b->addr[1] && a->addr[2] == b->addr[2] &&
	       a->addr[3] == b->addr[3];
}

/* The outbound listener's address for a rerouted connection: the pod IP and P_OUT. */
static __always_inline int reroute_listener(const struct sluice_pod_policy *p, __u8 family, struct endpoint *l)
{
	if (!pod_ip_of(p, family, l))
		return 0;
	l->port = p->port_outbound;
	return 1;
}

/* The original destination recorded for the connection (VM end `client`, listener `l`)
 * by this program, into `orig`; 0 when there is none. */
static __always_inline int reroute_recorded(const struct endpoint *client, const struct endpoint *l, __u64 netns_cookie,
					    struct endpoint *orig)
{
	struct sluice_conn_key key;
	struct sluice_orig_dst *rec;

	conn_key_make(&key, client, l, netns_cookie);
	rec = bpf_map_lookup_elem(&sluice_conns, &key);
	if (!rec || rec->step != SLUICE_STEP_IN_1)
		return 0;
	addr_copy(orig->addr, rec->addr);
	orig->port = rec->port;
	orig->family = rec->family;
	return 1;
}

/* The pod's policy, when the packet is TCP and the pod has interface sets; else NULL. */
static __always_inline const struct sluice_pod_policy *reroute_policy(struct __sk_buff *skb, __u64 netns_cookie,
								      struct reroute_pkt *pk)
{
	const struct sluice_pod_policy *p = pod_policy(netns_cookie);

	if (!p || !(p->flags & SLUICE_POLICY_HAS_INTERFACES) || !reroute_parse(skb, pk))
		return NULL;
	return p;
}

static __always_inline int reroute_listener_present(__u64 netns_cookie, __be16 port, __u8 family)
{
	struct sluice_listener_key key = { .netns_cookie = netns_cookie, .port = port, .family = family };
	struct bpf_sock *sk = bpf_map_lookup_elem(&sluice_listen, &key);

	/* An IPv6 listener that is not v6-only also takes IPv4. */
	if (!sk && family == SLUICE_FAMILY_IPV4) {
		key.family = SLUICE_FAMILY_IPV6;
		sk = bpf_map_lookup_elem(&sluice_listen, &key);
	}
	if (!sk)
		return 0;
	bpf_sk_release(sk);
	return 1;
}

/* A new connection from the VM: decide, record and rewrite. Returns a TC_ACT_*. */
static __always_inline int reroute_new_connection(struct __sk_buff *skb, const struct sluice_pod_policy *p,
						  struct reroute_pkt *pk, struct endpoint *l, __u64 netns_cookie)
{
	struct inbound_conn c = { .ifindex = skb->ingress_ifindex, .tcp = 1 };
	struct sluice_orig_dst rec = {};
	struct sluice_conn_key key;
	struct decision d;

	c.src = pk->src;
	c.dst = pk->dst;
	d = decide_inbound(p, &c);
	if (d.step != SLUICE_STEP_IN_1)
		return TC_ACT_OK; /* not a reroute interface: sk_lookup decides what is delivered */
	count_decision(d.outcome, d.step);
	if (d.outcome != SLUICE_OUTCOME_OUTBOUND_PROXY)
		return TC_ACT_OK;
	if (!reroute_listener_present(netns_cookie, d.port, pk->dst.family)) {
		/* Like REDIRECT to a port nobody listens on: refused, never around the proxy. */
		count(SLUICE_COUNTER_INBOUND_NO_LISTENER);
		return TC_ACT_SHOT;
	}
	addr_copy(rec.addr, pk->dst.addr);
	rec.port = pk->dst.port;
	rec.family = pk->dst.family;
	rec.outcome = d.outcome;
	rec.step = d.step;
	/* Tells this connection's record from a later one on the same tuple (sockops). */
	rec.owner_cookie = bpf_ktime_get_ns() | 1;
	conn_key_make(&key, &pk->src, l, netns_cookie);
	if (bpf_map_update_elem(&sluice_conns, &key, &rec, BPF_ANY)) {
		count(SLUICE_COUNTER_CONN_MAP_FULL);
		return TC_ACT_SHOT; /* fail closed */
	}
	if (reroute_rewrite(skb, pk, 1, &pk->dst, l)) {
		count(SLUICE_COUNTER_INBOUND_ASSIGN_FAILED);
		return TC_ACT_SHOT;
	}
	return TC_ACT_OK;
}

#endif /* SLUICE_REROUTE_H */
