// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sk_msg on sluice_accel: runs for every message a socket in sluice_accel sends, and hands
 * it to the peer socket's receive queue when the peer is enrolled too (accel.h). Anything
 * else goes by TCP as usual, and that socket then stays on TCP for good.
 */
#include "accel.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static __always_inline void msg_endpoints(const struct sk_msg_md *msg, struct endpoint *local, struct endpoint *remote)
{
	if (msg->family == AF_INET) {
		endpoint_set4(local, msg->local_ip4, port_from_host32(msg->local_port));
		endpoint_set4(remote, msg->remote_ip4, sock_ops_remote_port(msg->remote_port));
	} else {
		endpoint_set6(local, msg->local_ip6[0], msg->local_ip6[1], msg->local_ip6[2], msg->local_ip6[3],
			      port_from_host32(msg->local_port));
		endpoint_set6(remote, msg->remote_ip6[0], msg->remote_ip6[1], msg->remote_ip6[2], msg->remote_ip6[3],
			      sock_ops_remote_port(msg->remote_port));
	}
}

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
	msg_endpoints(msg, &local, &remote);
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
