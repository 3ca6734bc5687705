/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * decide.h: capture-spec.md's outbound steps 1-10 and inbound steps 1-5, one helper per
 * step. The names follow src/policy/decide.ts (decideOutbound, ownerStepsSluice,
 * hairpinTarget, localReturnTarget, inIncludeRanges, isLocalAddress, decideInbound) so the
 * two can be read side by side. Only sluice's behaviour is implemented (istioQuirks off):
 * proxy ids are matched as sets. BPF-only.
 */
#ifndef SLUICE_DECIDE_H
#define SLUICE_DECIDE_H

#include <linux/bpf.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "sluice.h"
#include "maps.h"
#include "endpoint.h"

#define DNS_PORT 53

struct decision {
	__u8 outcome; /* enum sluice_outcome */
	__u8 step;    /* enum sluice_step */
	__be16 port;  /* the listener that gets the connection (network order) */
};

struct outbound_conn {
	struct endpoint dst;
	struct endpoint src; /* the bound source; family 0 when unbound */
	__u32 uid;           /* the socket creator's fsuid, or SLUICE_NO_OWNER */
	__u32 gid;
	__u8 tcp;
};

struct inbound_conn {
	struct endpoint src;
	struct endpoint dst;
	__u32 ifindex; /* arrival interface, inside the pod's netns */
	__u8 tcp;
};

static __always_inline struct decision pass(enum sluice_step step, __be16 port)
{
	return (struct decision){ .outcome = SLUICE_OUTCOME_PASS, .step = step, .port = port };
}

static __always_inline struct decision proxied(enum sluice_outcome outcome, enum sluice_step step, __be16 port)
{
	return (struct decision){ .outcome = outcome, .step = step, .port = port };
}

static __always_inline int port_in_set(const struct sluice_pod_policy *p, enum sluice_port_set set, __be16 port)
{
	struct sluice_port_key key = { .pod_id = p->pod_id, .set = set, .port = port };

	return bpf_map_lookup_elem(&sluice_ports, &key) != NULL;
}

/* The value of the longest CIDR of `set` holding `ep`, or -1 when none does. */
static __always_inline int cidr_lookup(const struct sluice_pod_policy *p, enum sluice_cidr_set set,
				       const struct endpoint *ep)
{
	struct sluice_cidr_key key = {
		.prefixlen = SLUICE_CIDR_KEY_FIXED_BITS + (ep->family == SLUICE_FAMILY_IPV4 ? BITS_IPV4 : BITS_IPV6),
		.pod_id = p->pod_id,
		.set = set,
		.family = ep->family,
	};
	__u32 *v;

	addr_copy(key.addr, ep->addr);
	v = bpf_map_lookup_elem(&sluice_cidrs, &key);
	return v ? (int)*v : -1;
}

static __always_inline int iface_in_set(const struct sluice_pod_policy *p, enum sluice_iface_set set, __u32 ifindex)
{
	struct sluice_iface_key key = { .pod_id = p->pod_id, .set = set, .ifindex = ifindex };

	return bpf_map_lookup_elem(&sluice_ifaces, &key) != NULL;
}

static __always_inline int id_in_list(const __u32 *ids, __u8 n, __u32 id)
{
	if (id == SLUICE_NO_OWNER)
		return 0;
#pragma unroll
	for (int i = 0; i < SLUICE_MAX_PROXY_IDS; i++)
		if (i < n && ids[i] == id)
			return 1;
	return 0;
}

static __always_inline int is_pod_ip(const struct sluice_pod_policy *p, const struct endpoint *ep)
{
#pragma unroll
	for (int i = 0; i < SLUICE_MAX_POD_IPS; i++) {
		if (ep->family == SLUICE_FAMILY_IPV4) {
			if (i < p->n_ip4 && p->ip4[i] == ep->addr[0])
				return 1;
		} else if (i < p->n_ip6 && p->ip6[i][0] == ep->addr[0] && p->ip6[i][1] == ep->addr[1] &&
			   p->ip6[i][2] == ep->addr[2] && p->ip6[i][3] == ep->addr[3]) {
			return 1;
		}
	}
	return 0;
}

/* A local address: the pod's own IPs, 127.0.0.0/8, ::1 and ::6. */
static __always_inline int is_local_address(const struct sluice_pod_policy *p, const struct endpoint *ep)
{
	if (endpoint_is_loopback(ep))
		return 1;
	if (ep->family == SLUICE_FAMILY_IPV6 && ip6_words_zero_then(ep->addr, IPV6_PASSTHROUGH_LAST))
		return 1;
	return is_pod_ip(p, ep);
}

static __always_inline int in_include_ranges(const struct sluice_pod_policy *p, const struct endpoint *ep)
{
	if (p->flags & SLUICE_POLICY_OUT_INCLUDE_ALL)
		return 1;
	return !(p->flags & SLUICE_POLICY_NO_OUT_INCLUDE_CIDRS) && cidr_lookup(p, SLUICE_CIDRS_OUT_INCLUDE, ep) > 0;
}

