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

/* kfunc (Linux 6.2+, any program type): reads of the result are fault-safe, never
 * trusted. Weak, so that libbpf loads the object on a kernel without it. */
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym __weak;

/*
 * 1 when the kernel has bpf_rdonly_cast: the loader (src/bpf/fallbacks.ts) sets it from
 * the kernel's BTF before load. The verifier knows a frozen .rodata value, so it never
 * walks the branch not taken: a 6.1 kernel never sees the kfunc call, a 6.2+ kernel
 * never sees the bpf_probe_read_kernel fallback. Its own section, so that the loader
 * can set it without knowing the layout of the object's .rodata.
 */
const volatile __u32 sluice_have_rdonly_cast SEC(".rodata.fallback") = 0;

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

/* What a cgroup/connect or cgroup/sendmsg ctx points to in the kernel. */
struct bpf_sock_addr_kern___sluice {
	struct sock___sluice *sk;
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

/* The same chain read with bpf_probe_read_kernel (Linux 6.1: no bpf_rdonly_cast). The
 * verifier allows no arithmetic on a socket pointer, so the socket's address is read
 * out of the kernel's ctx (PTR_TO_CTX plus an offset is allowed) as a plain number.
 * A fault reads as 0, so a missing socket, file or cred gives SLUICE_NO_OWNER. */
static __always_inline void sock_owner_read(struct bpf_sock_addr *ctx, __u32 *uid, __u32 *gid)
{
	struct bpf_sock_addr_kern___sluice *kctx = (void *)ctx;
	const struct cred___sluice *cred;
	struct sock___sluice *s;

	*uid = SLUICE_NO_OWNER;
	*gid = SLUICE_NO_OWNER;
	s = BPF_CORE_READ(kctx, sk);
	if (!s)
		return;
	cred = BPF_CORE_READ(s, sk_socket, file, f_cred);
	if (!cred)
		return;
	*uid = BPF_CORE_READ(cred, fsuid.val);
	*gid = BPF_CORE_READ(cred, fsgid.val);
}

/* UDP sockets: no helper casts an IPv4 UDP socket (bpf_skc_to_udp6_sock takes IPv6
 * only), so the socket is read as the kernel's struct sock through bpf_rdonly_cast, or
 * on a kernel without it through bpf_probe_read_kernel. `sk` is ctx->sk. */
static __always_inline void udp_socket_owner(struct bpf_sock_addr *ctx, struct bpf_sock *sk, __u32 *uid, __u32 *gid)
{
	if (sluice_have_rdonly_cast)
		sock_owner(bpf_rdonly_cast(sk, bpf_core_type_id_kernel(struct sock___sluice)), uid, gid);
	else
		sock_owner_read(ctx, uid, gid);
}

#endif /* SLUICE_OWNER_H */
