// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * cgroup/connect4, cgroup/connect6: the outbound decision (capture-spec.md steps 1-10).
 * A captured connect is rewritten to the proxy's port, and the original destination is
 * kept in the socket's storage for getpeername and, once established, for the proxy.
 */
#include "decide.h"
#include "owner.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * The address the rewritten connect goes to. It decides the source address the kernel
 * picks, which the proxy sees as the peer: REDIRECT keeps the source chosen for the
 * original destination. A loopback destination keeps 127.0.0.1 / ::1 (REDIRECT's own
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
	if (!local && c->dst.family == SLUICE_FAMILY_IPV4 && p->n_ip4 > 0) {
		endpoint_set4(to, p->ip4[0], 0);
		return;
	}
	if (!local && c->dst.family == SLUICE_FAMILY_IPV6 && p->n_ip6 > 0) {
		endpoint_set6(to, p->ip6[0][0], p->ip6[0][1], p->ip6[0][2], p->ip6[0][3], 0);
		return;
	}
	if (c->dst.family == SLUICE_FAMILY_IPV4)
		endpoint_set4(to, bpf_htonl(IPV4_LOOP_HOST), 0);
	else
		endpoint_set6(to, 0, 0, 0, bpf_htonl(IPV6_LOOP_HOST_LAST), 0);
}

/* The socket's storage no longer describes a capture (a reconnect that passes). */
static __always_inline void forget_capture(struct bpf_sock *sk)
{
	struct sluice_sock_state *st = bpf_sk_storage_get(&sluice_socks, sk, 0, 0);

	if (st)
		st->flags &= ~SLUICE_SOCK_CAPTURED;
}

/* Returns SYS_PROCEED or SYS_REJECT; fills `to` when the connect is to be rewritten. */
static __always_inline int sock_xlate_connect(struct bpf_sock_addr *ctx, struct outbound_conn *c, struct endpoint *to)
{
	const struct sluice_pod_policy *p = pod_policy(bpf_get_netns_cookie(ctx));
	struct bpf_sock *sk = ctx->sk;
	struct sluice_sock_state *st;
	struct decision d;

	if (!p) {
		count(SLUICE_COUNTER_CONNECT_NO_POLICY);
		return SYS_PROCEED;
	}
	if (!sk)
		return SYS_PROCEED;
	/* UDP is only ever captured for DNS, which needs the sendmsg/recvmsg hooks too. */
	if (ctx->protocol != IPPROTO_TCP) {
		if ((p->flags & SLUICE_POLICY_DNS_CAPTURE) && c->dst.port == bpf_htons(DNS_PORT))
			count(SLUICE_COUNTER_CONNECT_UDP_DEFERRED);
		return SYS_PROCEED;
	}
	c->tcp = 1;
	tcp_socket_owner(sk, &c->uid, &c->gid);

	d = decide_outbound(p, c);
	count_decision(d.outcome, d.step);
	if (d.outcome == SLUICE_OUTCOME_PASS) {
		forget_capture(sk);
		return SYS_PROCEED;
	}

	st = bpf_sk_storage_get(&sluice_socks, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st) {
		/* Never let a captured connection bypass the proxy silently. */
		count(SLUICE_COUNTER_SOCK_STORAGE_FAILED);
		return SYS_REJECT;
	}
	addr_copy(st->orig.addr, c->dst.addr);
	st->orig.port = c->dst.port;
	st->orig.family = c->dst.family;
	st->orig.outcome = d.outcome;
	st->orig.step = d.step;
	st->orig.owner_cookie = bpf_get_socket_cookie(ctx);
	st->flags = SLUICE_SOCK_CAPTURED;

	proxy_address(p, c, is_local_address(p, &c->dst), to);
	to->port = d.port;
	return SYS_PROCEED;
}

SEC("cgroup/connect4")
int sluice_connect4(struct bpf_sock_addr *ctx)
{
	struct outbound_conn c = {};
	struct endpoint to = {};
	int ret;

	endpoint_set4(&c.dst, ctx->user_ip4, (__be16)ctx->user_port);
	if (ctx->sk && ctx->sk->src_ip4)
		endpoint_set4(&c.src, ctx->sk->src_ip4, 0);
	ret = sock_xlate_connect(ctx, &c, &to);
	if (to.port) {
		ctx->user_ip4 = to.addr[0];
		ctx->user_port = to.port;
	}
	return ret;
}

SEC("cgroup/connect6")
int sluice_connect6(struct bpf_sock_addr *ctx)
{
	struct outbound_conn c = {};
	struct endpoint to = {};
	struct bpf_sock *sk = ctx->sk;
	int ret;

	endpoint_set6(&c.dst, ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3],
		      (__be16)ctx->user_port);
	if (sk && (sk->src_ip6[0] | sk->src_ip6[1] | sk->src_ip6[2] | sk->src_ip6[3]))
		endpoint_set6(&c.src, sk->src_ip6[0], sk->src_ip6[1], sk->src_ip6[2], sk->src_ip6[3], 0);
	ret = sock_xlate_connect(ctx, &c, &to);
	if (to.port) {
		if (to.family == SLUICE_FAMILY_IPV4) {
			/* A v4-mapped destination stays v4-mapped. */
			ctx->user_ip6[0] = 0;
			ctx->user_ip6[1] = 0;
			ctx->user_ip6[2] = bpf_htonl(IPV4_MAPPED_WORD2);
			ctx->user_ip6[3] = to.addr[0];
		} else {
			ctx->user_ip6[0] = to.addr[0];
			ctx->user_ip6[1] = to.addr[1];
			ctx->user_ip6[2] = to.addr[2];
			ctx->user_ip6[3] = to.addr[3];
		}
		ctx->user_port = to.port;
	}
	return ret;
}