/* Facts shared by the outbound steps, computed once. */
struct outbound_facts {
	__u8 local;
	__u8 loop;
	__u8 dns;
	__u8 keep_loopback_capture; /* steps 4b is absent: an include CIDR holds a loopback address */
	__u8 is_uid;
	__u8 is_gid;
};

/* 1. The route leaves by an excluded interface. A local destination leaves by lo. */
static __always_inline int outbound_1_excluded_interface(const struct sluice_pod_policy *p,
							 const struct outbound_conn *c,
							 const struct outbound_facts *f)
{
	if (f->local)
		return (p->flags & SLUICE_POLICY_EXCLUDE_LOOPBACK_IF) != 0;
	return (p->flags & SLUICE_POLICY_ROUTE_CHECK) && cidr_lookup(p, SLUICE_CIDRS_ROUTE, &c->dst) > 0;
}

/* 2. Excluded port, TCP and UDP. */
static __always_inline int outbound_2_excluded_port(const struct sluice_pod_policy *p, const struct outbound_conn *c)
{
	return port_in_set(p, SLUICE_PORTS_OUT_EXCLUDE, c->dst.port);
}

/* 3. The proxy forwarding inbound traffic to the app from the passthrough source. */
static __always_inline int outbound_3_passthrough_source(const struct outbound_conn *c, const struct outbound_facts *f)
{
	return f->local && endpoint_is_passthrough(&c->src);
}

/* Step 4a/5a precondition: the proxy reaching its own pod through a non-LOOP local address. */
static __always_inline int hairpin_target(const struct sluice_pod_policy *p, const struct outbound_conn *c,
					  const struct outbound_facts *f, int exclude_dns)
{
	return c->tcp && f->local && !f->loop && c->dst.port != p->port_tunnel &&
	       !(exclude_dns && f->dns && c->dst.port == bpf_htons(DNS_PORT));
}

/* Step 4b precondition; with DNS on, only TCP to a port other than 53 is returned. */
static __always_inline int local_return_target(const struct outbound_conn *c, const struct outbound_facts *f)
{
	return !f->keep_loopback_capture && f->local && (!f->dns || (c->tcp && c->dst.port != bpf_htons(DNS_PORT)));
}

/* 4-5. Proxy identity, with Istio's two quirks fixed: uids and gids are matched as sets,
 * so every proxy uid gets the hairpin and a proxy-gid socket is not returned at 4b. */
static __always_inline int owner_steps_sluice(const struct sluice_pod_policy *p, const struct outbound_conn *c,
					      const struct outbound_facts *f, struct decision *d)
{
	if (f->is_uid && hairpin_target(p, c, f, 1))
		*d = proxied(SLUICE_OUTCOME_INBOUND_PROXY, SLUICE_STEP_OUT_4A, p->port_inbound);
	else if (!f->is_uid && !f->is_gid && local_return_target(c, f))
		*d = pass(SLUICE_STEP_OUT_4B, c->dst.port);
	else if (f->is_uid)
		*d = pass(SLUICE_STEP_OUT_4C, c->dst.port);
	else if (f->is_gid && hairpin_target(p, c, f, 0))
		*d = proxied(SLUICE_OUTCOME_INBOUND_PROXY, SLUICE_STEP_OUT_5A, p->port_inbound);
	else if (f->is_gid)
		*d = pass(SLUICE_STEP_OUT_5C, c->dst.port);
	else
		return 0;
	return 1;
}

/* 6. DNS capture: all port-53 traffic, TCP and UDP. */
static __always_inline int outbound_6_dns(const struct outbound_conn *c, const struct outbound_facts *f)
{
	return f->dns && c->dst.port == bpf_htons(DNS_PORT);
}

/* 8. Excluded CIDRs, and Sidecar egress listeners with captureMode NONE. */
static __always_inline int outbound_8_excluded_destination(const struct sluice_pod_policy *p,
							   const struct outbound_conn *c)
{
	struct sluice_bind_key key = { .pod_id = p->pod_id, .port = c->dst.port, .family = c->dst.family };

	if (!(p->flags & SLUICE_POLICY_NO_OUT_EXCLUDE_CIDRS) && cidr_lookup(p, SLUICE_CIDRS_OUT_EXCLUDE, &c->dst) > 0)
		return 1;
	if (!(p->flags & SLUICE_POLICY_HAS_BINDS))
		return 0;
	addr_copy(key.addr, c->dst.addr);
	if (bpf_map_lookup_elem(&sluice_binds, &key))
		return 1;
	key.port = 0; /* a bind exclusion for every port of the address */
	return bpf_map_lookup_elem(&sluice_binds, &key) != NULL;
}

/* 9. Included ports. */
static __always_inline int outbound_9_included_port(const struct sluice_pod_policy *p, const struct outbound_conn *c)
{
	return c->tcp && port_in_set(p, SLUICE_PORTS_OUT_INCLUDE, c->dst.port);
}

