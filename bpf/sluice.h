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

/* The spec step that decided (Decision.step in decide.ts). Also the index of the counter
 * of connections decided by that step. */
enum sluice_step {
	SLUICE_STEP_NONE = 0,
	SLUICE_STEP_OUT_1 = 1,  /* route leaves by an excluded interface */
	SLUICE_STEP_OUT_2 = 2,  /* excluded outbound port */
	SLUICE_STEP_OUT_3 = 3,  /* passthrough source to a local address */
	SLUICE_STEP_OUT_4A = 4, /* proxy uid hairpin */
	SLUICE_STEP_OUT_4B = 5, /* app to a local address */
	SLUICE_STEP_OUT_4C = 6, /* proxy uid */
	SLUICE_STEP_OUT_5A = 7, /* proxy gid hairpin */
	SLUICE_STEP_OUT_5C = 8, /* proxy gid */
	SLUICE_STEP_OUT_6 = 9,  /* DNS capture */
	SLUICE_STEP_OUT_7 = 10, /* LOOP */
	SLUICE_STEP_OUT_8 = 11, /* excluded CIDR or Sidecar bind */
	SLUICE_STEP_OUT_9 = 12, /* included port */
	SLUICE_STEP_OUT_10 = 13, /* included CIDR, or the final pass */
	SLUICE_STEP_IN_LOOPBACK = 14, /* from inside the pod (lo, or a local source): never inbound */
	SLUICE_STEP_IN_1 = 15,  /* reroute interface */
	SLUICE_STEP_IN_2 = 16,  /* excluded interface */
	SLUICE_STEP_IN_3 = 17,  /* not TCP, or no inbound capture */
	SLUICE_STEP_IN_4 = 18,  /* tunnel port */
	SLUICE_STEP_IN_5 = 19,  /* inbound port lists */
	SLUICE_STEP_COUNT = 20,
};

/* Per-CPU counters. Indices below SLUICE_STEP_COUNT count captured connections decided by
 * that step (enum sluice_step); SLUICE_COUNTER_PASS_BASE + step counts passes. */
enum sluice_counter {
	SLUICE_COUNTER_PASS_BASE = SLUICE_STEP_COUNT,
	SLUICE_COUNTER_CONNECT_NO_POLICY = 2 * SLUICE_STEP_COUNT, /* connect in a netns with no policy */
	SLUICE_COUNTER_DNS_REPLY_RESTORED,     /* a DNS listener's reply reported as from the original server */
	SLUICE_COUNTER_SOCK_STORAGE_FAILED,    /* no socket storage for a captured socket */
	SLUICE_COUNTER_CONN_MAP_FULL,          /* original-destination map update failed */
	SLUICE_COUNTER_CONN_RECORDED,          /* record moved to its connection key */
	SLUICE_COUNTER_CONN_DELETED,           /* record deleted on close */
	SLUICE_COUNTER_GETPEERNAME_RESTORED,   /* app's getpeername answered with the original */
	SLUICE_COUNTER_ORIG_DST_RECORD,        /* SO_ORIGINAL_DST answered from a record */
	SLUICE_COUNTER_ORIG_DST_LOCAL,         /* SO_ORIGINAL_DST answered with the local address */
	SLUICE_COUNTER_ORIG_DST_MISS,          /* SO_ORIGINAL_DST in a captured pod, no answer */
	SLUICE_COUNTER_ORIG_DST_SHORT_BUFFER,  /* SO_ORIGINAL_DST with a buffer too small */
	SLUICE_COUNTER_LISTENER_ADDED,         /* a proxy listener entered the listener map */
	SLUICE_COUNTER_LISTENER_ADD_FAILED,
	SLUICE_COUNTER_INBOUND_NO_LISTENER,    /* captured inbound, no proxy listener: refused */
	SLUICE_COUNTER_INBOUND_ASSIGN_FAILED,  /* bpf_sk_assign refused the listener */
	SLUICE_COUNTER_SK_LOOKUP_NO_POLICY,    /* sk_lookup linked to a netns whose policy is gone */
	SLUICE_COUNTER_DNS_BIND_FAILED,        /* captured DNS connect: the source could not be set */
	/* Acceleration (sockops + sk_msg). Redirected bytes bypass netfilter and tcpdump:
	 * these counters are how an operator sees them. */
	SLUICE_COUNTER_ACCEL_ENROLLED,         /* a socket with a local peer entered sluice_accel */
	SLUICE_COUNTER_ACCEL_ENROL_FAILED,     /* sluice_accel refused it (full, or the key is taken) */
	SLUICE_COUNTER_ACCEL_REMOVED,          /* an enrolled connection closed: its entry is gone */
	SLUICE_COUNTER_ACCEL_REDIRECTED,       /* messages handed straight to the peer socket */
	SLUICE_COUNTER_ACCEL_REDIRECTED_BYTES, /* their bytes */
	SLUICE_COUNTER_ACCEL_PEER_MISSING,     /* an enrolled socket's peer is not enrolled: it stays on TCP */
	SLUICE_COUNTER_ACCEL_OFF,              /* an enrolled socket sent while acceleration was off: it stays on TCP */
	SLUICE_COUNTER_SK_LOOKUP_NO_PROGRAM,   /* a netns entry found no steering program: refused */
	/* Fail closed when a connection's record cannot be kept (issue 9, items 6 and 8). */
	SLUICE_COUNTER_CONN_QUOTA_REFUSED,     /* captured connect refused (EPERM): the pod holds its quota of records */
	SLUICE_COUNTER_CONN_QUOTA_EXCEEDED,    /* established past the quota (a race): not recorded */
	SLUICE_COUNTER_ORIG_DST_UNRECORDED,    /* SO_ORIGINAL_DST of a redirected connection with no record: failed, as without conntrack */
	SLUICE_COUNTER_CONNECT_PENDING,        /* connect refused (EPERM): the netns is pending, its policy not written yet */
#ifdef SLUICE_UPGRADE_VARIANT
	SLUICE_COUNTER_UPGRADE_VARIANT, /* the upgrade test's variant build: one counter more */
#endif
	SLUICE_COUNTER_MAX,
};

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
