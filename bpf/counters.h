/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * counters.h: the spec steps and the counters (map sluice_counters) indexed by them,
 * part of what the BPF programs and the TypeScript control plane share: sluice.h
 * includes it, src/bpf/codec.ts mirrors it (STEP, COUNTER), and test/unit/codec.test.ts
 * checks the values through sluice.h. Change both sides together.
 */
#ifndef SLUICE_COUNTERS_H
#define SLUICE_COUNTERS_H

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

#endif /* SLUICE_COUNTERS_H */
