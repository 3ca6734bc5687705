// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * cgroup/sendmsg4, cgroup/sendmsg6: DNS capture of UDP datagrams sent with an address
 * (sendto on an unconnected socket; a connected socket is handled at connect). A datagram
 * to port 53 that decide() sends to the DNS listener goes there instead, with the source
 * REDIRECT would have kept (redirect.h).
 *
 * cgroup/recvmsg4, cgroup/recvmsg6: a datagram from the DNS listener to a socket whose
 * DNS was captured is reported as coming from the server the app addressed, as
 * REDIRECT's reverse NAT does: resolvers drop a reply whose source is not a server they
 * asked.
 *
 * Limit: a socket keeps one record, so one socket that sends to two servers before the
 * replies arrive sees both replies come from the server it sent to last (every captured
 * server maps to the same listener; the reply carries nothing else to tell them apart).
 * Resolvers accept that: the reply is still from one of their servers. glibc and Go use a
 * socket per server or per query; musl checks the reply's source against its list.
 */
#include <linux/bpf.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "sluice.h"
#include "maps.h"
#include "endpoint.h"
#include "decide.h"
#include "redirect.h"
#include "dns.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Returns SYS_PROCEED or SYS_REJECT; on capture fills `to` and maybe `src` (redirect.h). */
static __always_inline int sock_xlate_datagram(struct bpf_sock_addr *ctx, struct outbound_conn *c, struct endpoint *to,
					       struct endpoint *src)
{
	const struct sluice_pod_policy *p;
	struct bpf_sock *sk = ctx->sk;
	struct decision d;

	/* Every datagram of every socket in the cgroup comes here: leave the rest at once. */
	if (c->dst.port != bpf_htons(DNS_PORT) || !sk)
		return SYS_PROCEED;
	p = pod_policy(bpf_get_netns_cookie(ctx));
	if (!p || !decide_udp(ctx, p, sk, c, &d) || d.outcome == SLUICE_OUTCOME_PASS)
		return SYS_PROCEED;
	redirect_target(p, c, &d, to, src);
	if (!dns_remember(sk, c, &d, to, bpf_get_socket_cookie(ctx))) {
		to->port = 0;
		return SYS_REJECT;
	}
	return SYS_PROCEED;
}

/* Also sees IPv4-mapped destinations of IPv6 sockets: the kernel hands those datagrams
 * to the IPv4 path with an IPv4 address. */
SEC("cgroup/sendmsg4")
int sluice_sendmsg4(struct bpf_sock_addr *ctx)
{
	struct outbound_conn c = {};
	struct endpoint to = {}, src = {};
	int ret;

	endpoint_set4(&c.dst, ctx->user_ip4, (__be16)ctx->user_port);
	/* The bound source, or the one IP_PKTINFO asks for. */
	if (ctx->msg_src_ip4)
		endpoint_set4(&c.src, ctx->msg_src_ip4, 0);
	ret = sock_xlate_datagram(ctx, &c, &to, &src);
	if (to.port) {
		ctx->user_ip4 = to.addr[0];
		ctx->user_port = to.port;
		if (src.family == SLUICE_FAMILY_IPV4)
			ctx->msg_src_ip4 = src.addr[0];
	}
	return ret;
}

SEC("cgroup/sendmsg6")
int sluice_sendmsg6(struct bpf_sock_addr *ctx)
{
	struct outbound_conn c = {};
	struct endpoint to = {}, src = {};
	int ret;

	endpoint_set6(&c.dst, ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3],
		      (__be16)ctx->user_port);
	if (ctx->msg_src_ip6[0] | ctx->msg_src_ip6[1] | ctx->msg_src_ip6[2] | ctx->msg_src_ip6[3])
		endpoint_set6(&c.src, ctx->msg_src_ip6[0], ctx->msg_src_ip6[1], ctx->msg_src_ip6[2], ctx->msg_src_ip6[3], 0);
	ret = sock_xlate_datagram(ctx, &c, &to, &src);
	if (!to.port)
		return ret;
	sock_addr_set_user6(ctx, to.family, to.addr, to.port);
	if (src.family == SLUICE_FAMILY_IPV6) {
		ctx->msg_src_ip6[0] = src.addr[0];
		ctx->msg_src_ip6[1] = src.addr[1];
		ctx->msg_src_ip6[2] = src.addr[2];
		ctx->msg_src_ip6[3] = src.addr[3];
	}
	return ret;
}

/* recvmsg programs must return SYS_PROCEED: they may only change the reported address. */
SEC("cgroup/recvmsg4")
int sluice_recvmsg4(struct bpf_sock_addr *ctx)
{
	const struct sluice_orig_dst *o;
	struct endpoint from;

	endpoint_set4(&from, ctx->user_ip4, (__be16)ctx->user_port);
	o = dns_reply_origin(ctx->sk, &from);
	if (!o || o->family != SLUICE_FAMILY_IPV4)
		return SYS_PROCEED;
	ctx->user_ip4 = o->addr[0];
	ctx->user_port = o->port;
	count(SLUICE_COUNTER_DNS_REPLY_RESTORED);
	return SYS_PROCEED;
}

/* An IPv6 socket reports an IPv4 sender as IPv4-mapped; so is the server put back. */
SEC("cgroup/recvmsg6")
int sluice_recvmsg6(struct bpf_sock_addr *ctx)
{
	const struct sluice_orig_dst *o;
	struct endpoint from;

	endpoint_set6(&from, ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3],
		      (__be16)ctx->user_port);
	o = dns_reply_origin(ctx->sk, &from);
	if (!o)
		return SYS_PROCEED;
	sock_addr_set_user6(ctx, o->family, o->addr, o->port);
	count(SLUICE_COUNTER_DNS_REPLY_RESTORED);
	return SYS_PROCEED;
}
