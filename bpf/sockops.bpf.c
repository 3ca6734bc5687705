// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sockops: keeps the original-destination records in step with the connections.
 *  - active established: the app's captured connection now has its source port, so its
 *    record is copied to the connection key the proxy computes from its accepted socket;
 *  - state change to CLOSE: that record is deleted, so records never leak;
 *  - passive established: an accepted socket in a captured pod is marked, so that
 *    SO_ORIGINAL_DST answers with its local address like conntrack would (not the
 *    proxy's end of an app's recorded connection: see mark_accepted); a rerouted VM
 *    connection's record (tc_reroute.bpf.c) is adopted, to be deleted at close;
 *  - listen: a proxy listener (P_IN, P_OUT) enters the listener map for inbound steering;
 *  - acceleration on: an established socket of a captured pod whose peer is on this node
 *    enters sluice_accel (accel.h), and leaves it when the connection closes.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "sluice.h"
#include "maps.h"
#include "endpoint.h"
#include "accel.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define SOCK_OPS_OK 1

static __always_inline void record_connection(struct bpf_sock_ops *skops, struct sluice_sock_state *st)
{
	struct endpoint app, listener;
	__u64 netns_cookie, *live;

	if (!st || !(st->flags & SLUICE_SOCK_CAPTURED))
		return;
	netns_cookie = bpf_get_netns_cookie(skops);
	live = conn_count_slot(netns_cookie);
	/* Unrecorded, the proxy's SO_ORIGINAL_DST fails (getsockopt.bpf.c): closed, not misled. */
	if (conn_quota_full(live)) {
		count(SLUICE_COUNTER_CONN_QUOTA_EXCEEDED);
		return;
	}
	ctx_endpoints(skops, local, remote, port_from_net32, &app, &listener);
	conn_key_make(&st->conn, &app, &listener, netns_cookie);
	if (bpf_map_update_elem(&sluice_conns, &st->conn, &st->orig, BPF_ANY)) {
		count(SLUICE_COUNTER_CONN_MAP_FULL);
		return;
	}
	if (live)
		__sync_fetch_and_add(live, 1);
	st->flags |= SLUICE_SOCK_CONN_RECORDED;
	count(SLUICE_COUNTER_CONN_RECORDED);
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
}

static __always_inline void forget_connection(struct bpf_sock_ops *skops, struct sluice_sock_state *st)
{
	struct sluice_orig_dst *rec;

	if (!(st->flags & SLUICE_SOCK_CONN_RECORDED))
		return;
	st->flags &= ~SLUICE_SOCK_CONN_RECORDED;
	conn_count_drop(bpf_get_netns_cookie(skops)); /* once per recorded socket */
	/* Only our own record: the key may already belong to a newer connection. */
	rec = bpf_map_lookup_elem(&sluice_conns, &st->conn);
	if (rec && rec->owner_cookie == st->orig.owner_cookie) {
		bpf_map_delete_elem(&sluice_conns, &st->conn);
		count(SLUICE_COUNTER_CONN_DELETED);
	}
}

/*
 * An accepted socket in a captured pod is marked for getsockopt (SLUICE_SOCK_ACCEPTED),
 * except the proxy's end of an app's captured connection (on P_OUT, with the app's
 * record), so that no storage is allocated and freed for it: getsockopt answers from the
 * record, and once the record is gone it fails the same way with or without the mark.
 * (A steered inbound socket keeps the app's port, so nothing tells it apart without
 * the mark.) A VM connection the tc reroute program
 * recorded (reroute.h) is adopted: the socket owns the record from now on, so it is
 * deleted at close like an app socket's.
 */
static __always_inline struct sluice_sock_state *mark_accepted(struct bpf_sock_ops *skops, struct bpf_sock *sk)
{
	__u64 netns_cookie = bpf_get_netns_cookie(skops);
	const struct sluice_pod_policy *p = pod_policy(netns_cookie);
	struct endpoint local, remote;
	struct sluice_sock_state *st;
	struct sluice_conn_key key;
	struct sluice_orig_dst *rec;
	int reroute;

	if (!p)
		return NULL;
	ctx_endpoints(skops, local, remote, port_from_net32, &local, &remote);
	conn_key_make(&key, &remote, &local, netns_cookie);
	rec = bpf_map_lookup_elem(&sluice_conns, &key);
	reroute = rec && rec->step == SLUICE_STEP_IN_1;
	if (rec && !reroute && local.port == p->port_outbound)
		return NULL;
	st = bpf_sk_storage_get(&sluice_socks, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st) {
		count(SLUICE_COUNTER_SOCK_STORAGE_FAILED);
		return NULL;
	}
	st->flags |= SLUICE_SOCK_ACCEPTED;
	if (!reroute)
		return st;
	st->orig = *rec;
	st->conn = key;
	st->flags |= SLUICE_SOCK_CONN_RECORDED;
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
	return st;
}

