// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tc ingress and egress on a pod's reroute (KubeVirt) interfaces, inside the pod's netns:
 * forwarded VM connections go to the outbound listener like Istio's
 * `PREROUTING -i IF -j ISTIO_REDIRECT`. The logic is in reroute.h.
 */
#include "reroute.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* One instance per pod netns, which knows its cookie: in tc, bpf_get_netns_cookie(skb)
 * does not name the pod's netns for a forwarded packet (measured on 6.18: no policy). */
const volatile struct sluice_sk_lookup_config sluice_config = {};

SEC("tc")
int sluice_reroute_ingress(struct __sk_buff *skb)
{
	__u64 netns_cookie = sluice_config.netns_cookie;
	const struct sluice_pod_policy *p = pod_policy(netns_cookie);
	struct sluice_conn_key key;
	struct sluice_orig_dst *rec;
	struct reroute_pkt pk = {};
	struct endpoint l = {}, orig = {};

	if (!p || !(p->flags & SLUICE_POLICY_HAS_INTERFACES) || !reroute_parse(skb, &pk))
		return TC_ACT_OK;
	if (!reroute_listener(p, pk.dst.family, &l))
		return TC_ACT_OK;
	if ((pk.tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN)
		return reroute_new_connection(skb, p, &pk, &l, netns_cookie);
	rec = reroute_record(&pk.src, &l, netns_cookie, &key);
	if (!rec)
		return TC_ACT_OK;
	orig.family = rec->family;
	orig.port = rec->port;
	addr_copy(orig.addr, rec->addr);
	if (orig.port != pk.dst.port || !endpoint_addr_eq(&orig, &pk.dst))
		return TC_ACT_OK; /* the tuple is recorded for another destination: not ours */
	return reroute_rewrite(skb, &pk, 1, &pk.dst, &l) ? TC_ACT_SHOT : TC_ACT_OK;
}

SEC("tc")
int sluice_reroute_egress(struct __sk_buff *skb)
{
	__u64 netns_cookie = sluice_config.netns_cookie;
	const struct sluice_pod_policy *p = pod_policy(netns_cookie);
	struct sluice_conn_key key;
	struct sluice_orig_dst *rec;
	struct reroute_pkt pk = {};
	struct endpoint l = {}, orig = {};

	if (!p || !(p->flags & SLUICE_POLICY_HAS_INTERFACES) || !reroute_parse(skb, &pk))
		return TC_ACT_OK;
	if (!reroute_listener(p, pk.src.family, &l) || pk.src.port != l.port || !endpoint_addr_eq(&pk.src, &l))
		return TC_ACT_OK;
	rec = reroute_record(&pk.dst, &l, netns_cookie, &key);
	if (!rec)
		return TC_ACT_OK;
	addr_copy(orig.addr, rec->addr);
	orig.port = rec->port;
	orig.family = rec->family;
	return reroute_rewrite(skb, &pk, 0, &pk.src, &orig) ? TC_ACT_SHOT : TC_ACT_OK;
}
