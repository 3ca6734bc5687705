// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * cgroup/connect4, cgroup/connect6: the outbound decision (capture-spec.md steps 1-10).
 * A captured connect is rewritten to the proxy's port, and the original destination is
 * kept in the socket's storage for getpeername and, once established, for the proxy.
 * A UDP connect to port 53 with DNS capture on is captured the same way (REDIRECT
 * captures connected and unconnected UDP alike); dns.bpf.c does unconnected datagrams
 * and restores the source of the replies.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "sluice.h"
#include "maps.h"
#include "endpoint.h"
#include "decide.h"
#include "owner.h"
#include "redirect.h"
#include "dns.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The socket's storage no longer describes a capture (a reconnect that passes). */
static __always_inline void forget_capture(struct bpf_sock *sk)
{
	struct sluice_sock_state *st = bpf_sk_storage_get(&sluice_socks, sk, 0, 0);

	if (st)
		st->flags &= ~SLUICE_SOCK_CAPTURED;
}

/* Returns SYS_PROCEED or SYS_REJECT. On capture, fills `to` (port != 0) with where the
 * connect goes instead, and `src` (family != 0) with the source to bind first. */
static __always_inline int sock_xlate_connect(struct bpf_sock_addr *ctx, struct outbound_conn *c, struct endpoint *to,
					      struct endpoint *src)
{
	__u64 netns_cookie = bpf_get_netns_cookie(ctx);
	const struct sluice_pod_policy *p = pod_policy(netns_cookie);
	struct bpf_sock *sk = ctx->sk;
	struct sluice_sock_state *st;
	struct decision d;
	__u64 cookie;

	if (!p) {
		/* A pod the daemon knows but has not captured yet: held, never let past the proxy. */
		if (bpf_map_lookup_elem(&sluice_pending, &netns_cookie)) {
			count(SLUICE_COUNTER_CONNECT_PENDING);
			return SYS_REJECT;
		}
		count(SLUICE_COUNTER_CONNECT_NO_POLICY);
		return SYS_PROCEED;
	}
	if (!sk)
		return SYS_PROCEED;
	c->tcp = ctx->protocol == IPPROTO_TCP;
	if (c->tcp) {
		tcp_socket_owner(sk, &c->uid, &c->gid);
		d = decide_outbound(p, c);
		count_decision(d.outcome, d.step);
	} else if (!decide_udp(ctx, p, sk, c, &d)) {
		d.outcome = SLUICE_OUTCOME_PASS;
	}
	if (d.outcome == SLUICE_OUTCOME_PASS) {
		forget_capture(sk);
		if (!c->tcp)
			dns_forget(sk);
		return SYS_PROCEED;
	}

	/* A captured TCP connection needs a record for the proxy: past the pod's quota it
	 * would get none, so the connect is refused (EPERM, like every refusal of this hook)
	 * rather than reach the proxy unrecorded. */
	if (c->tcp && conn_quota_reached(netns_cookie)) {
		count(SLUICE_COUNTER_CONN_QUOTA_REFUSED);
		return SYS_REJECT;
	}
	st = bpf_sk_storage_get(&sluice_socks, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st) {
		/* Never let a captured connection bypass the proxy silently. */
		count(SLUICE_COUNTER_SOCK_STORAGE_FAILED);
		return SYS_REJECT;
	}
	cookie = bpf_get_socket_cookie(ctx);
	redirect_target(p, c, &d, to, src);
	if (!c->tcp && !dns_remember(sk, c, &d, to, cookie)) {
		forget_capture(sk);
		return SYS_REJECT;
	}
	orig_dst_set(&st->orig, c, &d, cookie);
	st->flags = SLUICE_SOCK_CAPTURED;
	return SYS_PROCEED;
}

/* Binds a captured DNS connect to the source REDIRECT would have kept (redirect.h). The
 * port stays 0: the kernel picks it at connect, as for an unbound socket. Unlike the
 * source an unbound UDP socket gets at connect, this one stays if the socket is later
 * disconnected and connected elsewhere. */
static __always_inline void bind_source(struct bpf_sock_addr *ctx, const struct endpoint *src)
{
	long err;

	if (ctx->family == AF_INET) {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = src->addr[0] };

		err = bpf_bind(ctx, (struct sockaddr *)&a, sizeof(a));
	} else {
		struct sockaddr_in6 a = { .sin6_family = AF_INET6 };

		if (src->family == SLUICE_FAMILY_IPV4) {
			a.sin6_addr.s6_addr32[2] = bpf_htonl(IPV4_MAPPED_WORD2);
			a.sin6_addr.s6_addr32[3] = src->addr[0];
		} else {
			addr_copy(a.sin6_addr.s6_addr32, src->addr);
		}
		err = bpf_bind(ctx, (struct sockaddr *)&a, sizeof(a));
	}
	/* Already bound to a port (bind to 0.0.0.0:N): the proxy sees a loopback peer. */
	if (err)
		count(SLUICE_COUNTER_DNS_BIND_FAILED);
}

SEC("cgroup/connect4")
int sluice_connect4(struct bpf_sock_addr *ctx)
{
	struct outbound_conn c = {};
	struct endpoint to = {}, src = {};
	int ret;

	endpoint_set4(&c.dst, ctx->user_ip4, (__be16)ctx->user_port);
	if (ctx->sk && ctx->sk->src_ip4)
		endpoint_set4(&c.src, ctx->sk->src_ip4, 0);
	ret = sock_xlate_connect(ctx, &c, &to, &src);
	if (ret == SYS_PROCEED && to.port) {
		if (src.family)
			bind_source(ctx, &src);
		ctx->user_ip4 = to.addr[0];
		ctx->user_port = to.port;
	}
	return ret;
}

SEC("cgroup/connect6")
int sluice_connect6(struct bpf_sock_addr *ctx)
{
	struct outbound_conn c = {};
	struct endpoint to = {}, src = {};
	struct bpf_sock *sk = ctx->sk;
	int ret;

	endpoint_set6(&c.dst, ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3],
		      (__be16)ctx->user_port);
	if (sk && (sk->src_ip6[0] | sk->src_ip6[1] | sk->src_ip6[2] | sk->src_ip6[3]))
		endpoint_set6(&c.src, sk->src_ip6[0], sk->src_ip6[1], sk->src_ip6[2], sk->src_ip6[3], 0);
	ret = sock_xlate_connect(ctx, &c, &to, &src);
	if (ret == SYS_PROCEED && to.port) {
		if (src.family)
			bind_source(ctx, &src);
		sock_addr_set_user6(ctx, to.family, to.addr, to.port);
	}
	return ret;
}
