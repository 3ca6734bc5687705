// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sk_msg on sluice_accel: runs for every message a socket in sluice_accel sends, and hands
 * it to the peer socket's receive queue when the peer is enrolled too (accel.h). Anything
 * else goes by TCP as usual, and that socket then stays on TCP for good.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "sluice.h"
#include "maps.h"
#include "endpoint.h"
#include "accel.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* This message goes by TCP, so every later one must too. */
static __always_inline void stay_on_tcp(struct bpf_sock *sk, struct sluice_sock_state *st)
{
	if (!st)
		st = bpf_sk_storage_get(&sluice_socks, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (st)
		st->flags |= SLUICE_SOCK_ACCEL_TCP;
	else
		count(SLUICE_COUNTER_SOCK_STORAGE_FAILED);
}

SEC("sk_msg")
int sluice_sk_msg(struct sk_msg_md *msg)
{
	struct bpf_sock *sk = msg->sk;
	struct sluice_sock_state *st;
	struct endpoint local, remote;
	struct sluice_conn_key peer;

	if (!sk)
		return SK_PASS;
	st = bpf_sk_storage_get(&sluice_socks, sk, 0, 0);
	if (st && (st->flags & SLUICE_SOCK_ACCEL_TCP))
		return SK_PASS;
	if (!accelerate_on()) {
		stay_on_tcp(sk, st);
		count(SLUICE_COUNTER_ACCEL_OFF);
		return SK_PASS;
	}
	ctx_endpoints(msg, local, remote, port_from_net32, &local, &remote);
	accel_key_make(&peer, &remote, &local, bpf_get_netns_cookie(msg));
	if (bpf_msg_redirect_hash(msg, &sluice_accel, &peer, BPF_F_INGRESS) == SK_PASS) {
		count(SLUICE_COUNTER_ACCEL_REDIRECTED);
		count_add(SLUICE_COUNTER_ACCEL_REDIRECTED_BYTES, msg->size);
		return SK_PASS;
	}
	/* No peer to hand it to (not enrolled, or gone): TCP, as without acceleration. */
	stay_on_tcp(sk, st);
	count(SLUICE_COUNTER_ACCEL_PEER_MISSING);
	return SK_PASS;
}
