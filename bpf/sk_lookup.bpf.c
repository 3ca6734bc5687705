// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sk_lookup: inbound steering (capture-spec.md inbound steps 1-5). Linked to one pod's
 * netns, it runs once per new connection and hands a captured one to the proxy's
 * listener, with no NAT and no conntrack: the accepted socket keeps the original local
 * address, which getsockopt reports as SO_ORIGINAL_DST.
 *
 * sk_lookup programs can call neither bpf_get_netns_cookie nor bpf_get_attach_cookie
 * (kernel 6.18), so each pod netns gets its own instance of a tiny entry program with
 * its cookie in .rodata. The entry leaves the cookie in a per-CPU slot and tail-calls
 * the one shared steering program: the verifier runs on decide_inbound once per
 * install instead of once per pod (150 ms a pod), and an upgrade swaps it for every
 * netns at once by rewriting sluice_lookup_prog.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "sluice.h"
#include "maps.h"
#include "endpoint.h"
#include "decide.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile struct sluice_sk_lookup_config sluice_config = {};

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} sluice_lookup_prog SEC(".maps");

/* The entry's netns cookie, for the steering program it tail-calls on the same CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} sluice_lookup_netns SEC(".maps");

static __always_inline struct bpf_sock *proxy_listener(__u64 netns_cookie, __be16 port, __u8 family)
{
	struct sluice_listener_key key = { .netns_cookie = netns_cookie, .port = port, .family = family };
	struct bpf_sock *sk = bpf_map_lookup_elem(&sluice_listen, &key);

	/* An IPv6 listener that is not v6-only also takes IPv4. */
	if (!sk && family == SLUICE_FAMILY_IPV4) {
		key.family = SLUICE_FAMILY_IPV6;
		sk = bpf_map_lookup_elem(&sluice_listen, &key);
	}
	return sk;
}

static __always_inline int rerouted(const struct inbound_conn *c, __u64 netns_cookie)
{
	struct sluice_conn_key key;
	struct sluice_orig_dst *rec;

	conn_key_make(&key, &c->src, &c->dst, netns_cookie);
	rec = bpf_map_lookup_elem(&sluice_conns, &key);
	return rec && rec->step == SLUICE_STEP_IN_1;
}

SEC("sk_lookup")
int sluice_sk_lookup(struct bpf_sk_lookup *ctx)
{
	__u32 zero = 0;
	__u64 *slot = bpf_map_lookup_elem(&sluice_lookup_netns, &zero);

	if (slot) {
		*slot = sluice_config.netns_cookie;
		bpf_tail_call(ctx, &sluice_lookup_prog, 0);
	}
	/* Not steered is not captured: refuse, as REDIRECT to a dead port would. */
	count(SLUICE_COUNTER_SK_LOOKUP_NO_PROGRAM);
	return SK_DROP;
}

SEC("sk_lookup")
int sluice_sk_lookup_steer(struct bpf_sk_lookup *ctx)
{
	__u32 zero = 0;
	__u64 *slot = bpf_map_lookup_elem(&sluice_lookup_netns, &zero);
	__u64 netns_cookie = slot ? *slot : 0;
	const struct sluice_pod_policy *p = pod_policy(netns_cookie);
	struct inbound_conn c = {};
	struct decision d;
	struct bpf_sock *sk;
	long err;

	if (!p) {
		count(SLUICE_COUNTER_SK_LOOKUP_NO_POLICY);
		return SK_PASS;
	}
	ctx_endpoints(ctx, local, remote, port_from_net16, &c.dst, &c.src);
	c.ifindex = ctx->ingress_ifindex;
	c.tcp = ctx->protocol == IPPROTO_TCP;

	/* Rerouted by tc (reroute.h): decided and counted there, already addressed to P_OUT. */
	if ((p->flags & SLUICE_POLICY_HAS_INTERFACES) && c.tcp && rerouted(&c, netns_cookie))
		return SK_PASS;

	d = decide_inbound(p, &c);
	count_decision(d.outcome, d.step);
	if (d.outcome == SLUICE_OUTCOME_PASS)
		return SK_PASS;

	sk = proxy_listener(netns_cookie, d.port, ctx->family == AF_INET ? SLUICE_FAMILY_IPV4 : SLUICE_FAMILY_IPV6);
	if (!sk) {
		/* Like REDIRECT to a port nobody listens on: refused, never around the proxy. */
		count(SLUICE_COUNTER_INBOUND_NO_LISTENER);
		return SK_DROP;
	}
	err = bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	if (err) {
		count(SLUICE_COUNTER_INBOUND_ASSIGN_FAILED);
		return SK_DROP;
	}
	return SK_PASS;
}
