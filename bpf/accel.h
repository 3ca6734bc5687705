/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * accel.h: what sockops (enrolment) and sk_msg (redirect) agree on for acceleration.
 *
 * A socket enters sluice_accel when its connection is established, acceleration is on, its
 * netns is a captured pod, and its peer is on this node (a loopback address, or an address
 * of a captured pod). sk_msg then hands each message straight to the peer socket's receive
 * queue with bpf_msg_redirect_hash(BPF_F_INGRESS), skipping TCP/IP, netfilter and tcpdump.
 *
 * Ordering: the peer reads redirected bytes before those in its TCP receive queue. So a
 * sender uses one path per connection: once a message of it went by TCP (its peer was not
 * enrolled yet, or acceleration was off), it never redirects again (SLUICE_SOCK_ACCEL_TCP).
 */
#ifndef SLUICE_ACCEL_H
#define SLUICE_ACCEL_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "sluice.h"
#include "maps.h"
#include "endpoint.h"

static __always_inline int accelerate_on(void)
{
	__u32 key = 0;
	const struct sluice_global *g = bpf_map_lookup_elem(&sluice_global, &key);

	return g && (g->flags & SLUICE_GLOBAL_ACCELERATE);
}

/* The sluice_accel key of a socket from its own end and its peer's. */
static __always_inline void accel_key_make(struct sluice_conn_key *key, const struct endpoint *self,
					   const struct endpoint *peer, __u64 netns_cookie)
{
	__builtin_memset(key, 0, sizeof(*key));
	/* A loopback end means both ends are in this netns, and the same 4-tuple may exist
	 * in every other pod at once. */
	key->netns_cookie = endpoint_is_loopback(self) || endpoint_is_loopback(peer) ? netns_cookie : 0;
	addr_copy(key->src, self->addr);
	addr_copy(key->dst, peer->addr);
	key->sport = self->port;
	key->dport = peer->port;
	key->family = self->family;
}

/* The peer is on this node: loopback, or an address of a captured pod. */
static __always_inline int accel_peer_is_local(const struct endpoint *peer)
{
	struct sluice_addr_key key = {};

	if (endpoint_is_loopback(peer))
		return 1;
	key.family = peer->family;
	addr_copy(key.addr, peer->addr);
	return bpf_map_lookup_elem(&sluice_addrs, &key) != 0;
}

#endif /* SLUICE_ACCEL_H */
