/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * maps.h: the maps every program shares. Each object declares the same maps; the loader
 * gives each one the same pin path, so libbpf creates a map once and every later object
 * (and every restarted loader) reuses the pinned one. Sizes here are defaults: the loader
 * sets the configured capacity before load.
 */
#ifndef SLUICE_MAPS_H
#define SLUICE_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "sluice.h"

#define SLUICE_DEFAULT_PODS 512
#define SLUICE_DEFAULT_SET_ENTRIES 65536
#define SLUICE_DEFAULT_CONNS 262144
#define SLUICE_DEFAULT_ADDRS (2 * SLUICE_MAX_POD_IPS * SLUICE_DEFAULT_PODS)

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SLUICE_DEFAULT_PODS);
	__type(key, __u64); /* netns cookie */
	__type(value, struct sluice_pod_policy);
} sluice_pods SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SLUICE_DEFAULT_SET_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sluice_port_key);
	__type(value, __u32);
} sluice_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SLUICE_DEFAULT_SET_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sluice_cidr_key);
	__type(value, __u32);
} sluice_cidrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SLUICE_DEFAULT_SET_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sluice_iface_key);
	__type(value, __u32);
} sluice_ifaces SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SLUICE_DEFAULT_SET_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sluice_bind_key);
	__type(value, __u32);
} sluice_binds SEC(".maps");

/* Not LRU: sockops deletes each record when its connection closes, and a full map is
 * counted (SLUICE_COUNTER_CONN_MAP_FULL) instead of silently evicting a live record. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SLUICE_DEFAULT_CONNS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sluice_conn_key);
	__type(value, struct sluice_orig_dst);
} sluice_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sluice_sock_state);
} sluice_socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sluice_dns_state);
} sluice_dns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 4 * SLUICE_DEFAULT_PODS);
	__type(key, struct sluice_listener_key);
	__type(value, __u64);
} sluice_listen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sluice_global);
} sluice_global SEC(".maps");

/* The sk_msg program is attached to this map; see accel.h. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, SLUICE_DEFAULT_CONNS);
	__type(key, struct sluice_conn_key);
	__type(value, __u64);
} sluice_accel SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SLUICE_DEFAULT_ADDRS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sluice_addr_key);
	__type(value, __u64); /* netns cookie */
} sluice_addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * SLUICE_DEFAULT_PODS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64); /* netns cookie */
	__type(value, __u64); /* live records of that netns */
} sluice_conn_count SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SLUICE_DEFAULT_PODS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64); /* netns cookie */
	__type(value, __u32);
} sluice_pending SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SLUICE_COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} sluice_counters SEC(".maps");

static __always_inline void count_add(enum sluice_counter c, __u64 n)
{
	__u32 key = c;
	__u64 *v = bpf_map_lookup_elem(&sluice_counters, &key);

	if (v)
		*v += n;
}

static __always_inline void count(enum sluice_counter c)
{
	count_add(c, 1);
}

static __always_inline void count_decision(__u8 outcome, __u8 step)
{
	count(outcome == SLUICE_OUTCOME_PASS ? SLUICE_COUNTER_PASS_BASE + step : step);
}

static __always_inline const struct sluice_pod_policy *pod_policy(__u64 netns_cookie)
{
	return bpf_map_lookup_elem(&sluice_pods, &netns_cookie);
}

static __always_inline __u32 conn_quota(void)
{
	__u32 key = 0;
	const struct sluice_global *g = bpf_map_lookup_elem(&sluice_global, &key);

	return g ? g->conn_quota : 0;
}

/* Whether `live` records (NULL: none) fill the pod's quota. */
static __always_inline int conn_quota_full(const __u64 *live)
{
	__u32 limit = conn_quota();

	return limit && live && *live >= limit;
}

/* Whether the pod netns holds its quota of original-destination records already. */
static __always_inline int conn_quota_reached(__u64 netns_cookie)
{
	return conn_quota_full(bpf_map_lookup_elem(&sluice_conn_count, &netns_cookie));
}

/* The netns's count of live records, created at 0 when it has none; NULL when the map
 * is full. The caller adds 1 once its record is written. */
static __always_inline __u64 *conn_count_slot(__u64 netns_cookie)
{
	__u64 zero = 0, *n = bpf_map_lookup_elem(&sluice_conn_count, &netns_cookie);

	if (n)
		return n;
	bpf_map_update_elem(&sluice_conn_count, &netns_cookie, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&sluice_conn_count, &netns_cookie);
}

/* One fewer live record for the netns. */
static __always_inline void conn_count_drop(__u64 netns_cookie)
{
	__u64 *n = bpf_map_lookup_elem(&sluice_conn_count, &netns_cookie);

	/* 0: the entry was reset (the pod's policy removed and written again). */
	if (n && *n > 0)
		__sync_fetch_and_add(n, -1);
}

#endif /* SLUICE_MAPS_H */
