/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * sluice.h: every struct and constant that the BPF programs and the TypeScript control
 * plane share. src/bpf/codec.ts mirrors this file field by field, and
 * test/unit/codec.test.ts compiles this header to check that sizes, offsets and enum
 * values still agree. Change both sides together.
 *
 * Byte order: addresses and ports are network byte order (they are compared with socket
 * fields as they are). Ids, flags and counts are host byte order.
 * IPv4 addresses use word 0 of a 4-word address; words 1-3 are zero. An IPv4-mapped IPv6
 * address (::ffff:a.b.c.d) is always stored as IPv4, because it is IPv4 on the wire.
 */
#ifndef SLUICE_H
#define SLUICE_H

#include <linux/types.h>

#define SLUICE_MAX_PROXY_IDS 8 /* uids, and gids, per pod */
#define SLUICE_MAX_POD_IPS 4   /* per address family */
#define SLUICE_ADDR_WORDS 4

/* The uid/gid of a socket that has no file (a kernel socket): matches no proxy id,
 * as iptables' owner match never matches such a socket. */
#define SLUICE_NO_OWNER 0xffffffffu

/* Bits of a CIDR-set key that always match exactly: pod_id, set, family, _pad. */
#define SLUICE_CIDR_KEY_FIXED_BITS 64

enum sluice_family {
	SLUICE_FAMILY_IPV4 = 4,
	SLUICE_FAMILY_IPV6 = 6,
};

/* What happens to a connection; the same four outcomes as Decision.outcome. */
enum sluice_outcome {
	SLUICE_OUTCOME_PASS = 0,
	SLUICE_OUTCOME_OUTBOUND_PROXY = 1,
	SLUICE_OUTCOME_INBOUND_PROXY = 2,
	SLUICE_OUTCOME_DNS_PROXY = 3,
};

#include "counters.h" /* enum sluice_step, enum sluice_counter */

/* struct sluice_pod_policy.flags */
enum sluice_policy_flag {
	SLUICE_POLICY_DNS_CAPTURE = 1u << 0,
	SLUICE_POLICY_OUT_INCLUDE_ALL = 1u << 1,    /* includeOutboundIPRanges is '*' */
	SLUICE_POLICY_KEEP_LOOPBACK4 = 1u << 2,     /* an IPv4 include CIDR holds a loopback address: no step 4b */
	SLUICE_POLICY_KEEP_LOOPBACK6 = 1u << 3,     /* the same for IPv6 */
	SLUICE_POLICY_IN_INCLUDE_ALL = 1u << 4,     /* includeInboundPorts is '*' */
	SLUICE_POLICY_IN_INCLUDE_LIST = 1u << 5,    /* includeInboundPorts is a non-empty list */
	SLUICE_POLICY_EXCLUDE_LOOPBACK_IF = 1u << 6, /* 'lo' is an excluded interface: local destinations pass at step 1 */
	SLUICE_POLICY_ROUTE_CHECK = 1u << 7,        /* step 1 consults SLUICE_CIDRS_ROUTE for remote destinations */
	SLUICE_POLICY_HAS_BINDS = 1u << 8,          /* step 8 consults the bind-exclusion map */
	SLUICE_POLICY_HAS_INTERFACES = 1u << 9,     /* inbound steps 1-2 consult the interface map */
	/* An empty CIDR list, so its lookup is skipped. Set for "none" rather than for "some",
	 * so that a value written before these flags (kept by an in-place upgrade) still looks up. */
	SLUICE_POLICY_NO_OUT_EXCLUDE_CIDRS = 1u << 10, /* excludeOutboundIPRanges is empty: step 8 */
	SLUICE_POLICY_NO_OUT_INCLUDE_CIDRS = 1u << 11, /* includeOutboundIPRanges is an empty list: step 10 */
};

