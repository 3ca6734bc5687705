// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * cgroup/getpeername4, cgroup/getpeername6: the app's captured socket reports the
 * original destination as its peer, exactly as REDIRECT's reverse NAT makes it appear.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "sluice.h"
#include "maps.h"
#include "endpoint.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static __always_inline const struct sluice_orig_dst *captured_peer(struct bpf_sock_addr *ctx)
{
	struct sluice_sock_state *st;

	if (!ctx->sk)
		return NULL;
	st = bpf_sk_storage_get(&sluice_socks, ctx->sk, 0, 0);
	if (!st || !(st->flags & SLUICE_SOCK_CAPTURED))
		return NULL;
	return &st->orig;
}

SEC("cgroup/getpeername4")
int sluice_getpeername4(struct bpf_sock_addr *ctx)
{
	const struct sluice_orig_dst *o = captured_peer(ctx);

	if (!o || o->family != SLUICE_FAMILY_IPV4)
		return SYS_PROCEED;
	ctx->user_ip4 = o->addr[0];
	ctx->user_port = o->port;
	count(SLUICE_COUNTER_GETPEERNAME_RESTORED);
	return SYS_PROCEED;
}

SEC("cgroup/getpeername6")
int sluice_getpeername6(struct bpf_sock_addr *ctx)
{
	const struct sluice_orig_dst *o = captured_peer(ctx);

	if (!o)
		return SYS_PROCEED;
	sock_addr_set_user6(ctx, o->family, o->addr, o->port);
	count(SLUICE_COUNTER_GETPEERNAME_RESTORED);
	return SYS_PROCEED;
}
