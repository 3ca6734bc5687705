// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * cgroup/getsockopt: SO_ORIGINAL_DST (SOL_IP/80) and IP6T_SO_ORIGINAL_DST (SOL_IPV6/80)
 * for TCP sockets in captured pods, answered like conntrack would:
 *  - the proxy's accepted socket of a captured connection: the recorded original
 *    destination (found by the connection key);
 *  - any other accepted socket (inbound steering delivers without NAT): its own local
 *    address;
 *  - the app's own captured socket: its original destination.
 * Every other call passes through untouched, whatever its level, name or size.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <bpf/bpf_helpers.h>
#include "sluice.h"
#include "maps.h"
#include "endpoint.h"
#include "decide.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define SOCKOPT_OK 1

/*
 * Leaves the kernel's answer exactly as it is. optlen 0 tells the kernel not to copy the
 * program's buffer back: the user's buffer and optlen stay as the kernel wrote them,
 * whatever their size (the program only ever sees the first page) and even on error.
 */
static __always_inline int pass_through(struct bpf_sockopt *ctx)
{
	ctx->optlen = 0;
	return SOCKOPT_OK;
}

static __always_inline int answer(struct bpf_sockopt *ctx, const __be32 *addr, __be16 port, __u8 family)
{
	void *end = (void *)(long)ctx->optval_end;

	if (ctx->level == SOL_IP && family == SLUICE_FAMILY_IPV4) {
		struct sockaddr_in *sin = (void *)(long)ctx->optval;

		if ((void *)(sin + 1) > end) {
			count(SLUICE_COUNTER_ORIG_DST_SHORT_BUFFER);
			return pass_through(ctx);
		}
		__builtin_memset(sin, 0, sizeof(*sin));
		sin->sin_family = AF_INET;
		sin->sin_port = port;
		sin->sin_addr.s_addr = addr[0];
		ctx->optlen = sizeof(*sin);
	} else if (ctx->level == SOL_IPV6 && family == SLUICE_FAMILY_IPV6) {
		struct sockaddr_in6 *sin6 = (void *)(long)ctx->optval;

		if ((void *)(sin6 + 1) > end) {
			count(SLUICE_COUNTER_ORIG_DST_SHORT_BUFFER);
			return pass_through(ctx);
		}
		__builtin_memset(sin6, 0, sizeof(*sin6));
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = port;
		addr_copy(sin6->sin6_addr.s6_addr32, addr);
		ctx->optlen = sizeof(*sin6);
	} else {
		/* Asked for the other family: conntrack would not find it either. */
		count(SLUICE_COUNTER_ORIG_DST_MISS);
		return pass_through(ctx);
	}
	ctx->retval = 0;
	return SOCKOPT_OK;
}

SEC("cgroup/getsockopt")
int sluice_getsockopt(struct bpf_sockopt *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	struct endpoint local, remote;
	struct sluice_conn_key key;
	struct sluice_orig_dst *rec;
	const struct sluice_pod_policy *p;
	struct sluice_sock_state *st;
	__u64 netns_cookie;
	int captured, accepted;

	if (ctx->optname != SO_ORIGINAL_DST || (ctx->level != SOL_IP && ctx->level != SOL_IPV6))
		return pass_through(ctx);
	if (!sk || sk->protocol != IPPROTO_TCP)
		return pass_through(ctx);
	netns_cookie = bpf_get_netns_cookie(ctx);
	p = pod_policy(netns_cookie);
	if (!p)
		return pass_through(ctx);

	ctx_endpoints(sk, src, dst, port_from_net16, &local, &remote);
	conn_key_make(&key, &remote, &local, netns_cookie);
	rec = bpf_map_lookup_elem(&sluice_conns, &key);
	if (rec) {
		count(SLUICE_COUNTER_ORIG_DST_RECORD);
		return answer(ctx, rec->addr, rec->port, rec->family);
	}
	st = bpf_sk_storage_get(&sluice_socks, sk, 0, 0);
	captured = st && (st->flags & SLUICE_SOCK_CAPTURED);
	accepted = st && (st->flags & SLUICE_SOCK_ACCEPTED);
	/* On a proxy port, from inside the pod, with no record: a redirected connect whose
	 * record could not be kept (quota, full map). Its local address is the proxy itself,
	 * so answering with it would loop; fail as a missing conntrack entry does. */
	if (accepted && (local.port == p->port_outbound || local.port == p->port_inbound) && is_local_address(p, &remote)) {
		count(SLUICE_COUNTER_ORIG_DST_UNRECORDED);
		return pass_through(ctx);
	}
	if (accepted) {
		count(SLUICE_COUNTER_ORIG_DST_LOCAL);
		return answer(ctx, local.addr, local.port, local.family);
	}
	if (captured) {
		count(SLUICE_COUNTER_ORIG_DST_RECORD);
		return answer(ctx, st->orig.addr, st->orig.port, st->orig.family);
	}
	count(SLUICE_COUNTER_ORIG_DST_MISS);
	return pass_through(ctx);
}
