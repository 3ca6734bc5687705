/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * owner.h: the credentials a socket was created with, as iptables' owner match reads them
 * (sk->sk_socket->file->f_cred->fsuid/fsgid). bpf_get_current_uid_gid() would give the
 * caller of connect() or sendmsg(), which differs when a socket is handed to another
 * process or the process changed ids after socket(). Uses CO-RE against the kernel's BTF;
 * only the four fields below are relocated. BPF-only.
 */
#ifndef SLUICE_OWNER_H
#define SLUICE_OWNER_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "sluice.h"

/* kfunc (any program type): reads of the result are fault-safe, never trusted. */
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;

typedef struct {
	__u32 val;
} kuid___sluice;

typedef struct {
	__u32 val;
} kgid___sluice;

struct cred___sluice {
	kuid___sluice fsuid;
	kgid___sluice fsgid;
} __attribute__((preserve_access_index));

struct file___sluice {
	const struct cred___sluice *f_cred;
} __attribute__((preserve_access_index));

struct socket___sluice {
	struct file___sluice *file;
} __attribute__((preserve_access_index));

struct sock___sluice {
	struct socket___sluice *sk_socket;
} __attribute__((preserve_access_index));

static __always_inline void sock_owner(const struct sock___sluice *s, __u32 *uid, __u32 *gid)
{
	struct socket___sluice *sock;
	struct file___sluice *file;
	const struct cred___sluice *cred;

	*uid = SLUICE_NO_OWNER;
	*gid = SLUICE_NO_OWNER;
	if (!s)
		return;
	sock = s->sk_socket;
	if (!sock)
		return;
	file = sock->file;
	if (!file)
		return;
	cred = file->f_cred;
	if (!cred)
		return;
	*uid = cred->fsuid.val;
	*gid = cred->fsgid.val;
}

/* TCP sockets: bpf_skc_to_tcp_sock is the one cast every socket hook may use. A socket
 * without a file (a kernel socket) gets SLUICE_NO_OWNER, which matches no proxy id, as
 * the owner match never matches it either. */
static __always_inline void tcp_socket_owner(struct bpf_sock *sk, __u32 *uid, __u32 *gid)
{
	sock_owner((struct sock___sluice *)bpf_skc_to_tcp_sock(sk), uid, gid);
}

/* UDP sockets: no helper casts an IPv4 UDP socket (bpf_skc_to_udp6_sock takes IPv6
 * only), so the socket is read as the kernel's struct sock through bpf_rdonly_cast. */
static __always_inline void udp_socket_owner(struct bpf_sock *sk, __u32 *uid, __u32 *gid)
{
	sock_owner(bpf_rdonly_cast(sk, bpf_core_type_id_kernel(struct sock___sluice)), uid, gid);
}

#endif /* SLUICE_OWNER_H */
