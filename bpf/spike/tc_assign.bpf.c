// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Spike, not part of the data plane: inbound steering with tc instead of sk_lookup, for
 * the comparison architecture.md asks for (`npm run bench -- --spike-inbound`).
 *
 * Attached at tc ingress of the pod's interface, inside the pod netns. A SYN for the
 * captured port is handed to the proxy's listener with bpf_sk_assign, so, as with
 * sk_lookup, there is no NAT and the accepted socket keeps the original local address.
 * Later packets of the connection need nothing: the request and established sockets
 * carry that address and port, so the kernel's own lookup finds them.
 *
 * Known hole (measured: `npm run bench -- --spike-inbound --close fin`): a SYN whose tuple
 * is still in TIME_WAIT on the pod side is left to the kernel. Assigning the proxy's
 * listener anyway does not work: the kernel drops the SYN (its request socket would
 * duplicate the TIME_WAIT tuple) and the client waits a whole SYN timeout, 1 s (tried).
 * Left to the kernel, the SYN replaces the TIME_WAIT socket through a listener lookup on
 * the original port, which this program never sees: the app's own listener takes the
 * connection around the proxy, or, with no app listener, the client gets an ACK, resets
 * and retries some milliseconds later. sk_lookup runs inside that listener lookup, so it
 * has no such hole.
 *
 * Deliberately minimal: IPv4 without IP options, one captured port and one proxy port
 * fixed at build time, no policy map. tc loads it from the command line, so it has no
 * maps at all (tc would pin them under /sys/fs/bpf/tc, outside any private directory).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#ifndef SPIKE_CAPTURED_PORT
#define SPIKE_CAPTURED_PORT 8080
#endif
#ifndef SPIKE_PROXY_PORT
#define SPIKE_PROXY_PORT 15006
#endif

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("tc")
int spike_tc_assign(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct tcphdr *tcp = (void *)(ip + 1);
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;
	long err;

	if ((void *)(tcp + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	if (ip->ihl != 5 || ip->protocol != IPPROTO_TCP || tcp->dest != bpf_htons(SPIKE_CAPTURED_PORT))
		return TC_ACT_OK;
	if (!tcp->syn || tcp->ack)
		return TC_ACT_OK;

	t.ipv4.saddr = ip->saddr;
	t.ipv4.daddr = ip->daddr;
	t.ipv4.sport = tcp->source;
	t.ipv4.dport = tcp->dest;
	/* A retransmitted SYN has a request socket already: the kernel's lookup finds it. */
	sk = bpf_skc_lookup_tcp(skb, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
	if (sk) {
		int listening = sk->state == BPF_TCP_LISTEN;

		bpf_sk_release(sk);
		if (!listening)
			return TC_ACT_OK;
	}

	t.ipv4.dport = bpf_htons(SPIKE_PROXY_PORT);
	sk = bpf_sk_lookup_tcp(skb, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return TC_ACT_SHOT; /* like REDIRECT to a port nobody listens on */
	if (sk->state != BPF_TCP_LISTEN) {
		bpf_sk_release(sk);
		return TC_ACT_SHOT;
	}
	err = bpf_sk_assign(skb, sk, 0);
	bpf_sk_release(sk);
	return err ? TC_ACT_SHOT : TC_ACT_OK;
}