static __always_inline struct decision decide_outbound(const struct sluice_pod_policy *p, const struct outbound_conn *c)
{
	struct outbound_facts f = {
		.local = is_local_address(p, &c->dst),
		.loop = endpoint_is_loop_host(&c->dst),
		.dns = (p->flags & SLUICE_POLICY_DNS_CAPTURE) != 0,
		.keep_loopback_capture = (p->flags & (c->dst.family == SLUICE_FAMILY_IPV4 ? SLUICE_POLICY_KEEP_LOOPBACK4
											 : SLUICE_POLICY_KEEP_LOOPBACK6)) != 0,
		.is_uid = id_in_list(p->uids, p->n_uids, c->uid),
		.is_gid = id_in_list(p->gids, p->n_gids, c->gid),
	};
	struct decision d;

	if (outbound_1_excluded_interface(p, c, &f))
		return pass(SLUICE_STEP_OUT_1, c->dst.port);
	if (outbound_2_excluded_port(p, c))
		return pass(SLUICE_STEP_OUT_2, c->dst.port);
	if (outbound_3_passthrough_source(c, &f))
		return pass(SLUICE_STEP_OUT_3, c->dst.port);
	if (owner_steps_sluice(p, c, &f, &d))
		return d;
	if (outbound_6_dns(c, &f))
		return proxied(SLUICE_OUTCOME_DNS_PROXY, SLUICE_STEP_OUT_6, p->port_dns);
	if (f.loop) /* 7 */
		return pass(SLUICE_STEP_OUT_7, c->dst.port);
	if (outbound_8_excluded_destination(p, c))
		return pass(SLUICE_STEP_OUT_8, c->dst.port);
	if (outbound_9_included_port(p, c))
		return proxied(SLUICE_OUTCOME_OUTBOUND_PROXY, SLUICE_STEP_OUT_9, p->port_outbound);
	if (c->tcp && in_include_ranges(p, &c->dst)) /* 10 */
		return proxied(SLUICE_OUTCOME_OUTBOUND_PROXY, SLUICE_STEP_OUT_10, p->port_outbound);
	return pass(SLUICE_STEP_OUT_10, c->dst.port);
}

/* Inbound applies to connections from outside the pod. One from inside (the proxy
 * reaching the app from 127.0.0.6, the app reaching its own pod IP) has a local source;
 * it may still carry the pod interface's ifindex, which the kernel keeps for traffic to
 * that interface's address although it runs over lo. */
static __always_inline struct decision decide_inbound(const struct sluice_pod_policy *p, const struct inbound_conn *c)
{
	__be16 dport = c->dst.port;
	int has_ifaces = (p->flags & SLUICE_POLICY_HAS_INTERFACES) != 0;

	if (c->ifindex == LOOPBACK_IFINDEX || is_local_address(p, &c->src))
		return pass(SLUICE_STEP_IN_LOOPBACK, dport);
	/* 1. Reroute (kubevirt) interfaces send VM traffic through the outbound listener. */
	if (has_ifaces && iface_in_set(p, SLUICE_IFACES_REROUTE, c->ifindex)) {
		if (c->tcp && in_include_ranges(p, &c->dst))
			return proxied(SLUICE_OUTCOME_OUTBOUND_PROXY, SLUICE_STEP_IN_1, p->port_outbound);
		return pass(SLUICE_STEP_IN_1, dport);
	}
	/* 2. Excluded interface. */
	if (has_ifaces && iface_in_set(p, SLUICE_IFACES_EXCLUDE, c->ifindex))
		return pass(SLUICE_STEP_IN_2, dport);
	/* 3. Only TCP, and only when some inbound port is captured. */
	if (!c->tcp || !(p->flags & (SLUICE_POLICY_IN_INCLUDE_ALL | SLUICE_POLICY_IN_INCLUDE_LIST)))
		return pass(SLUICE_STEP_IN_3, dport);
	/* 4. The tunnel port. */
	if (dport == p->port_tunnel)
		return pass(SLUICE_STEP_IN_4, dport);
	/* 5. Port lists. */
	if (p->flags & SLUICE_POLICY_IN_INCLUDE_ALL) {
		if (port_in_set(p, SLUICE_PORTS_IN_EXCLUDE, dport))
			return pass(SLUICE_STEP_IN_5, dport);
		return proxied(SLUICE_OUTCOME_INBOUND_PROXY, SLUICE_STEP_IN_5, p->port_inbound);
	}
	if (port_in_set(p, SLUICE_PORTS_IN_INCLUDE, dport))
		return proxied(SLUICE_OUTCOME_INBOUND_PROXY, SLUICE_STEP_IN_5, p->port_inbound);
	return pass(SLUICE_STEP_IN_5, dport);
}

#endif /* SLUICE_DECIDE_H */
