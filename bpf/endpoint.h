/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * endpoint.h: addresses and ports read from the different hook contexts, normalized to
 * one form so that every hook computes the same keys. BPF-only.
 */
#ifndef SLUICE_ENDPOINT_H
#define SLUICE_ENDPOINT_H

#include <linux/bpf.h>
#include <linux/in.h> /* IPPROTO_TCP, IPPROTO_UDP */
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "sluice.h"

/* Return codes of cgroup socket hooks. */
#define SYS_PROCEED 1
#define SYS_REJECT 0

#define AF_INET 2
#define AF_INET6 10
#define SOL_IP 0
#define SOL_IPV6 41
#define SO_ORIGINAL_DST 80 /* SOL_IP; IP6T_SO_ORIGINAL_DST has the same number */

/* In every network namespace, lo is created first. */
#define LOOPBACK_IFINDEX 1

#define IPV4_LOOPBACK_NET 127u      /* 127.0.0.0/8, first octet */
#define IPV4_LOOP_HOST 0x7f000001u  /* 127.0.0.1, host order */
#define IPV4_PASSTHROUGH 0x7f000006u /* 127.0.0.6, host order */
#define IPV6_LOOP_HOST_LAST 1u      /* ::1 */
#define IPV6_PASSTHROUGH_LAST 6u    /* ::6 */
#define IPV4_MAPPED_WORD2 0x0000ffffu /* ::ffff:0:0/96, word 2, host order */

#define BITS_IPV4 32
#define BITS_IPV6 128

struct endpoint {
	__be32 addr[SLUICE_ADDR_WORDS];
	__be16 port;
	__u8 family; /* enum sluice_family; 0 = none (an unbound source) */
	__u8 _pad0;
};

static __always_inline void endpoint_set4(struct endpoint *ep, __be32 ip, __be16 port)
{
	ep->addr[0] = ip;
	ep->addr[1] = 0;
	ep->addr[2] = 0;
	ep->addr[3] = 0;
	ep->port = port;
	ep->family = SLUICE_FAMILY_IPV4;
}

static __always_inline int ip6_is_v4mapped(__be32 w0, __be32 w1, __be32 w2)
{
	return w0 == 0 && w1 == 0 && w2 == bpf_htonl(IPV4_MAPPED_WORD2);
}

/* An IPv6 socket address; a v4-mapped one becomes IPv4, as it is IPv4 on the wire. */
static __always_inline void endpoint_set6(struct endpoint *ep, __be32 w0, __be32 w1, __be32 w2, __be32 w3,
					  __be16 port)
{
	if (ip6_is_v4mapped(w0, w1, w2)) {
		endpoint_set4(ep, w3, port);
		return;
	}
	ep->addr[0] = w0;
	ep->addr[1] = w1;
	ep->addr[2] = w2;
	ep->addr[3] = w3;
	ep->port = port;
	ep->family = SLUICE_FAMILY_IPV6;
}

static __always_inline int ip6_words_zero_then(const __be32 *a, __u32 last)
{
	return a[0] == 0 && a[1] == 0 && a[2] == 0 && a[3] == bpf_htonl(last);
}

/* 127.0.0.0/8 or ::1: routed by lo, source 127.0.0.1 / ::1. */
static __always_inline int endpoint_is_loopback(const struct endpoint *ep)
{
	if (ep->family == SLUICE_FAMILY_IPV4)
		return (bpf_ntohl(ep->addr[0]) >> 24) == IPV4_LOOPBACK_NET;
	return ip6_words_zero_then(ep->addr, IPV6_LOOP_HOST_LAST);
}

/* LOOP in the spec: 127.0.0.1/32 and ::1/128. */
static __always_inline int endpoint_is_loop_host(const struct endpoint *ep)
{
	if (ep->family == SLUICE_FAMILY_IPV4)
		return ep->addr[0] == bpf_htonl(IPV4_LOOP_HOST);
	return ip6_words_zero_then(ep->addr, IPV6_LOOP_HOST_LAST);
}

