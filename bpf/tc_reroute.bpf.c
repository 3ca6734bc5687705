// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tc ingress and egress on a pod's reroute (KubeVirt) interfaces, inside the pod's netns:
 * forwarded VM connections go to the outbound listener like Istio's
 * `PREROUTING -i IF -j ISTIO_REDIRECT`. The logic is in reroute.h.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "sluice.h"
#include "maps.h"
#include "endpoint.h"
#include "reroute.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* One instance per pod netns, which knows its cookie: in tc, bpf_get_netns_cookie(skb)
 * does not name the pod's netns for a forwarded packet (measured on 6.18: no policy). */
const volatile struct sluice_sk_lookup_config sluice_config = {};

SEC("tc")
int sluice_reroute_ingress(struct __sk_buff *skb)
{
	__u64 netns_cookie = sluice_config.netns_cookie;
	struct reroute_pkt pk = {};
	struct endpoint l = {}, orig = {};
	const struct sluice_pod_policy *p = reroute_policy(skb, netns_cookie, &pk);

	if (!p || !reroute_listener(p, pk.dst.family, &l))
		return TC_ACT_OK;
	if ((pk.tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN)
		return reroute_new_connection(skb, p, &pk, &l, netns_cookie);
	if (!reroute_recorded(&pk.src, &l, netns_cookie, &orig))
		return TC_ACT_OK;
	if (orig.port != pk.dst.port || !endpoint_addr_eq(&orig, &pk.dst))
		return TC_ACT_OK; /* the tuple is recorded for another destination: not ours */
	return reroute_rewrite(skb, &pk, 1, &pk.dst, &l) ? TC_ACT_SHOT : TC_ACT_OK;
}

SEC("tc")
int sluice_reroute_egress(struct __sk_buff *skb)
{
	__u64 netns_cookie = sluice_config.netns_cookie;
	struct reroute_pkt pk = {};
	struct endpoint l = {}, orig = {};
	const struct sluice_pod_policy *p = reroute_policy(skb, netns_cookie, &pk);

	if (!p || !reroute_listener(p, pk.src.family, &l) || pk.src.port != l.port || !endpoint_addr_eq(&pk.src, &l))
		return TC_ACT_OK;
	if (!reroute_recorded(&pk.dst, &l, netns_cookie, &orig))
		return TC_ACT_OK;
	return reroute_rewrite(skb, &pk, 0, &pk.src, &orig) ? TC_ACT_SHOT : TC_ACT_OK;
}
