/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * redirect.h: where a captured socket's traffic is sent instead, and the source address
 * it must leave with, so that the listener sees what it would see under REDIRECT.
 * BPF-only.
 */
#ifndef SLUICE_REDIRECT_H
#define SLUICE_REDIRECT_H

#include <linux/bpf.h>
#include <bpf/bpf_endian.h>
#include "sluice.h"
#include "endpoint.h"
#include "decide.h"

static __always_inline void endpoint_set_loop_host(struct endpoint *ep, __u8 family)
{
	if (family == SLUICE_FAMILY_IPV4)
		endpoint_set4(ep, bpf_htonl(IPV4_LOOP_HOST), 0);
	else
		endpoint_set6(ep, 0, 0, 0, bpf_htonl(IPV6_LOOP_HOST_LAST), 0);
}

/* The pod's first address of a family; 0 when it has none. */
static __always_inline int pod_ip_of(const struct sluice_pod_policy *p, __u8 family, struct endpoint *ep)
{
	if (family == SLUICE_FAMILY_IPV4 && p->n_ip4 > 0) {
		endpoint_set4(ep, p->ip4[0], 0);
		return 1;
	}
	if (family == SLUICE_FAMILY_IPV6 && p->n_ip6 > 0) {
		endpoint_set6(ep, p->ip6[0][0], p->ip6[0][1], p->ip6[0][2], p->ip6[0][3], 0);
		return 1;
	}
	return 0;
}

/*
 * The address the rewritten connect goes to (P_OUT, P_IN). It decides the source address
 * the kernel picks, which the proxy sees as the peer: REDIRECT keeps the source chosen for
 * the original destination. A loopback destination keeps 127.0.0.1 / ::1 (REDIRECT's own
 * target); another local address (the hairpin) is kept as is; a remote destination goes
 * to the pod's own IP of that family, whose local route has the pod IP as source, like
 * the route to the remote. Without a pod IP of that family: loopback.
 */
static __always_inline void proxy_address(const struct sluice_pod_policy *p, const struct outbound_conn *c,
					  int local, struct endpoint *to)
{
	*to = c->dst;
	if (local && !endpoint_is_loopback(&c->dst))
		return;
	if (!local && pod_ip_of(p, c->dst.family, to))
		return;
	endpoint_set_loop_host(to, c->dst.family);
}

/*
 * The DNS listener (P_DNS). Istio's agent listens on 127.0.0.1 (and ::1) only, never on
 * the pod IP, so the traffic goes exactly where REDIRECT sends locally generated packets:
 * 127.0.0.1 / ::1. REDIRECT keeps the source chosen for the original destination, which
 * the route to loopback would not give; so `src` is that source, for the caller to set,
 * unless the socket already has one: the pod IP for a remote destination, the
 * destination itself for a local non-loopback one (its local route has it as source),
 * nothing for loopback (127.0.0.1 / ::1 is picked anyway). family 0 = leave it.
 */
static __always_inline void dns_listener_address(const struct sluice_pod_policy *p, const struct outbound_conn *c,
						 int local, struct endpoint *to, struct endpoint *src)
{
	endpoint_set_loop_host(to, c->dst.family);
	src->family = 0;
	if (c->src.family || endpoint_is_loopback(&c->dst))
		return;
	if (local)
		*src = c->dst;
	else
		pod_ip_of(p, c->dst.family, src);
	src->port = 0;
}

/* Where a captured socket goes for decision `d`; `src` as in dns_listener_address. */
static __always_inline void redirect_target(const struct sluice_pod_policy *p, const struct outbound_conn *c,
					    const struct decision *d, struct endpoint *to, struct endpoint *src)
{
	int local = is_local_address(p, &c->dst);

	src->family = 0;
	if (d->outcome == SLUICE_OUTCOME_DNS_PROXY)
		dns_listener_address(p, c, local, to, src);
	else
		proxy_address(p, c, local, to);
	to->port = d->port;
}

#endif /* SLUICE_REDIRECT_H */