/* The proxy's passthrough source: 127.0.0.6 and ::6. */
static __always_inline int endpoint_is_passthrough(const struct endpoint *ep)
{
	if (ep->family == SLUICE_FAMILY_IPV4)
		return ep->addr[0] == bpf_htonl(IPV4_PASSTHROUGH);
	if (ep->family == SLUICE_FAMILY_IPV6)
		return ip6_words_zero_then(ep->addr, IPV6_PASSTHROUGH_LAST);
	return 0;
}

static __always_inline void addr_copy(__be32 *dst, const __be32 *src)
{
	dst[0] = src[0];
	dst[1] = src[1];
	dst[2] = src[2];
	dst[3] = src[3];
}

/* The key under which the proxy side finds a captured connection. `client` is the app's
 * end, `listener` the proxy's. Both sides call this, so they cannot disagree. */
static __always_inline void conn_key_make(struct sluice_conn_key *key, const struct endpoint *client,
					  const struct endpoint *listener, __u64 netns_cookie)
{
	__builtin_memset(key, 0, sizeof(*key));
	/* Loopback 4-tuples repeat in every pod at once; pod addresses are unique on the node. */
	key->netns_cookie = endpoint_is_loopback(listener) ? netns_cookie : 0;
	addr_copy(key->src, client->addr);
	addr_copy(key->dst, listener->addr);
	key->sport = client->port;
	key->dport = listener->port;
	key->family = listener->family;
}

/* Every socket context gives the local port in host order; the rest is network order.
 * bpf_sock_ops and sk_msg_md hold the network-order remote port as a 32-bit
 * network-order value (it is shifted on little-endian), hence the ntohl; bpf_sock and
 * bpf_sk_lookup hold it as a __be16. */
static __always_inline __be16 port_from_host32(__u32 port)
{
	return bpf_htons((__u16)port);
}

static __always_inline __be16 port_from_net32(__u32 remote_port)
{
	return bpf_htons((__u16)bpf_ntohl(remote_port));
}

static __always_inline __be16 port_from_net16(__u32 remote_port)
{
	return (__be16)remote_port;
}

/* One end of a socket: an IPv4 address, or the four words of an IPv6 one. */
static __always_inline void endpoint_from(struct endpoint *ep, __u32 family, __be32 ip4, __be32 w0, __be32 w1,
					  __be32 w2, __be32 w3, __be16 port)
{
	if (family == AF_INET)
		endpoint_set4(ep, ip4, port);
	else
		endpoint_set6(ep, w0, w1, w2, w3, port);
}

/*
 * The local and remote ends of a socket from a hook context whose fields are named
 * <L>_ip4, <L>_ip6, <L>_port and the same for <R>: bpf_sock_ops, sk_msg_md and
 * bpf_sk_lookup (local, remote), bpf_sock (src, dst). RPORT is port_from_net32 or
 * port_from_net16, as above. A macro, so that every field is read straight from the
 * context at a constant offset, which is all the verifier allows.
 */
#define ctx_endpoints(ctx, L, R, RPORT, local, remote)                                                          \
	do {                                                                                                    \
		endpoint_from((local), (ctx)->family, (ctx)->L##_ip4, (ctx)->L##_ip6[0], (ctx)->L##_ip6[1],    \
			      (ctx)->L##_ip6[2], (ctx)->L##_ip6[3], port_from_host32((ctx)->L##_port));        \
		endpoint_from((remote), (ctx)->family, (ctx)->R##_ip4, (ctx)->R##_ip6[0], (ctx)->R##_ip6[1],   \
			      (ctx)->R##_ip6[2], (ctx)->R##_ip6[3], RPORT((ctx)->R##_port));                    \
	} while (0)

/* Writes an address into an IPv6 sock_addr context (user_ip6/user_port): an IPv4 address
 * in its v4-mapped form, since the socket is IPv6. */
static __always_inline void sock_addr_set_user6(struct bpf_sock_addr *ctx, __u8 family, const __be32 *addr, __be16 port)
{
	if (family == SLUICE_FAMILY_IPV4) {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(IPV4_MAPPED_WORD2);
		ctx->user_ip6[3] = addr[0];
	} else {
		ctx->user_ip6[0] = addr[0];
		ctx->user_ip6[1] = addr[1];
		ctx->user_ip6[2] = addr[2];
		ctx->user_ip6[3] = addr[3];
	}
	ctx->user_port = port;
}

#endif /* SLUICE_ENDPOINT_H */
