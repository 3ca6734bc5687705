/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * dns.h: DNS capture of UDP sockets, shared by cgroup/connect* (connected sockets) and
 * cgroup/sendmsg* (datagrams with an address). Capture rewrites the destination to the
 * DNS listener; the socket's sluice_dns record lets cgroup/recvmsg* report the listener's
 * replies as coming from the server the app addressed, as REDIRECT's reverse NAT does.
 * BPF-only.
 */
#ifndef SLUICE_DNS_H
#define SLUICE_DNS_H

#include <linux/bpf.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "sluice.h"
#include "maps.h"
#include "endpoint.h"
#include "decide.h"
#include "owner.h"
#include "redirect.h"

/*
 * The outbound decision for UDP traffic from `sk` to c->dst. UDP is only ever captured
 * for DNS: any other datagram passes (decide() passes it at step 10) without running the
 * steps or reading the owner. Returns 0 when the steps did not run.
 */
static __always_inline int decide_udp(struct bpf_sock_addr *ctx, const struct sluice_pod_policy *p, struct bpf_sock *sk,
				      struct outbound_conn *c, struct decision *d)
{
	if (!(p->flags & SLUICE_POLICY_DNS_CAPTURE) || c->dst.port != bpf_htons(DNS_PORT))
		return 0;
	c->tcp = 0;
	udp_socket_owner(ctx, sk, &c->uid, &c->gid);
	*d = decide_outbound(p, c);
	count_decision(d->outcome, d->step);
	return 1;
}

static __always_inline void orig_dst_set(struct sluice_orig_dst *o, const struct outbound_conn *c,
					 const struct decision *d, __u64 owner_cookie)
{
	addr_copy(o->addr, c->dst.addr);
	o->port = c->dst.port;
	o->family = c->dst.family;
	o->outcome = d->outcome;
	o->step = d->step;
	o->owner_cookie = owner_cookie;
}

/* Remembers that the socket's datagrams to c->dst now go to `to`. 0 when the record
 * could not be stored: the caller refuses the traffic rather than let replies come back
 * from an address the app never used. */
static __always_inline int dns_remember(struct bpf_sock *sk, const struct outbound_conn *c, const struct decision *d,
					const struct endpoint *to, __u64 owner_cookie)
{
	struct sluice_dns_state *st = bpf_sk_storage_get(&sluice_dns, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);

	if (!st) {
		count(SLUICE_COUNTER_SOCK_STORAGE_FAILED);
		return 0;
	}
	orig_dst_set(&st->orig, c, d, owner_cookie);
	addr_copy(st->listener, to->addr);
	st->listener_port = to->port;
	st->listener_family = to->family;
	return 1;
}

/* The socket is connected elsewhere: no reply is the DNS listener's any more. */
static __always_inline void dns_forget(struct bpf_sock *sk)
{
	struct sluice_dns_state *st = bpf_sk_storage_get(&sluice_dns, sk, 0, 0);

	if (st)
		st->listener_family = 0;
}

/* The server to report for a datagram received from `from`, or NULL to leave it. */
static __always_inline const struct sluice_orig_dst *dns_reply_origin(struct bpf_sock *sk, const struct endpoint *from)
{
	struct sluice_dns_state *st;

	if (!sk)
		return NULL;
	st = bpf_sk_storage_get(&sluice_dns, sk, 0, 0);
	if (!st || st->listener_family != from->family || st->listener_port != from->port)
		return NULL;
	if (st->listener[0] != from->addr[0] || st->listener[1] != from->addr[1] || st->listener[2] != from->addr[2] ||
	    st->listener[3] != from->addr[3])
		return NULL;
	return &st->orig;
}

#endif /* SLUICE_DNS_H */