/* The per-pod policy, keyed by netns cookie (__u64) in map sluice_pods. */
struct sluice_pod_policy {
	/* Key of this pod's entries in the set maps; never 0. Every policy change writes its
	 * sets under a fresh pod_id and then swaps this value, so programs never see half a
	 * policy. */
	__u32 pod_id;
	__u32 flags;  /* enum sluice_policy_flag */
	__be16 port_outbound; /* P_OUT */
	__be16 port_inbound;  /* P_IN */
	__be16 port_tunnel;   /* P_TUN */
	__be16 port_dns;      /* P_DNS */
	__u8 n_uids;
	__u8 n_gids;
	__u8 n_ip4;
	__u8 n_ip6;
	__u32 _pad0;
	__u32 uids[SLUICE_MAX_PROXY_IDS];
	__u32 gids[SLUICE_MAX_PROXY_IDS];
	__be32 ip4[SLUICE_MAX_POD_IPS];
	__be32 ip6[SLUICE_MAX_POD_IPS][SLUICE_ADDR_WORDS];
#ifdef SLUICE_UPGRADE_VARIANT
	__u64 upgrade_variant_tail; /* the upgrade test's variant build: a grown value */
#endif
};

/* Port sets, map sluice_ports: key present = member (value 1). */
enum sluice_port_set {
	SLUICE_PORTS_OUT_EXCLUDE = 1, /* excludeOutboundPorts */
	SLUICE_PORTS_OUT_INCLUDE = 2, /* includeOutboundPorts */
	SLUICE_PORTS_IN_INCLUDE = 3,  /* includeInboundPorts (a list) */
	SLUICE_PORTS_IN_EXCLUDE = 4,  /* excludeInboundPorts */
};

struct sluice_port_key {
	__u32 pod_id;
	__u16 set; /* enum sluice_port_set */
	__be16 port;
};

/* CIDR sets, LPM trie sluice_cidrs. prefixlen = SLUICE_CIDR_KEY_FIXED_BITS + the CIDR's
 * prefix length. Value: 1 = member. For SLUICE_CIDRS_ROUTE the trie holds every route of
 * the pod's main table, value 1 when it leaves by an excluded interface, else 0. */
enum sluice_cidr_set {
	SLUICE_CIDRS_OUT_INCLUDE = 1, /* includeOutboundIPRanges (a list) */
	SLUICE_CIDRS_OUT_EXCLUDE = 2, /* excludeOutboundIPRanges */
	SLUICE_CIDRS_ROUTE = 3,
};

struct sluice_cidr_key {
	__u32 prefixlen;
	__u32 pod_id;
	__u8 set;    /* enum sluice_cidr_set */
	__u8 family; /* enum sluice_family */
	__u16 _pad0;
	__be32 addr[SLUICE_ADDR_WORDS];
};

/* Interface sets, map sluice_ifaces: ifindexes inside the pod's netns. */
enum sluice_iface_set {
	SLUICE_IFACES_EXCLUDE = 1, /* excludeInterfaces */
	SLUICE_IFACES_REROUTE = 2, /* reroute (kubevirt) interfaces */
};

struct sluice_iface_key {
	__u32 pod_id;
	__u32 set; /* enum sluice_iface_set */
	__u32 ifindex;
};

/* Sidecar egress listeners with captureMode NONE, map sluice_binds (step 8). */
struct sluice_bind_key {
	__u32 pod_id;
	__be16 port; /* 0: every port of the address */
	__u8 family;
	__u8 _pad0;
	__be32 addr[SLUICE_ADDR_WORDS];
};

/* An original destination, as SO_ORIGINAL_DST and getpeername() report it. */
struct sluice_orig_dst {
	__be32 addr[SLUICE_ADDR_WORDS];
	__be16 port;
	__u8 family;  /* enum sluice_family */
	__u8 outcome; /* enum sluice_outcome */
	__u8 step;    /* enum sluice_step */
	__u8 _pad0[3];
	__u64 owner_cookie; /* socket cookie of the app socket the record belongs to */
};

/* A captured connection as the proxy's accepted socket sees it, map sluice_conns.
 * src = the app's address and port, dst = the proxy listener's address and port.
 * netns_cookie is set only when dst is a loopback address: loopback 4-tuples repeat
 * across pods, pod addresses do not. */
struct sluice_conn_key {
	__u64 netns_cookie;
	__be32 src[SLUICE_ADDR_WORDS];
	__be32 dst[SLUICE_ADDR_WORDS];
	__be16 sport;
	__be16 dport;
	__u8 family;
	__u8 _pad0[3];
};