static __always_inline void remember_listener(struct bpf_sock_ops *skops)
{
	__u64 netns_cookie = bpf_get_netns_cookie(skops);
	const struct sluice_pod_policy *p = pod_policy(netns_cookie);
	__be16 port = port_from_host32(skops->local_port);
	struct sluice_listener_key key = {};

	if (!p || (port != p->port_inbound && port != p->port_outbound))
		return;
	key.netns_cookie = netns_cookie;
	key.port = port;
	key.family = skops->family == AF_INET ? SLUICE_FAMILY_IPV4 : SLUICE_FAMILY_IPV6;
	if (bpf_sock_hash_update(skops, &sluice_listen, &key, BPF_ANY))
		count(SLUICE_COUNTER_LISTENER_ADD_FAILED);
	else
		count(SLUICE_COUNTER_LISTENER_ADDED);
}

/* `st` is the socket's storage when the caller has it already, else NULL. */
static __always_inline void accel_enrol(struct bpf_sock_ops *skops, struct bpf_sock *sk, struct sluice_sock_state *st)
{
	struct endpoint local, remote;
	struct sluice_conn_key key;
	__u64 netns_cookie;

	if (!accelerate_on())
		return;
	netns_cookie = bpf_get_netns_cookie(skops);
	if (!pod_policy(netns_cookie))
		return;
	/* Bytes already sent by TCP (Fast Open data in the SYN) must not be overtaken. */
	if (skops->data_segs_out)
		return;
	ctx_endpoints(skops, local, remote, port_from_net32, &local, &remote);
	if (!accel_peer_is_local(&remote))
		return;
	if (!st)
		st = bpf_sk_storage_get(&sluice_socks, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st) {
		count(SLUICE_COUNTER_SOCK_STORAGE_FAILED);
		return;
	}
	accel_key_make(&key, &local, &remote, netns_cookie);
	/* NOEXIST: a taken key means two sockets claim one address pair; enrolling either
	 * could hand one pod's bytes to another, so the newcomer stays on TCP. */
	if (bpf_sock_hash_update(skops, &sluice_accel, &key, BPF_NOEXIST)) {
		count(SLUICE_COUNTER_ACCEL_ENROL_FAILED);
		return;
	}
	st->flags |= SLUICE_SOCK_ACCEL_ENROLLED;
	count(SLUICE_COUNTER_ACCEL_ENROLLED);
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
}

/* An enrolled connection reached CLOSE. close() has usually dropped the socket from every
 * sockmap already (tcp_bpf's close hook); a connection that dies under an open fd (a
 * reset, a timeout) is deleted here. Either way it is counted once. */
static __always_inline void accel_forget(struct bpf_sock_ops *skops, struct sluice_sock_state *st)
{
	struct endpoint local, remote;
	struct sluice_conn_key key;

	if (!(st->flags & SLUICE_SOCK_ACCEL_ENROLLED))
		return;
	st->flags &= ~SLUICE_SOCK_ACCEL_ENROLLED;
	ctx_endpoints(skops, local, remote, port_from_net32, &local, &remote);
	accel_key_make(&key, &local, &remote, bpf_get_netns_cookie(skops));
	bpf_map_delete_elem(&sluice_accel, &key);
	count(SLUICE_COUNTER_ACCEL_REMOVED);
}

SEC("sockops")
int sluice_sockops(struct bpf_sock_ops *skops)
{
	struct sluice_sock_state *st;
	struct bpf_sock *sk;

	/* Most calls are for ops this program ignores (RTO and window init, ECN, the other
	 * states): those return before reading anything else. */
	switch (skops->op) {
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		sk = skops->sk;
		if (!sk)
			break;
		st = bpf_sk_storage_get(&sluice_socks, sk, 0, 0);
		record_connection(skops, st);
		accel_enrol(skops, sk, st);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		sk = skops->sk;
		if (!sk)
			break;
		accel_enrol(skops, sk, mark_accepted(skops, sk));
		break;
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] != BPF_TCP_CLOSE)
			break;
		sk = skops->sk;
		st = sk ? bpf_sk_storage_get(&sluice_socks, sk, 0, 0) : NULL;
		if (!st)
			break;
		forget_connection(skops, st);
		accel_forget(skops, st);
		break;
	case BPF_SOCK_OPS_TCP_LISTEN_CB:
		if (skops->sk)
			remember_listener(skops);
		break;
	}
	return SOCK_OPS_OK;
}