/* Socket-local storage, map sluice_socks (freed with the socket). */
enum sluice_sock_flag {
	SLUICE_SOCK_CAPTURED = 1u << 0, /* the app socket whose connect was rewritten; orig is valid */
	SLUICE_SOCK_ACCEPTED = 1u << 1, /* an accepted socket in a captured pod */
	SLUICE_SOCK_CONN_RECORDED = 1u << 2, /* orig is also under its connection key */
	SLUICE_SOCK_ACCEL_ENROLLED = 1u << 3, /* in sluice_accel; removed when the connection closes */
	/* Sent by TCP at least once while in sluice_accel: never redirect again, or redirected
	 * bytes would overtake the ones still in flight or in the peer's receive queue. */
	SLUICE_SOCK_ACCEL_TCP = 1u << 4,
};

struct sluice_sock_state {
	struct sluice_orig_dst orig;
	__u32 flags; /* enum sluice_sock_flag */
	__u32 _pad0;
	struct sluice_conn_key conn; /* valid with SLUICE_SOCK_CONN_RECORDED */
};

/* UDP DNS capture of one socket, socket storage sluice_dns (freed with the socket). The
 * socket's captured datagrams go to `listener` (P_DNS); a datagram it receives from there
 * is reported as coming from `orig`, the server the app addressed, as REDIRECT's reverse
 * NAT does. One record per socket: the last captured destination wins (see dns.bpf.c). */
struct sluice_dns_state {
	struct sluice_orig_dst orig;
	__be32 listener[SLUICE_ADDR_WORDS];
	__be16 listener_port;
	__u8 listener_family; /* enum sluice_family; 0: no record */
	__u8 _pad0[5];
};

/* Proxy listeners, sockhash sluice_listen: the sockets inbound steering hands
 * connections to. Keyed by netns cookie, not pod id, because a policy change gets a new
 * pod id while the proxy's listeners stay. family 6 may be a dual-stack socket that also
 * takes IPv4. */
struct sluice_listener_key {
	__u64 netns_cookie;
	__be16 port; /* P_IN or P_OUT */
	__u8 family;
	__u8 _pad0[5];
};

/* Node-wide settings, map sluice_global (an array of one, key 0), written by the daemon.
 * Changing them needs no reload: they are a runtime switch. */
enum sluice_global_flag {
	/* sockops enrols local socket pairs in sluice_accel, and sk_msg redirects between
	 * them. Cleared, nothing new is enrolled and enrolled sockets go back to TCP. */
	SLUICE_GLOBAL_ACCELERATE = 1u << 0,
};

struct sluice_global {
	__u32 flags; /* enum sluice_global_flag */
	/* Most original-destination records one pod netns may hold at once (map
	 * sluice_conn_count); 0: no per-pod limit. A captured connect past it is refused. */
	__u32 conn_quota;
};

/* Per-pod live record counts, map sluice_conn_count: netns cookie -> __u64, added to by
 * sockops when a record is written and taken from when its connection closes. */

/* Pods the daemon knows but has not written a policy for yet (sluice run --hold-unknown),
 * map sluice_pending: netns cookie -> __u32 1. Their outbound connects are refused. */

/* Acceleration, sockhash sluice_accel: a socket whose peer is on this node, keyed by a
 * struct sluice_conn_key with src = the socket's own end and dst = its peer's end; the
 * peer's key is the same with the ends swapped. netns_cookie is set when either end is
 * loopback (loopback 4-tuples repeat in every pod; pod addresses are unique on the node,
 * and a pair between two pods has two netns). */

/* Addresses of the captured pods on this node, map sluice_addrs (value: the pod's netns
 * cookie). A peer at one of them is local, so the pair can be accelerated. */
struct sluice_addr_key {
	__u8 family; /* enum sluice_family */
	__u8 _pad0[3];
	__be32 addr[SLUICE_ADDR_WORDS];
};

/* Read-only configuration of one sk_lookup program instance (.rodata). sk_lookup
 * programs can call neither bpf_get_netns_cookie nor bpf_get_attach_cookie (6.18), so
 * each pod netns gets its own instance that knows its cookie. The tc reroute programs
 * use the same configuration, per pod, for the same reason. */
struct sluice_sk_lookup_config {
	__u64 netns_cookie;
};

#endif /* SLUICE_H */
